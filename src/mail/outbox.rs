//! The outbox: mail waiting to be sent, kept in the session store so that it outlives a
//! restart (embedded: in the redb file, committed before the request that queued it is
//! answered; Redis: beside the sessions, shared by every node). GD-0012 has the reasoning.
//!
//! Each mail is one record (`outbox:<id>`) listed in the set `outbox_pending`. A node
//! sending it first claims it with a compare-and-set that records the attempt and a lease
//! ("mark before"); of several nodes, exactly one wins. After the relay answers, the record
//! is deleted (sent, or refused for good) or put back with the time of its next attempt
//! ("mark after"). A node that dies between the relay's answer and the mark leaves a lease
//! that runs out; the mail is then sent again with the same Message-ID, and a warning says
//! that it may be a repeat.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::compose::Composed;
use super::smtp::{Relay, SendError};
use crate::clock::now_ms;
use crate::store::{Op, SessionStore, StoreError, Swap, keys};

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Most mails one pass sends, so that a pass ends and picks up what is due next.
const PER_PASS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Queued,
    /// A node claimed it and is talking to the relay (until `lease_until`).
    Sending,
}

/// One queued mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    /// What it is, for logs: `reset`, `notice:password_changed`, ….
    what: String,
    message_id: String,
    from: String,
    to: String,
    /// The RFC 5322 text, base64.
    raw: String,
    /// Unix ms.
    created_at: u64,
    attempts: u32,
    next_at: u64,
    state: State,
    lease_until: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pass {
    pub(crate) sent: usize,
    pub(crate) deferred: usize,
    pub(crate) failed: usize,
    /// Mails still waiting after the pass.
    pub(crate) waiting: usize,
}

pub(crate) struct Outbox {
    store: Arc<dyn SessionStore>,
    retry_delay: Duration,
    give_up_after: Duration,
}

