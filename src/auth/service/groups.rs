//! Groups (the CLI and admin pages) and the fresh view of a user that decisions read.
//!
//! Membership lives on the user record and does not end sessions. Forward-auth and the
//! OIDC provider read it through [`Service::profile`], a cache whose entries live at most
//! [`PROFILE_FRESHNESS`]: a membership change (or a disabled account) reaches every node's
//! decisions within that time, as the contract asks (5 s), at one user read per user per
//! interval instead of one per request.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{AuthError, Service};
use crate::domain::{GroupName, User};

/// How old a cached user may be when a decision reads it (the contract allows 5 s).
pub(crate) const PROFILE_FRESHNESS: Duration = Duration::from_secs(2);

/// Users kept in the cache at once; beyond it the least used are dropped (and re-read).
pub(crate) const PROFILE_CAPACITY: u64 = 10_000;

/// A group and how many users belong to it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub members: usize,
}

pub(crate) type Profiles = moka::sync::Cache<Uuid, Arc<User>>;

pub(crate) fn profile_cache() -> Profiles {
    moka::sync::Cache::builder()
        .max_capacity(PROFILE_CAPACITY)
        .time_to_live(PROFILE_FRESHNESS)
        .build()
}

impl Service {
    /// The user as stored at most [`PROFILE_FRESHNESS`] ago; `None` for a deleted account.
    pub async fn profile(&self, id: Uuid) -> Result<Option<Arc<User>>, AuthError> {
        if let Some(user) = self.profiles.get(&id) {
            return Ok(Some(user));
        }
        let Some(user) = self.users.by_id(id).await? else {
            return Ok(None);
        };
        let user = Arc::new(user);
        self.profiles.insert(id, user.clone());
        Ok(Some(user))
    }

    /// The signed-in user's profile, for `/auth/me`: a deleted or disabled account has
    /// no session to speak of.
    pub async fn current_profile(&self, id: Uuid) -> Result<Arc<User>, AuthError> {
        match self.profile(id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(AuthError::SessionEnded),
        }
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>, AuthError> {
        let (names, users) = (self.users.groups().await?, self.users.list().await?);
        Ok(names
            .into_iter()
            .map(|name| GroupInfo {
                members: users.iter().filter(|u| u.groups.contains(&name)).count(),
                name,
            })
            .collect())
    }

    /// Creates a group; `false` when it already existed.
    pub async fn create_group(&self, name: &str) -> Result<bool, AuthError> {
        let name = GroupName::parse(name).map_err(AuthError::InvalidGroup)?;
        let created = self.users.add_group(name.as_str()).await?;
        if created {
            tracing::info!(event = "group_created", group = %name);
        }
        Ok(created)
    }

    /// Deletes a group and takes every member out of it; returns how many were members.
    pub async fn delete_group(&self, name: &str) -> Result<usize, AuthError> {
        let name = self.existing_group(name).await?;
        // Off the list first, so that no `add-member` can join it from here on; then out of
        // every member's record.
        self.users.remove_group(name.as_str()).await?;
        let mut removed = 0;
        for user in self.users.list().await? {
            if user.groups.iter().any(|g| g == name.as_str()) {
                self.modify_user(user.id, |u| {
                    u.groups.retain(|g| g != name.as_str());
                    Ok(())
                })
                .await?;
                removed += 1;
            }
        }
        tracing::info!(event = "group_deleted", group = %name, members = removed);
        Ok(removed)
    }

    /// Adds the user with `email` to the group (which must exist).
    pub async fn add_member(&self, group: &str, email: &str) -> Result<User, AuthError> {
        let name = self.existing_group(group).await?;
        let user = self.find_user(email).await?;
        let user = self
            .modify_user(user.id, |u| {
                if let Err(at) = u.groups.binary_search(&name.as_str().to_owned()) {
                    u.groups.insert(at, name.as_str().to_owned());
                }
                Ok(())
            })
            .await?;
        // A `group del` that ran between the check above and this write would have missed
        // this member: check again and undo, so a deleted group never keeps members.
        if !self
            .users
            .groups()
            .await?
            .iter()
            .any(|g| g == name.as_str())
        {
            self.remove_member(name.as_str(), &user.email).await?;
            return Err(AuthError::GroupNotFound(name.into_string()));
        }
        tracing::info!(event = "group_member_added", group = %name, user_id = %user.id);
        Ok(user)
    }

    /// Takes the user with `email` out of the group.
    pub async fn remove_member(&self, group: &str, email: &str) -> Result<User, AuthError> {
        let name = GroupName::parse(group).map_err(AuthError::InvalidGroup)?;
        let user = self.find_user(email).await?;
        let user = self
            .modify_user(user.id, |u| {
                u.groups.retain(|g| g != name.as_str());
                Ok(())
            })
            .await?;
        tracing::info!(event = "group_member_removed", group = %name, user_id = %user.id);
        Ok(user)
    }

    async fn existing_group(&self, name: &str) -> Result<GroupName, AuthError> {
        let name = GroupName::parse(name).map_err(AuthError::InvalidGroup)?;
        if self
            .users
            .groups()
            .await?
            .iter()
            .any(|g| g == name.as_str())
        {
            Ok(name)
        } else {
            Err(AuthError::GroupNotFound(name.into_string()))
        }
    }
}
