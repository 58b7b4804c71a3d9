//! Accounts: registration, the password change, and user writes as versioned
//! read-modify-write (GD-0006), including the changes that end every session.

use uuid::Uuid;

use super::{AuthError, ClientInfo, Issued, MAX_WRITE_ATTEMPTS, Service};
use crate::auth::policy;
use crate::auth::regulation::{self};
use crate::auth::tokens::AccessClaims;
use crate::clock::now_secs;
use crate::config::RegistrationMode;
use crate::domain::link::Purpose;
use crate::domain::{Role, User, check_email, display_email, normalize_email};
use crate::mail::Notice;
use crate::store::UserStoreError;

impl Service {
    /// `POST /auth/register`: a new account with the `user` role.
    pub async fn register(&self, email: &str, password: &str) -> Result<User, AuthError> {
        if self.registration.mode == RegistrationMode::Closed {
            return Err(AuthError::RegistrationClosed);
        }
        let user = self.create_user(email, password, Role::User).await?;
        if self.registration.verify_email {
            // The account exists either way; should queueing the link fail, the person asks
            // for a new one (`POST /auth/verify/resend`).
            if let Err(e) = self.issue_link(&user, Purpose::Verify, None, true).await {
                tracing::warn!(error = %e, user_id = %user.id, "could not queue the verification link of a new account");
            }
        }
        Ok(user)
    }

    /// Creates an account regardless of the registration setting (the admin CLI).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AuthError> {
        check_email(email).map_err(AuthError::InvalidEmail)?;
        // Hash before the uniqueness check, so a taken email costs the same time.
        let password_hash = self.hash_new(password, email).await?;
        let user = User {
            id: Uuid::now_v7(),
            email: display_email(email),
            password_hash,
            role,
            created_at: now_secs(),
            disabled: false,
            version: 0,
            credential_version: 0,
            groups: Vec::new(),
            consents: Vec::new(),
            factors: Default::default(),
            email_verified: false,
        };
        self.users.create(&user).await?;
        tracing::info!(event = "user_created", user_id = %user.id, role = role.as_str());
        Ok(user)
    }

    /// The account behind a verified token, read fresh (the account page).
    pub async fn user(&self, claims: &AccessClaims) -> Result<User, AuthError> {
        match self.users.by_id(claims.sub).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(AuthError::SessionEnded),
        }
    }

    /// `POST /auth/password`: checks the current password, stores the new one, ends every
    /// session of the user and starts a fresh one for the caller.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<Issued, AuthError> {
        let user = self.user(claims).await?;
        self.check_current_password(&user, current, client).await?;
        let password_hash = self.hash_new(new, &user.email).await?;
        // Only over the credentials just checked: a concurrent change wins, and this one
        // answers as if the current password were wrong (it no longer is the current one).
        let checked = user.credential_version;
        let user = self
            .change_credentials(user.id, |u| {
                if u.credential_version != checked || u.disabled {
                    return Err(AuthError::WrongPassword);
                }
                u.password_hash = password_hash.clone();
                Ok(())
            })
            .await?;
        tracing::info!(event = "password_changed", user_id = %user.id);
        crate::audit::record(crate::audit::Event::new(
            crate::audit::Kind::PasswordChanged,
            user.id,
            crate::audit::Actor::User,
        ));
        self.notify(&user, Notice::PasswordChanged).await;
        // The caller's fresh session. Another change that ends sessions (a role change, say)
        // may land between storing the password and starting it; the password is changed
        // all the same, so start the session under the newer version, as long as it is still
        // the password set here and the account is enabled.
        let mut user = user;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            match self.start_session(&user, client, claims.amr).await {
                Err(AuthError::SessionEnded) => match self.users.by_id(user.id).await? {
                    Some(now) if !now.disabled && now.password_hash == user.password_hash => {
                        user = now;
                    }
                    _ => return Err(AuthError::SessionEnded),
                },
                other => return other,
            }
        }
        Err(AuthError::SessionEnded)
    }

    /// Checks the signed-in user's password before a sensitive change (`POST /auth/password`,
    /// `POST /auth/email`), regulated like a login: a wrong one counts as a failure against
    /// the account and the address, and answers [`AuthError::WrongPassword`].
    pub(super) async fn check_current_password(
        &self,
        user: &User,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let attempt = self
            .reserve(
                regulation::subjects(Some(&user.email), client.ip.as_deref()),
                "current_password",
            )
            .await?;
        let matches = password.len() <= policy::MAX_PASSWORD_BYTES
            && match self.hasher.verify(password, user.password()).await {
                Ok(check) => check.matches,
                Err(e) => {
                    self.regulation.withdraw(attempt).await?;
                    return Err(e.into());
                }
            };
        if !matches {
            self.regulation.failed(attempt).await?;
            return Err(AuthError::WrongPassword);
        }
        // A right password does not forget failed second-factor codes: whoever knows it
        // must not be able to reset the count of their guesses at a code.
        if user.factors.any() {
            self.regulation.withdraw(attempt).await
        } else {
            self.regulation.succeeded(attempt).await
        }
        .map_err(Into::into)
    }

    /// Checks a new password against the policy and hashes it, on the hashing threads.
    pub(super) async fn hash_new(&self, password: &str, email: &str) -> Result<String, AuthError> {
        let (email, rules) = (email.to_owned(), self.passwords.clone());
        let policy = Box::new(move |p: &str| policy::check_password(p, &email, &rules));
        Ok(self.hasher.hash_new(password, policy).await?)
    }

    pub(super) async fn find_user(&self, email: &str) -> Result<User, AuthError> {
        self.users
            .by_email(email)
            .await?
            .ok_or_else(|| AuthError::UserNotFound(normalize_email(email)))
    }

    /// Read-modify-write of a user as one compare-and-set, retried on a concurrent write:
    /// `change` runs on the freshest record each time and may refuse. Returns the stored user.
    pub(super) async fn modify_user(
        &self,
        id: Uuid,
        mut change: impl FnMut(&mut User) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(mut user) = self.users.by_id(id).await? else {
                return Err(AuthError::UserNotFound(id.to_string()));
            };
            change(&mut user)?;
            match self.users.update(&user).await {
                Ok(()) => {
                    user.version += 1;
                    // This node's decisions see the change at once; others within
                    // `groups::PROFILE_FRESHNESS`.
                    self.profiles.invalidate(&id);
                    return Ok(user);
                }
                Err(UserStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserStoreError::Conflict.into())
    }

    /// A change that ends the user's sessions: bumps `credential_version` in the same write
    /// and only then ends every session, so a login racing it either is ended here or sees
    /// the new version when it re-reads the user (see [`Service::start_session`]).
    pub(super) async fn change_credentials(
        &self,
        id: Uuid,
        mut change: impl FnMut(&mut User) -> Result<(), AuthError>,
    ) -> Result<User, AuthError> {
        let user = self
            .modify_user(id, |u| {
                change(u)?;
                u.credential_version += 1;
                Ok(())
            })
            .await?;
        self.revoke_all(id).await?;
        Ok(user)
    }

    /// Stores a stronger hash of a password that just verified, unless the password
    /// changed meanwhile. Best effort: the login succeeds either way.
    pub(super) async fn upgrade_hash(&self, user: &User, password: &str) {
        let hash = match self.hasher.hash(password).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(error = %e, "could not upgrade a password hash");
                return;
            }
        };
        let old = user.password_hash.clone();
        let result = self
            .modify_user(user.id, |u| {
                if u.password_hash == old {
                    u.password_hash = hash.clone();
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, user_id = %user.id, "could not store the upgraded password hash");
        }
    }
}
