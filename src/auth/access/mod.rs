//! Access rules for forward-auth (`access_control` in the config): which requests, by host
//! and path, pass without a session (`bypass`), need one (`authenticated`, optionally with a
//! role or a group; `two_factor`: signed in with two factors) or are refused (`deny`). The
//! first matching rule wins; a request no rule matches
//! gets `default_policy`.
//!
//! The decision is made on what the proxy routes on (GD-0005, README "How rules match"):
//!
//! - [`target`]: the original request taken apart strictly; an authority that proxies and
//!   URL parsers could read differently (user info, percent-encoding, lists, other IPv4
//!   forms) is refused, never normalised.
//! - `path`: the readings of the path (decoded or not, `\` a separator or not, `;`
//!   parameters dropped or not, `.` segments dropped or not); `..` segments are refused.
//! - [`Decide::decide`]: first match wins on each reading, and the request gets the
//!   most restrictive of the readings' decisions. Restrictive rules match paths without
//!   case; a `bypass` rule only as written.
//!
//! The forward-auth handler only applies the [`Decision`].

mod path;
pub mod target;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod variants;

pub use crate::config::access::{AccessControl, Policy, Rule};
use crate::domain::Role;
pub use target::{Refused, Target};

/// What a request needs, as decided by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Anyone; no token is looked at.
    Bypass,
    /// A live session that meets every requirement.
    Authenticated(Requirements<'a>),
    /// No one.
    Deny,
}

/// What a signed-in user needs: one role out of every role set and membership of one group
/// out of every group set (a rule naming both asks for both; no sets: any user); and
/// whether the session must have been signed in with two factors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements<'a> {
    sets: Vec<&'a [Role]>,
    group_sets: Vec<&'a [String]>,
    two_factor: bool,
}

impl<'a> Requirements<'a> {
    /// Any signed-in user.
    pub fn none() -> Self {
        Requirements::default()
    }

    /// One role out of `roles` (any user when it is empty).
    pub fn one_of(roles: &'a [Role]) -> Self {
        let mut requirements = Requirements::none();
        requirements.add(roles, &[]);
        requirements
    }

    /// Membership of one group out of `groups` (any user when it is empty).
    pub fn member_of(groups: &'a [String]) -> Self {
        let mut requirements = Requirements::none();
        requirements.add(&[], groups);
        requirements
    }

    /// What a rule with `policy`, `roles` and `groups` asks for (`policy` being one that
    /// needs a session).
    fn of(policy: Policy, roles: &'a [Role], groups: &'a [String]) -> Self {
        let mut requirements = Requirements::none();
        requirements.add_rule(policy, roles, groups);
        requirements
    }

    pub fn role_sets(&self) -> &[&'a [Role]] {
        &self.sets
    }

    /// Whether the session must have been signed in with two factors (`two_factor`).
    pub fn two_factor(&self) -> bool {
        self.two_factor
    }

    /// Whether the rules look at groups at all.
    pub fn names_groups(&self) -> bool {
        !self.group_sets.is_empty()
    }

    /// Whether a user with `role`, a member of `groups`, meets every role and group
    /// requirement (two factors are judged on the session).
    pub fn allow(&self, role: Role, groups: &[String]) -> bool {
        self.allow_role(role)
            && self
                .group_sets
                .iter()
                .all(|set| set.iter().any(|g| groups.contains(g)))
    }

    /// Whether the role requirements alone are met.
    pub fn allow_role(&self, role: Role) -> bool {
        self.sets.iter().all(|set| set.contains(&role))
    }

    /// Whether every requirement of `other` is one of these too (these ask for as much).
    pub fn include(&self, other: &Requirements<'_>) -> bool {
        other.sets.iter().all(|set| self.sets.contains(set))
            && other
                .group_sets
                .iter()
                .all(|set| self.group_sets.contains(set))
            && (self.two_factor || !other.two_factor)
    }

    fn add(&mut self, roles: &'a [Role], groups: &'a [String]) {
        if !roles.is_empty() && !self.sets.contains(&roles) {
            self.sets.push(roles);
        }
        if !groups.is_empty() && !self.group_sets.contains(&groups) {
            self.group_sets.push(groups);
        }
    }

    /// These and those of a rule with `policy`, `roles` and `groups`: the stricter of both
    /// readings.
    fn add_rule(&mut self, policy: Policy, roles: &'a [Role], groups: &'a [String]) {
        self.add(roles, groups);
        self.two_factor |= policy == Policy::TwoFactor;
    }
}

/// Why the readings of a path stopped being evaluated.
enum Stop {
    Refused(Refused),
    Denied,
}

impl From<Refused> for Stop {
    fn from(refused: Refused) -> Self {
        Stop::Refused(refused)
    }
}

