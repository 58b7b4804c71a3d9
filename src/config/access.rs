//! `[access_control]`: the forward-auth rules as configured, checked at start-up. What they
//! mean for a request (how hosts and paths match, which rule wins) is
//! `crate::auth::access`; this module only knows their shape.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::domain::{GroupName, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Anyone, signed in or not.
    Bypass,
    /// Anyone with a live session (and one of the rule's `roles`, when it names any).
    Authenticated,
    /// Like `authenticated`, and the session was signed in with two factors (a password and
    /// a code, or a passkey with user verification).
    #[serde(rename = "two_factor")]
    TwoFactor,
    /// No one.
    Deny,
}

/// `[access_control]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccessControl {
    /// For requests that no rule matches.
    pub default_policy: Policy,
    /// First match wins.
    pub rules: Vec<RawRule>,
}

impl Default for RawAccessControl {
    fn default() -> Self {
        RawAccessControl {
            default_policy: Policy::Authenticated,
            rules: Vec::new(),
        }
    }
}

/// One `[[access_control.rules]]` table as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// `app.example.com` (exact) or `*.example.com` (any subdomain, not the bare domain).
    pub domain: String,
    /// Path prefix, matched segment-wise: `/admin` covers `/admin` and `/admin/x`, not
    /// `/administrator`; written decoded (no `%`). Unset: every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "default_rule_policy")]
    pub policy: Policy,
    /// With `authenticated` or `two_factor`: the user must hold one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// With `authenticated`: the user must belong to one of these groups (and, when `roles`
    /// is set too, hold one of those roles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

fn default_rule_policy() -> Policy {
    Policy::Authenticated
}

/// `[access_control]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControl {
    /// For requests that no rule matches.
    pub default_policy: Policy,
    /// First match wins.
    pub rules: Vec<Rule>,
}

/// One rule, validated: `domain` is a host name or `*.` and one, `path` (when set) a plain
/// decoded path starting with `/`, and `roles` only under `authenticated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub domain: String,
    pub path: Option<String>,
    pub policy: Policy,
    /// The user must hold one of these (none: any signed-in user).
    pub roles: Vec<Role>,
    /// The user must belong to one of these (none: any signed-in user); valid group names.
    pub groups: Vec<String>,
}

impl RawAccessControl {
    /// Checks the rules at start-up; the message names the offending rule.
    pub fn validate(self) -> Result<AccessControl, ConfigError> {
        let rules = (1..)
            .zip(self.rules)
            .map(|(n, rule)| rule.validate(n))
            .collect::<Result<_, _>>()
            .map_err(|reason| invalid("access_control.rules", &reason))?;
        Ok(AccessControl {
            default_policy: self.default_policy,
            rules,
        })
    }
}

impl RawRule {
    /// Rule number `n` (from 1), checked and with its roles parsed.
    fn validate(self, n: usize) -> Result<Rule, String> {
        let domain = self.domain.trim();
        let bare = domain.strip_prefix("*.").unwrap_or(domain);
        if bare.is_empty()
            || bare.contains(['*', '/', ':', ' '])
            || bare.starts_with('.')
            || bare.ends_with('.')
        {
            return Err(format!(
                "rule {n}: domain {:?} must be a host name like \"app.example.com\" or \"*.example.com\" (no port, no path)",
                self.domain
            ));
        }
        if let Some(path) = &self.path {
            if !path.starts_with('/') {
                return Err(format!("rule {n}: path {path:?} must start with '/'"));
            }
            // Rules are matched against decoded segments: a rule path is written decoded,
            // with nothing that a reading would take apart.
            if path.contains(['%', '\\', ';', '?', '#'])
                || path.chars().any(char::is_control)
                || path.split('/').any(|s| s == "." || s == "..")
            {
                return Err(format!(
                    "rule {n}: path {path:?} must be a plain decoded path: no '%', '\\', ';', '?', '#', control characters or '.'/'..' segments"
                ));
            }
        }
        let needs_session = matches!(self.policy, Policy::Authenticated | Policy::TwoFactor);
        let narrows = !self.roles.is_empty() || !self.groups.is_empty();
        if narrows && !needs_session {
            return Err(format!(
                "rule {n}: roles and groups only make sense with policy = \"authenticated\" or \"two_factor\""
            ));
        }
        let groups = self
            .groups
            .iter()
            .map(|g| {
                GroupName::parse(g)
                    .map(GroupName::into_string)
                    .map_err(|e| format!("rule {n}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let roles = self
            .roles
            .iter()
            .map(|role| role.parse::<Role>().map_err(|e| format!("rule {n}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            domain: self.domain,
            path: self.path,
            policy: self.policy,
            roles,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, path: Option<&str>, policy: Policy, roles: &[&str]) -> RawRule {
        RawRule {
            domain: domain.into(),
            path: path.map(Into::into),
            policy,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn validation_names_the_rule() {
        let bad = |r: RawRule| {
            RawAccessControl {
                default_policy: Policy::Authenticated,
                rules: vec![rule("ok.example.com", None, Policy::Bypass, &[]), r],
            }
            .validate()
            .unwrap_err()
            .to_string()
        };
        assert!(
            bad(rule("a.com:8080", None, Policy::Bypass, &[]))
                .contains("`access_control.rules`: rule 2:")
        );
        assert!(bad(rule("*.*.com", None, Policy::Bypass, &[])).contains("domain"));
        assert!(bad(rule("a.com", Some("admin"), Policy::Bypass, &[])).contains("path"));
        for path in [
            "/%61dmin", "/a\\b", "/a;b", "/a?b", "/a#b", "/a/../b", "/./a",
        ] {
            assert!(
                bad(rule("a.com", Some(path), Policy::Deny, &[])).contains("plain decoded path"),
                "{path}"
            );
        }
        assert!(bad(rule("a.com", None, Policy::Deny, &["admin"])).contains("roles"));
        assert!(bad(rule("a.com", None, Policy::Authenticated, &["root"])).contains("role"));
        let mut grouped = rule("a.com", None, Policy::Authenticated, &[]);
        grouped.groups = vec!["Media".into()];
        assert!(bad(grouped.clone()).contains("group name"));
        grouped.groups = vec!["media".into()];
        grouped.policy = Policy::Bypass;
        assert!(bad(grouped).contains("groups only make sense"));
    }

    #[test]
    fn roles_are_parsed_once() {
        let rules = RawAccessControl {
            default_policy: Policy::Deny,
            rules: vec![
                rule("a.com", Some("/admin"), Policy::Authenticated, &["admin"]),
                rule("*.a.com", None, Policy::Authenticated, &["user", "admin"]),
                rule("b.com", None, Policy::Bypass, &[]),
            ],
        }
        .validate()
        .unwrap();
        assert_eq!(rules.default_policy, Policy::Deny);
        let roles: Vec<&[Role]> = rules.rules.iter().map(|r| r.roles.as_slice()).collect();
        assert_eq!(roles, [&[Role::Admin][..], &[Role::User, Role::Admin], &[]]);
        assert_eq!(rules.rules[0].path.as_deref(), Some("/admin"));
        assert_eq!(rules.rules[1].domain, "*.a.com");
    }
}
