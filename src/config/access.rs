//! `[access_control]`: the forward-auth rules as configured, checked at start-up. What they
//! mean for a request (how hosts and paths match, which rule wins) is
//! `crate::auth::access`; this module only knows their shape.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::domain::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Anyone, signed in or not.
    Bypass,
    /// Anyone with a live session (and one of the rule's `roles`, when it names any).
    Authenticated,
    /// No one.
    Deny,
}

/// `[access_control]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessControl {
    /// For requests that no rule matches.
    pub default_policy: Policy,
    /// First match wins.
    pub rules: Vec<Rule>,
}

impl Default for AccessControl {
    fn default() -> Self {
        AccessControl {
            default_policy: Policy::Authenticated,
            rules: Vec::new(),
        }
    }
}

/// One `[[access_control.rules]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `app.example.com` (exact) or `*.example.com` (any subdomain, not the bare domain).
    pub domain: String,
    /// Path prefix, matched segment-wise: `/admin` covers `/admin` and `/admin/x`, not
    /// `/administrator`; written decoded (no `%`). Unset: every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "default_rule_policy")]
    pub policy: Policy,
    /// With `authenticated`: the user must hold one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

fn default_rule_policy() -> Policy {
    Policy::Authenticated
}

impl AccessControl {
    /// Checks the rules at start-up; the message names the offending rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_rules()
            .map_err(|reason| invalid("access_control.rules", &reason))
    }

    fn check_rules(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            let n = i + 1;
            let domain = rule.domain.trim();
            let bare = domain.strip_prefix("*.").unwrap_or(domain);
            if bare.is_empty()
                || bare.contains(['*', '/', ':', ' '])
                || bare.starts_with('.')
                || bare.ends_with('.')
            {
                return Err(format!(
                    "rule {n}: domain {:?} must be a host name like \"app.example.com\" or \"*.example.com\" (no port, no path)",
                    rule.domain
                ));
            }
            if let Some(path) = &rule.path {
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
            if !rule.roles.is_empty() && rule.policy != Policy::Authenticated {
                return Err(format!(
                    "rule {n}: roles only make sense with policy = \"authenticated\""
                ));
            }
            for role in &rule.roles {
                role.parse::<Role>().map_err(|e| format!("rule {n}: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(domain: &str, path: Option<&str>, policy: Policy, roles: &[&str]) -> Rule {
        Rule {
            domain: domain.into(),
            path: path.map(Into::into),
            policy,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn validation_names_the_rule() {
        let bad = |r: Rule| {
            AccessControl {
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
    }
}
