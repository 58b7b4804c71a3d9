//! Access rules for forward-auth (`access_control` in the config): which requests, by host
//! and path, pass without a session (`bypass`), need one (`authenticated`, optionally with a
//! role) or are refused (`deny`). The first matching rule wins; a request no rule matches
//! gets `default_policy`.

use serde::{Deserialize, Serialize};

use crate::store::Role;

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
    /// `/administrator`. Unset: every path.
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

/// What a request needs, as decided by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    Bypass,
    Deny,
    /// A live session; when `roles` is not empty, holding one of them.
    Authenticated {
        roles: &'a [String],
    },
}

impl AccessControl {
    /// Checks the rules at start-up; the message names the offending rule.
    pub fn validate(&self) -> Result<(), String> {
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

    /// The decision for a request to `host` (without port) and `path` (without query).
    pub fn decide(&self, host: &str, path: &str) -> Decision<'_> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let path = normalize_path(path);
        let rule = self
            .rules
            .iter()
            .find(|rule| domain_matches(&rule.domain, &host) && path_matches(rule, &path));
        match rule {
            Some(rule) => match rule.policy {
                Policy::Bypass => Decision::Bypass,
                Policy::Deny => Decision::Deny,
                Policy::Authenticated => Decision::Authenticated { roles: &rule.roles },
            },
            None => match self.default_policy {
                Policy::Bypass => Decision::Bypass,
                Policy::Deny => Decision::Deny,
                Policy::Authenticated => Decision::Authenticated { roles: &[] },
            },
        }
    }
}

fn domain_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == pattern,
    }
}

fn path_matches(rule: &Rule, path: &str) -> bool {
    let Some(prefix) = rule.path.as_deref() else {
        return true;
    };
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The path as the application will most likely see it: percent-decoded, with `.` and `..`
/// segments resolved and repeated slashes collapsed, so that `/a/../admin`, `//admin` and
/// `/%61dmin` meet the rule for `/admin`.
pub fn normalize_path(raw: &str) -> String {
    let decoded: Vec<u8> = percent_decode(raw.as_bytes());
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
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
    fn first_match_wins_and_default_applies() {
        let ac = AccessControl {
            default_policy: Policy::Deny,
            rules: vec![
                rule("app.example.com", Some("/public"), Policy::Bypass, &[]),
                rule(
                    "app.example.com",
                    Some("/admin"),
                    Policy::Authenticated,
                    &["admin"],
                ),
                rule("*.example.com", None, Policy::Authenticated, &[]),
                rule("app.example.com", None, Policy::Bypass, &[]),
            ],
        };
        let admin = ["admin".to_string()];
        assert_eq!(ac.decide("app.example.com", "/public/x"), Decision::Bypass);
        assert_eq!(
            ac.decide("app.example.com", "/publicity"),
            Decision::Authenticated { roles: &[] }
        );
        assert_eq!(
            ac.decide("APP.example.com", "/admin"),
            Decision::Authenticated { roles: &admin }
        );
        for sneaky in [
            "/x/../admin",
            "//admin/",
            "/%61dmin/y",
            "/./admin",
            "\\admin",
        ] {
            assert_eq!(
                ac.decide("app.example.com", sneaky),
                Decision::Authenticated { roles: &admin },
                "{sneaky}"
            );
        }
        assert_eq!(
            ac.decide("wiki.example.com", "/"),
            Decision::Authenticated { roles: &[] }
        );
        // `*.example.com` is the subdomains, not the bare domain or look-alikes.
        assert_eq!(ac.decide("example.com", "/"), Decision::Deny);
        assert_eq!(ac.decide("evilexample.com", "/"), Decision::Deny);
        assert_eq!(ac.decide("example.com.evil.org", "/"), Decision::Deny);
        assert_eq!(ac.decide("other.org", "/"), Decision::Deny);
    }

    #[test]
    fn paths_normalize() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/%2e%2e/x%"), "/x%");
        assert_eq!(normalize_path("/a%zz"), "/a%zz");
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
        };
        assert!(bad(rule("a.com:8080", None, Policy::Bypass, &[])).starts_with("rule 2:"));
        assert!(bad(rule("*.*.com", None, Policy::Bypass, &[])).contains("domain"));
        assert!(bad(rule("a.com", Some("admin"), Policy::Bypass, &[])).contains("path"));
        assert!(bad(rule("a.com", None, Policy::Deny, &["admin"])).contains("roles"));
        assert!(bad(rule("a.com", None, Policy::Authenticated, &["root"])).contains("role"));
    }
}
