//! Brute-force regulation, after Authelia's: failed attempts at a secret are counted per
//! account and per client address in the session store (so the count holds across nodes on
//! Redis). After `max_retries` failures within `find_time`, that account or address is
//! banned for `ban_time`: further attempts answer 429 with `Retry-After` before any argon2
//! work, so a flood costs no CPU. Accounts are counted by the email typed, whether or not it
//! exists, so a ban says nothing about which emails are registered.
//!
//! An attempt is admitted *before* its secret is checked ([`Regulation::reserve`]): it takes
//! one of `argon2.max_concurrent` check slots, and only then reads the bans; it keeps the slot
//! until its failure is recorded. So between "not banned" and "failure counted" there are
//! never more attempts than slots, and however many guesses arrive at once, at most
//! `max_retries + argon2.max_concurrent` are answered 401 in a window (per node). Attempts
//! beyond the slots wait, a bounded queue like the hashing threads' (full: 503); honest logins
//! in parallel are never banned, since bans come from failures alone.
//! IPv6 clients are counted per /64, the block one subscriber usually holds.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::now_secs;
use crate::config::Regulation as Settings;
use crate::domain::normalize_email;
use crate::domain::session::encode;
use crate::store::{Op, SessionStore, StoreError, keys};

/// A live ban, for the CLI.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    /// `user:<email>` or `ip:<address>` (IPv6: `ip:<prefix>/64`).
    pub subject: String,
    /// Unix second the ban ends.
    pub until: u64,
}

/// What an attempt is counted under.
pub(crate) fn account(email: &str) -> String {
    format!("user:{}", normalize_email(email))
}

/// The client address an attempt is counted under: the address itself for IPv4, its /64
/// for IPv6. `ip` is a client address as recorded (see `http::request::client_ip`).
pub(crate) fn address(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("ip:{net}/64")
        }
        Ok(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Err(_) => format!("ip:{ip}"),
    }
}

/// The subjects of an attempt by `email` (if it names an account) from `ip`.
pub(crate) fn subjects(email: Option<&str>, ip: Option<&str>) -> Vec<String> {
    email
        .map(account)
        .into_iter()
        .chain(ip.map(address))
        .collect()
}

/// An admitted attempt: it holds a check slot until it is resolved.
#[must_use = "resolve the attempt with `failed`, `succeeded` or `withdraw`"]
pub(crate) struct Reservation {
    subjects: Vec<String>,
    _slot: Option<OwnedSemaphorePermit>,
}

/// Why an attempt may not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A subject is banned: 429 with `Retry-After` of this many seconds.
    Banned(u64),
    /// Too many attempts are waiting for a check slot: shed like an overloaded server (503),
    /// without counting anything against anyone.
    Busy,
}