impl Outbox {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        retry_delay: Duration,
        give_up_after: Duration,
    ) -> Outbox {
        Outbox {
            store,
            retry_delay,
            give_up_after,
        }
    }

    /// How long a record and the pending set live: past the time a mail is given up, so a
    /// mail is never lost to expiry while it may still be sent.
    fn ttl(&self) -> Duration {
        self.give_up_after + Duration::from_secs(3600)
    }

    /// The writes that queue `mail`: callers apply them in the same atomic batch as the
    /// state the mail is about (a link's record), so neither exists without the other.
    pub(crate) fn enqueue_ops(&self, what: &str, mail: &Composed) -> Vec<Op> {
        let now = now_ms();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let record = Queued {
            what: what.to_owned(),
            message_id: mail.message_id.clone(),
            from: mail.from.clone(),
            to: mail.to.clone(),
            raw: STANDARD.encode(&mail.raw),
            created_at: now,
            attempts: 0,
            next_at: now,
            state: State::Queued,
            lease_until: 0,
            last_error: None,
        };
        vec![
            Op::set(keys::outbox_message(&id), encode(&record), self.ttl()),
            Op::SetAdd {
                set: keys::OUTBOX.to_owned(),
                member: id,
                ttl: self.ttl(),
            },
        ]
    }

    /// Sends what is due, one mail at a time, and counts the outcomes.
    pub(crate) async fn deliver_due(&self, relay: &Relay) -> Result<Pass, StoreError> {
        let ids = self.store.set_members(keys::OUTBOX).await?;
        let keys: Vec<String> = ids.iter().map(|id| keys::outbox_message(id)).collect();
        let values = self.store.get_many(&keys).await?;
        let mut forget = Vec::new();
        let mut live = Vec::new();
        for (id, value) in ids.into_iter().zip(values) {
            let decoded = value
                .as_ref()
                .map(|bytes| serde_json::from_slice::<Queued>(bytes));
            match (value, decoded) {
                (Some(bytes), Some(Ok(record))) => live.push((id, bytes, record)),
                (_, Some(Err(e))) => {
                    tracing::error!(error = %e, id = %id, "dropped an unreadable mail from the outbox");
                    forget.extend(remove_ops(&id));
                }
                // Sent (or expired) meanwhile: only the set still names it.
                _ => forget.push(Op::SetRemove {
                    set: keys::OUTBOX.to_owned(),
                    member: id,
                }),
            }
        }
        if !forget.is_empty() {
            self.store.apply(forget).await?;
        }
        let now = now_ms();
        let mut due: Vec<_> = live
            .iter()
            .filter(|(_, _, r)| r.next_at <= now && r.lease_until <= now)
            .collect();
        due.sort_by_key(|(_, _, r)| r.created_at);
        let mut pass = Pass {
            waiting: live.len(),
            ..Pass::default()
        };
        metrics::gauge!("gatehouse_mail_queue_depth").set(live.len() as f64);
        for (id, bytes, record) in due.into_iter().take(PER_PASS) {
            self.attempt(relay, id, bytes.clone(), record.clone(), &mut pass)
                .await?;
        }
        metrics::gauge!("gatehouse_mail_queue_depth").set(pass.waiting as f64);
        Ok(pass)
    }

    /// Claims one mail, sends it and records the outcome.
    async fn attempt(
        &self,
        relay: &Relay,
        id: &str,
        stored: Bytes,
        record: Queued,
        pass: &mut Pass,
    ) -> Result<(), StoreError> {
        let key = keys::outbox_message(id);
        let now = now_ms();
        let age = Duration::from_millis(now.saturating_sub(record.created_at));
        let ttl = self.ttl().saturating_sub(age).max(Duration::from_secs(1));
        if age > self.give_up_after {
            // Claimed and deleted in one step, so a node that claimed it meanwhile keeps it.
            let swap = Swap {
                key: key.clone(),
                expected: Some(stored),
                value: Vec::new(),
                ttl,
            };
            if self.store.swap_then_apply(swap, remove_ops(id)).await? {
                tracing::error!(event = "mail_given_up", what = %record.what, message_id = %record.message_id,
                    attempts = record.attempts, last_error = record.last_error.as_deref().unwrap_or("-"),
                    "gave up on a mail that could not be delivered in time");
                metrics::counter!("gatehouse_mail_failed_total").increment(1);
                pass.failed += 1;
                pass.waiting = pass.waiting.saturating_sub(1);
            }
            return Ok(());
        }
        if record.state == State::Sending {
            tracing::warn!(event = "mail_resent", what = %record.what, message_id = %record.message_id,
                "sending again a mail whose earlier attempt was cut off (a stopped node): the relay may have it already; the Message-ID is the same");
        }
        let claimed = Queued {
            attempts: record.attempts + 1,
            state: State::Sending,
            // Past the longest a delivery may take, with room for a slow store write after.
            lease_until: now + millis(relay.limit() * 3 / 2),
            ..record.clone()
        };
        let claimed_bytes = encode(&claimed);
        let claim = Swap {
            key: key.clone(),
            expected: Some(stored),
            value: claimed_bytes.clone(),
            ttl,
        };
        if !self.store.swap_then_apply(claim, Vec::new()).await? {
            // Another node claimed it first.
            return Ok(());
        }
        let raw = STANDARD.decode(&claimed.raw).unwrap_or_default();
        match relay.send(&claimed.from, &claimed.to, &raw).await {
            Ok(answer) => {
                self.store.apply(remove_ops(id)).await?;
                tracing::info!(event = "mail_sent", what = %claimed.what, message_id = %claimed.message_id,
                    attempts = claimed.attempts, relay = %answer);
                metrics::counter!("gatehouse_mail_sent_total").increment(1);
                pass.sent += 1;
                pass.waiting = pass.waiting.saturating_sub(1);
            }
            Err(SendError::Permanent(e)) => {
                self.store.apply(remove_ops(id)).await?;
                tracing::error!(event = "mail_refused", what = %claimed.what, message_id = %claimed.message_id,
                    error = %e, "the relay refused a mail for good; it is dropped");
                metrics::counter!("gatehouse_mail_failed_total").increment(1);
                pass.failed += 1;
                pass.waiting = pass.waiting.saturating_sub(1);
            }
            Err(SendError::Transient(e)) => {
                let wait = backoff(self.retry_delay, claimed.attempts);
                let retry = Queued {
                    state: State::Queued,
                    lease_until: 0,
                    next_at: now_ms() + millis(wait),
                    last_error: Some(e.clone()),
                    ..claimed
                };
                let swap = Swap {
                    key,
                    expected: Some(Bytes::from(claimed_bytes)),
                    value: encode(&retry),
                    ttl,
                };
                self.store.swap_then_apply(swap, Vec::new()).await?;
                tracing::warn!(event = "mail_deferred", what = %retry.what, message_id = %retry.message_id,
                    attempts = retry.attempts, retry_in_s = wait.as_secs(), error = %e,
                    "the relay could not take a mail now; it will be retried");
                metrics::counter!("gatehouse_mail_retried_total").increment(1);
                pass.deferred += 1;
            }
        }
        Ok(())
    }
}

/// The wait after `attempts` failed attempts: `first`, doubling, at most an hour.
fn backoff(first: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    first.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

fn remove_ops(id: &str) -> Vec<Op> {
    vec![
        Op::Delete {
            key: keys::outbox_message(id),
        },
        Op::SetRemove {
            set: keys::OUTBOX.to_owned(),
            member: id.to_owned(),
        },
    ]
}

fn encode(record: &Queued) -> Vec<u8> {
    // Strings and numbers: serializing cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let first = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=10).map(|n| backoff(first, n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(backoff(first, u32::MAX).as_secs(), 3600);
        assert_eq!(backoff(Duration::from_secs(1), 2).as_secs(), 2);
    }
}
