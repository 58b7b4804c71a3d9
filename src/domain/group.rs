//! Groups: named sets of users that access rules and OIDC clients admit. A user's groups
//! are a field of their record ([`super::User::groups`]); the list of groups that exist is
//! kept beside the users by each user store.

/// A valid group name: `[a-z0-9][a-z0-9_.-]{0,63}`. Lower case only, so that `Media` and
/// `media` can never be two groups, and safe in a comma-separated `Remote-Groups` header
/// and an OIDC `groups` claim as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

impl GroupName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(name: &str) -> Result<GroupName, String> {
        let bytes = name.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
        if first_ok && rest_ok && bytes.len() <= Self::MAX_LEN {
            Ok(GroupName(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a group name: use 1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for GroupName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::GroupName;

    #[test]
    fn names_follow_the_contract() {
        for ok in [
            "a",
            "media",
            "0day",
            "home.lab",
            "team_a-1",
            &"x".repeat(64),
        ] {
            assert!(GroupName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Media",
            "-x",
            ".x",
            "_x",
            "a b",
            "a,b",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(GroupName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