pub(crate) struct Regulation {
    store: Arc<dyn SessionStore>,
    max_retries: u64,
    find_time: Duration,
    ban_time: Duration,
    /// One permit per attempt between its ban check and its recorded outcome.
    slots: Arc<Semaphore>,
    /// Attempts waiting for a slot, and how many may.
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Regulation {
    /// `slots`: attempts checked at once (the hashing threads); `max_waiting`: attempts that
    /// may wait for one (the hashing queue).
    pub(crate) fn new(
        settings: &Settings,
        slots: usize,
        max_waiting: usize,
        store: Arc<dyn SessionStore>,
    ) -> Self {
        Regulation {
            store,
            max_retries: settings.max_retries,
            find_time: Duration::from_secs(settings.find_time),
            ban_time: Duration::from_secs(settings.ban_time),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    fn enabled(&self) -> bool {
        self.max_retries > 0
    }

    /// Seconds until an attempt may be made, if one of the subjects is banned.
    async fn banned_for(&self, subjects: &[String]) -> Result<Option<u64>, StoreError> {
        let now = now_secs();
        let mut wait = None;
        for subject in subjects {
            if let Some(until) = self.store.get(&keys::ban(subject)).await? {
                let until: u64 = serde_json::from_slice(&until).unwrap_or(0);
                if until > now {
                    wait = Some(wait.unwrap_or(0).max(until - now));
                }
            }
        }
        Ok(wait)
    }

    /// Admits an attempt under `subjects` before its secret is checked: waits for a check
    /// slot, then reads the bans. A refusal means the secret must not be checked at all.
    pub(crate) async fn reserve(
        &self,
        subjects: Vec<String>,
    ) -> Result<Result<Reservation, Refusal>, StoreError> {
        if !self.enabled() {
            return Ok(Ok(Reservation {
                subjects: Vec::new(),
                _slot: None,
            }));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Ok(Err(Refusal::Busy));
        }
        let slot = self.slots.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(slot) = slot else {
            return Ok(Err(Refusal::Busy)); // closed: never, the semaphore lives with us
        };
        if let Some(wait) = self.banned_for(&subjects).await? {
            return Ok(Err(Refusal::Banned(wait)));
        }
        Ok(Ok(Reservation {
            subjects,
            _slot: Some(slot),
        }))
    }

    /// The secret was wrong: counts a failure for each subject; those that reach
    /// `max_retries` are banned. The slot is given back only after.
    pub(crate) async fn failed(&self, attempt: Reservation) -> Result<(), StoreError> {
        for subject in &attempt.subjects {
            let failures = self
                .store
                .incr_by(&keys::failures(subject), 1, self.find_time)
                .await?;
            if failures >= self.max_retries {
                self.ban(subject).await?;
            }
        }
        Ok(())
    }

    /// The secret was right: an account's failures are forgotten (a right password proves
    /// the account's owner is trying).
    pub(crate) async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError> {
        let forget: Vec<Op> = attempt
            .subjects
            .iter()
            .filter(|subject| subject.starts_with("user:"))
            .map(|subject| Op::Delete {
                key: keys::failures(subject),
            })
            .collect();
        if !forget.is_empty() {
            self.store.apply(forget).await?;
        }
        Ok(())
    }

    /// Ends an attempt without a verdict and forgets nothing: one that was never judged (the
    /// hashing queue was full), or a second secret whose right answer must not reset the
    /// account's failures.
    pub(crate) async fn withdraw(&self, attempt: Reservation) -> Result<(), StoreError> {
        drop(attempt);
        Ok(())
    }

    /// Bans `subject` for `ban_time` and starts its count afresh.
    async fn ban(&self, subject: &str) -> Result<(), StoreError> {
        let until = now_secs() + self.ban_time.as_secs();
        self.store
            .apply(vec![
                Op::set(keys::ban(subject), encode(&until), self.ban_time),
                Op::Delete {
                    key: keys::failures(subject),
                },
                Op::SetAdd {
                    set: keys::bans(),
                    member: subject.to_owned(),
                    ttl: self.ban_time,
                },
            ])
            .await?;
        // (The event keeps the name it had when only logins were regulated.)
        tracing::warn!(event = "login_banned", subject = %subject, ban_seconds = self.ban_time.as_secs(),
            "too many failed attempts (logins, current passwords or client secrets)");
        Ok(())
    }

    /// The live bans.
    pub(crate) async fn list(&self) -> Result<Vec<Ban>, StoreError> {
        let now = now_secs();
        let mut bans = Vec::new();
        for subject in self.store.set_members(&keys::bans()).await? {
            if let Some(until) = self.store.get(&keys::ban(&subject)).await? {
                let until: u64 = serde_json::from_slice(&until).unwrap_or(0);
                if until > now {
                    bans.push(Ban { subject, until });
                }
            }
        }
        bans.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(bans)
    }

    /// Lifts the ban on `target` (an email or an address, or `user:…`/`ip:…`) and clears its
    /// failure count; returns the subjects lifted.
    pub(crate) async fn lift(&self, target: &str) -> Result<Vec<String>, StoreError> {
        let candidates = if target.starts_with("user:") || target.starts_with("ip:") {
            vec![target.to_owned()]
        } else if target.contains('@') {
            vec![account(target)]
        } else {
            vec![address(target)]
        };
        let live: Vec<String> = self.list().await?.into_iter().map(|b| b.subject).collect();
        let mut ops = Vec::new();
        let mut lifted = Vec::new();
        for subject in candidates {
            if live.contains(&subject) {
                lifted.push(subject.clone());
            }
            ops.push(Op::Delete {
                key: keys::ban(&subject),
            });
            ops.push(Op::Delete {
                key: keys::failures(&subject),
            });
            ops.push(Op::SetRemove {
                set: keys::bans(),
                member: subject,
            });
        }
        self.store.apply(ops).await?;
        Ok(lifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(address("2001:db8:1:2:bbbb::9"), "ip:2001:db8:1:2::/64");
        assert_eq!(address("::ffff:192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(address("192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(
            subjects(Some("Ada@X.org"), Some("192.0.2.7")),
            ["user:ada@x.org", "ip:192.0.2.7"]
        );
    }
}
