//! Brute-force regulation, after Authelia's: failed logins are counted per account and per
//! client address in the session store (so the count holds across nodes on Redis). After
//! `max_retries` failures within `find_time`, that account or address is banned for
//! `ban_time`: further logins answer 429 with `Retry-After` before any argon2 work, so a flood
//! costs no CPU. Accounts are counted by the email typed, whether or not it exists, so a ban
//! says nothing about which emails are registered.

use std::sync::Arc;
use std::time::Duration;

use super::sessions::encode;
use crate::clock::now_secs;
use crate::config::Regulation as Settings;
use crate::store::{Op, SessionStore, StoreError, keys, normalize_email};

/// A live ban, for the CLI.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    /// `user:<email>` or `ip:<address>`.
    pub subject: String,
    /// Unix second the ban ends.
    pub until: u64,
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

    /// The subjects a login attempt is counted under.
    fn subjects(email: &str, ip: Option<&str>) -> Vec<String> {
        let mut subjects = vec![format!("user:{}", normalize_email(email))];
        if let Some(ip) = ip {
            subjects.push(format!("ip:{ip}"));
        }
        subjects
    }

    /// Seconds until the attempt may be made, if the account or the address is banned.
    pub async fn banned_for(
        &self,
        email: &str,
        ip: Option<&str>,
    ) -> Result<Option<u64>, StoreError> {
        if !self.enabled() {
            return Ok(None);
        }
        let now = now_secs();
        let mut wait = None;
        for subject in Self::subjects(email, ip) {
            if let Some(until) = self.store.get(&keys::ban(&subject)).await? {
                let until: u64 = serde_json::from_slice(&until).unwrap_or(0);
                if until > now {
                    wait = Some(wait.unwrap_or(0).max(until - now));
                }
            }
        }
        Ok(wait)
    }

    /// Counts a failed login; bans the subjects that reach `max_retries`.
    pub async fn failed(&self, email: &str, ip: Option<&str>) -> Result<(), StoreError> {
        if !self.enabled() {
            return Ok(());
        }
        for subject in Self::subjects(email, ip) {
            let count = self
                .store
                .incr(&keys::failures(&subject), self.find_time)
                .await?;
            if count >= self.max_retries {
                let until = now_secs() + self.ban_time.as_secs();
                self.store
                    .apply(vec![
                        Op::set(keys::ban(&subject), encode(&until), self.ban_time),
                        Op::Delete {
                            key: keys::failures(&subject),
                        },
                        Op::SetAdd {
                            set: keys::bans(),
                            member: subject.clone(),
                            ttl: self.ban_time,
                        },
                    ])
                    .await?;
                tracing::warn!(event = "login_banned", subject = %subject, ban_seconds = self.ban_time.as_secs(),
                    "too many failed logins");
            }
        }
        Ok(())
    }

    /// A successful login clears the account's failure count.
    pub async fn succeeded(&self, email: &str) -> Result<(), StoreError> {
        if !self.enabled() {
            return Ok(());
        }
        let subject = format!("user:{}", normalize_email(email));
        self.store
            .apply(vec![Op::Delete {
                key: keys::failures(&subject),
            }])
            .await
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
            vec![format!("user:{}", normalize_email(target))]
        } else {
            vec![format!("ip:{target}")]
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
