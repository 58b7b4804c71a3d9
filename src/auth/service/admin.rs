//! Administration (the CLI, directly or through the admin socket, and the admin pages):
//! users, roles, bans.

use uuid::Uuid;

use super::{AuthError, Service};
use crate::auth::regulation::Ban;
use crate::domain::{Role, User};
use crate::mail::Notice;

impl Service {
    pub async fn list_users(&self) -> Result<Vec<User>, AuthError> {
        Ok(self.users.list().await?)
    }

    /// The user with this id, as stored now (the admin pages name users by id).
    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AuthError> {
        Ok(self.users.by_id(id).await?)
    }

    /// Ends every session of a user (the admin pages); returns how many there were. Their
    /// tokens are dead on the next request, on every node.
    pub async fn end_sessions(&self, user_id: Uuid) -> Result<usize, AuthError> {
        let count = self.revoke_all(user_id).await?;
        tracing::info!(event = "sessions_ended", user_id = %user_id, sessions = count, by = "admin");
        Ok(count)
    }

    /// Tokens carry the role: the sessions end so that the next login gets the new one.
    pub async fn set_role(&self, email: &str, role: Role) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        let user = self
            .change_credentials(user.id, |u| {
                u.role = role;
                Ok(())
            })
            .await?;
        crate::audit::record(
            crate::audit::Event::new(
                crate::audit::Kind::RoleChanged,
                user.id,
                crate::audit::Actor::Admin,
            )
            .detail(role.as_str()),
        );
        Ok(user)
    }

    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        if disabled {
            let user = self
                .change_credentials(user.id, |u| {
                    u.disabled = true;
                    Ok(())
                })
                .await?;
            tracing::info!(event = "user_disabled", user_id = %user.id);
            crate::audit::record(crate::audit::Event::new(
                crate::audit::Kind::UserDisabled,
                user.id,
                crate::audit::Actor::Admin,
            ));
            Ok(user)
        } else {
            let user = self
                .modify_user(user.id, |u| {
                    u.disabled = false;
                    Ok(())
                })
                .await?;
            tracing::info!(event = "user_enabled", user_id = %user.id);
            crate::audit::record(crate::audit::Event::new(
                crate::audit::Kind::UserEnabled,
                user.id,
                crate::audit::Actor::Admin,
            ));
            Ok(user)
        }
    }

    /// Sets a new password and ends every session of the user.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        let password_hash = self.hash_new(password, &user.email).await?;
        let user = self
            .change_credentials(user.id, |u| {
                u.password_hash = password_hash.clone();
                Ok(())
            })
            .await?;
        tracing::info!(event = "password_changed", user_id = %user.id, by = "admin");
        crate::audit::record(crate::audit::Event::new(
            crate::audit::Kind::PasswordChanged,
            user.id,
            crate::audit::Actor::Admin,
        ));
        self.notify(&user, Notice::PasswordChanged).await;
        Ok(user)
    }

    /// The live login bans.
    pub async fn bans(&self) -> Result<Vec<Ban>, AuthError> {
        Ok(self.regulation.list().await?)
    }

    /// Lifts a ban on an email or address; returns what was lifted.
    pub async fn lift_ban(&self, target: &str) -> Result<Vec<String>, AuthError> {
        let lifted = self.regulation.lift(target).await?;
        tracing::info!(event = "ban_lifted", target = %target, lifted = lifted.len());
        Ok(lifted)
    }
}