/// The rules as configured ([`crate::config::access`]) judge requests: `config` holds
/// their shape and must not know `auth`, so their meaning is added here.
pub trait Decide {
    /// The decision for a request to `host` (without port; see [`Target::host`]) and `path`
    /// (as sent, without query; see [`Target::path`]).
    fn decide(&self, host: &str, path: &str) -> Result<Decision<'_>, Refused>;
}

impl Decide for AccessControl {
    /// The decision for a request to `host` (without port; see [`Target::host`]) and `path`
    /// (as sent, without query; see [`Target::path`]): the most restrictive decision over
    /// every reading of the path (module `path`); refused when a reading is ambiguous beyond
    /// judging (a `..` segment, a decoded control character, too many encodings).
    fn decide(&self, host: &str, path: &str) -> Result<Decision<'_>, Refused> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let path = path.as_bytes();
        // The hot path: one reading, no allocation (beyond one for a `roles` or `groups`
        // rule).
        if path::is_plain(path) {
            let (policy, roles, groups) = first_match(self, host, path::plain_segments(path));
            return Ok(match policy {
                Policy::Bypass => Decision::Bypass,
                Policy::Authenticated | Policy::TwoFactor => {
                    Decision::Authenticated(Requirements::of(policy, roles, groups))
                }
                Policy::Deny => Decision::Deny,
            });
        }
        let mut combined = Decision::Bypass;
        let readings = path::Readings::of(path)?;
        let walked = readings.try_for_each(|segments| {
            match first_match(self, host, segments.iter().copied()) {
                (Policy::Deny, ..) => return Err(Stop::Denied),
                (Policy::Bypass, ..) => {}
                (policy @ (Policy::Authenticated | Policy::TwoFactor), roles, groups) => {
                    match &mut combined {
                        Decision::Authenticated(requirements) => {
                            requirements.add_rule(policy, roles, groups)
                        }
                        _ => {
                            combined =
                                Decision::Authenticated(Requirements::of(policy, roles, groups))
                        }
                    }
                }
            }
            Ok(())
        });
        match walked {
            Ok(()) => Ok(combined),
            Err(Stop::Denied) => Ok(Decision::Deny),
            Err(Stop::Refused(refused)) => Err(refused),
        }
    }
}

/// The policy, roles and groups of the first rule that matches one reading, else the default.
fn first_match<'s, 'r>(
    rules: &'r AccessControl,
    host: &str,
    segments: impl Iterator<Item = &'s [u8]> + Clone,
) -> (Policy, &'r [Role], &'r [String]) {
    rules
        .rules
        .iter()
        .find(|rule| domain_matches(&rule.domain, host) && path_matches(rule, segments.clone()))
        .map_or((rules.default_policy, &[], &[]), |rule| {
            (rule.policy, rule.roles.as_slice(), rule.groups.as_slice())
        })
}

/// `app.example.com` or `*.example.com` (a subdomain, not the bare domain), without case.
fn domain_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().as_bytes();
    let host = host.as_bytes();
    match pattern.strip_prefix(b"*.") {
        Some(parent) => {
            host.len() > parent.len() + 1
                && host[host.len() - parent.len() - 1] == b'.'
                && host[host.len() - parent.len()..].eq_ignore_ascii_case(parent)
        }
        None => host.eq_ignore_ascii_case(pattern),
    }
}

/// Whether the rule's path segments begin the reading's segments. A restrictive rule
/// compares segments loosely (see [`segment_matches`]), a `bypass` rule only as written.
fn path_matches<'s>(rule: &Rule, mut segments: impl Iterator<Item = &'s [u8]>) -> bool {
    let Some(prefix) = rule.path.as_deref() else {
        return true;
    };
    let loose = rule.policy != Policy::Bypass;
    prefix.split('/').filter(|s| !s.is_empty()).all(|want| {
        segments
            .next()
            .is_some_and(|seg| segment_matches(want.as_bytes(), seg, loose))
    })
}

/// Loosely: without case (ASCII, and Unicode case folding for UTF-8 segments: `K` is the
/// Kelvin sign's lower case) and without trailing dots and spaces (Windows drops them), the
/// ways an application may route `/ADMIN`, `/Admin.` or `/admin%20` to `/admin`.
fn segment_matches(want: &[u8], segment: &[u8], loose: bool) -> bool {
    if !loose {
        return want == segment;
    }
    let trim = |s: &'_ [u8]| -> usize {
        s.iter()
            .rposition(|b| !matches!(b, b'.' | b' '))
            .map_or(s.len(), |i| i + 1)
    };
    let (want, segment) = (&want[..trim(want)], &segment[..trim(segment)]);
    if want.eq_ignore_ascii_case(segment) {
        return true;
    }
    if want.is_ascii() && segment.is_ascii() {
        return false;
    }
    let fold = |s: &'_ str| {
        s.chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    match (std::str::from_utf8(want), std::str::from_utf8(segment)) {
        (Ok(a), Ok(b)) => fold(a) == fold(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
