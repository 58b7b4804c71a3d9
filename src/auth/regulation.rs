//! Brute-force regulation, after Authelia's: failed attempts at a secret are counted per
//! account and per client address in the session store (so the count holds across nodes on
//! Redis). After `max_retries` failures within `find_time`, that account or address is
//! banned for `ban_time`: further attempts answer 429 with `Retry-After` before any argon2
//! work, so a flood costs no CPU. Accounts are counted by the email typed, whether or not it
//! exists, so a ban says nothing about which emails are registered.
//!
//! An attempt is counted *before* the secret is checked ([`Regulation::reserve`]) and given
//! back if it turns out right: parallel guesses each see the count of those before them, so
//! no burst of requests in flight at once can get more than `max_retries` checks in a window.
//! IPv6 clients are counted per /64, the block one subscriber usually holds.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::sessions::encode;
use crate::clock::now_secs;
use crate::config::Regulation as Settings;
use crate::store::{Op, SessionStore, StoreError, keys, normalize_email};

/// A live ban, for the CLI.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    /// `user:<email>` or `ip:<address>` (IPv6: `ip:<prefix>/64`).
    pub subject: String,
    /// Unix second the ban ends.
    pub until: u64,
}

/// What an attempt is counted under.
pub fn account(email: &str) -> String {
    format!("user:{}", normalize_email(email))
}

/// The client address an attempt is counted under: the address itself for IPv4, its /64
/// for IPv6. `ip` is a client address as recorded (see `http::request::client_ip`).
pub fn address(ip: &str) -> String {
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
pub fn subjects(email: Option<&str>, ip: Option<&str>) -> Vec<String> {
    email
        .map(account)
        .into_iter()
        .chain(ip.map(address))
        .collect()
}

/// One attempt, counted as failed until it is resolved otherwise. Dropping it unresolved
/// (an error on the way) leaves it counted: the safe side.
#[must_use = "resolve the attempt with `failed`, `succeeded` or `withdraw`"]
pub struct Reservation {
    /// Each subject with its failure count including this attempt.
    counted: Vec<(String, u64)>,
}

pub struct Regulation {
    store: Arc<dyn SessionStore>,
    max_retries: u64,
    find_time: Duration,
    ban_time: Duration,
}

impl Regulation {
    pub fn new(settings: &Settings, store: Arc<dyn SessionStore>) -> Self {
        Regulation {
            store,
            max_retries: settings.max_retries,
            find_time: Duration::from_secs(settings.find_time),
            ban_time: Duration::from_secs(settings.ban_time),
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

    /// Counts an attempt under `subjects` before its secret is checked. `Err(retry_after)`
    /// when a subject is banned or this attempt would go past `max_retries`: then the secret
    /// must not be checked at all.
    pub async fn reserve(
        &self,
        subjects: Vec<String>,
    ) -> Result<Result<Reservation, u64>, StoreError> {
        if !self.enabled() {
            return Ok(Ok(Reservation {
                counted: Vec::new(),
            }));
        }
        if let Some(wait) = self.banned_for(&subjects).await? {
            return Ok(Err(wait));
        }
        let mut counted = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let count = self
                .store
                .incr_by(&keys::failures(&subject), 1, self.find_time)
                .await?;
            counted.push((subject, count));
        }
        if counted.iter().any(|(_, n)| *n > self.max_retries) {
            // Others got here first: the subject is (being) banned. Give back the counts of
            // the subjects that are not (a ban clears its subject's count).
            self.ban(&counted).await?;
            let below: Vec<_> = counted
                .into_iter()
                .filter(|(_, n)| *n < self.max_retries)
                .collect();
            self.release(&below).await?;
            return Ok(Err(self.ban_time.as_secs()));
        }
        Ok(Ok(Reservation { counted }))
    }

    /// The secret was wrong: the attempt stays counted; subjects at `max_retries` are banned.
    pub async fn failed(&self, attempt: Reservation) -> Result<(), StoreError> {
        self.ban(&attempt.counted).await
    }

    /// The secret was right: the attempt is given back, and an account's failures are
    /// forgotten (a right password proves the account's owner is trying).
    pub async fn succeeded(&self, attempt: Reservation) -> Result<(), StoreError> {
        let (accounts, others): (Vec<_>, Vec<_>) = attempt
            .counted
            .into_iter()
            .partition(|(subject, _)| subject.starts_with("user:"));
        if !accounts.is_empty() {
            let ops = accounts
                .iter()
                .map(|(subject, _)| Op::Delete {
                    key: keys::failures(subject),
                })
                .collect();
            self.store.apply(ops).await?;
        }
        self.release(&others).await
    }

    /// Like [`Regulation::succeeded`] but forgetting nothing: for a second secret (a code
    /// after a password), whose right answer must not reset the account's failures.
    pub async fn withdraw(&self, attempt: Reservation) -> Result<(), StoreError> {
        self.release(&attempt.counted).await
    }

    async fn release(&self, counted: &[(String, u64)]) -> Result<(), StoreError> {
        for (subject, _) in counted {
            self.store
                .incr_by(&keys::failures(subject), -1, self.find_time)
                .await?;
        }
        Ok(())
    }

    /// Bans every subject whose count reached `max_retries`.
    async fn ban(&self, counted: &[(String, u64)]) -> Result<(), StoreError> {
        for (subject, count) in counted {
            if *count < self.max_retries {
                continue;
            }
            let until = now_secs() + self.ban_time.as_secs();
            self.store
                .apply(vec![
                    Op::set(keys::ban(subject), encode(&until), self.ban_time),
                    Op::Delete {
                        key: keys::failures(subject),
                    },
                    Op::SetAdd {
                        set: keys::bans(),
                        member: subject.clone(),
                        ttl: self.ban_time,
                    },
                ])
                .await?;
            // (The event keeps the name it had when only logins were regulated.)
            tracing::warn!(event = "login_banned", subject = %subject, ban_seconds = self.ban_time.as_secs(),
                "too many failed attempts (logins, current passwords or client secrets)");
        }
        Ok(())
    }

    /// The live bans.
    pub async fn list(&self) -> Result<Vec<Ban>, StoreError> {
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
    pub async fn lift(&self, target: &str) -> Result<Vec<String>, StoreError> {
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
