//! Login counts per hour, for the admin overview: the same events as the
//! `gatehouse_logins_total` metric, kept in the session store (`store::keys::login_stats`) so
//! that the page shows every node's logins on Redis and survives a restart, without a
//! Prometheus server.
//!
//! Only checked logins count (`ok`, `failed`): an attempt refused by a ban costs no store
//! write, so a flood of banned attempts stays as cheap as regulation promises.

use std::sync::Arc;
use std::time::Duration;

use super::{AuthError, Service};
use crate::clock::now_secs;
use crate::store::{SessionStore, keys};

/// Hours the overview shows (the current one included).
pub(crate) const HOURS: u64 = 24;

/// How long an hour's counter lives after its first login: one hour more than is shown, so
/// the oldest bar is complete until it leaves the chart.
const COUNTER_TTL: Duration = Duration::from_secs((HOURS + 1) * 3600);

/// The outcome of a checked login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginResult {
    Ok,
    Failed,
}

impl LoginResult {
    fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
        }
    }
}

/// Logins in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    /// Unix second the hour starts.
    pub start: u64,
    pub ok: u64,
    pub failed: u64,
}

impl Service {
    /// Counts a checked login: the metric at once, the hour's counter in the background.
    /// The counter is a convenience for the admin page, so the login neither waits for its
    /// store write (one more commit on the embedded store) nor fails when it does.
    pub(super) fn count_login(&self, result: LoginResult) {
        metrics::counter!("gatehouse_logins_total", "result" => result.as_str()).increment(1);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store: Arc<dyn SessionStore> = self.store.clone();
        let key = keys::login_stats(result.as_str(), now_secs() / 3600);
        runtime.spawn(async move {
            if let Err(e) = store.incr_by(&key, 1, COUNTER_TTL).await {
                tracing::warn!(error = %e, "could not count a login for the admin overview");
            }
        });
    }

    /// Logins per hour over the last [`HOURS`] hours, oldest first: one `MGET`.
    pub async fn login_history(&self) -> Result<Vec<HourCount>, AuthError> {
        let now_hour = now_secs() / 3600;
        // (A clock stuck near 1970 shows fewer hours rather than underflowing.)
        let hours: Vec<u64> = ((now_hour + 1).saturating_sub(HOURS)..=now_hour).collect();
        let keys: Vec<String> = hours
            .iter()
            .flat_map(|h| {
                [
                    keys::login_stats(LoginResult::Ok.as_str(), *h),
                    keys::login_stats(LoginResult::Failed.as_str(), *h),
                ]
            })
            .collect();
        let values = self.store.get_many(&keys).await?;
        let count = |i: usize| -> u64 {
            values
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(hours
            .iter()
            .enumerate()
            .map(|(i, hour)| HourCount {
                start: hour * 3600,
                ok: count(2 * i),
                failed: count(2 * i + 1),
            })
            .collect())
    }
}
