//! Wall-clock helpers: every timestamp gatehouse stores is Unix time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    now().as_secs()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}

fn now() -> Duration {
    // A clock before 1970 is a broken host; treat it as the epoch rather than panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// RFC 3339 rendering (UTC, seconds) of a Unix timestamp, as the API returns it.
pub(crate) fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
