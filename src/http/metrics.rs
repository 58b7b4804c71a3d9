//! Prometheus metrics: the recorder, the names, and `GET /metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gatehouse_http_requests_total` | counter | `route`, `status` |
//! | `gatehouse_http_request_duration_seconds` | histogram | `route` |
//! | `gatehouse_logins_total` | counter | `result`: `ok`, `failed`, `regulated` |
//! | `gatehouse_sessions_active` | gauge (read at scrape) | — |
//! | `gatehouse_argon2_queue_depth` | gauge | — |
//! | `gatehouse_argon2_wait_seconds` | histogram | — |
//! | `gatehouse_store_errors_total` | counter | `store`, `backend`, `op` |
//! | `gatehouse_mail_sent_total`, `_retried_total`, `_failed_total` | counter | — |
//! | `gatehouse_mail_queue_depth` | gauge | — |
//!
//! Every series but the per-route HTTP ones exists, at zero, from the first scrape.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::response::{HttpResponse, text};
use crate::app::App;

/// Latency buckets, seconds: token checks live in the first few, logins in the middle.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` if another recorder was installed first.
pub(crate) fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The `# HELP` line of every series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "gatehouse_http_requests_total",
        "HTTP requests answered, by route pattern and status"
    );
    describe_histogram!(
        "gatehouse_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "time to answer, by route pattern"
    );
    describe_counter!(
        "gatehouse_logins_total",
        "password logins by result: ok, failed, regulated (refused by a ban, unchecked)"
    );
    describe_gauge!("gatehouse_sessions_active", "live sessions");
    describe_gauge!(
        "gatehouse_argon2_queue_depth",
        "password hashes waiting for a hashing thread"
    );
    describe_histogram!(
        "gatehouse_argon2_wait_seconds",
        metrics::Unit::Seconds,
        "time a password hash waited for a hashing thread"
    );
    describe_counter!(
        "gatehouse_store_errors_total",
        "failed store operations, by store (sessions, users), backend and operation"
    );
    describe_counter!("gatehouse_mail_sent_total", "mails the SMTP relay took");
    describe_counter!(
        "gatehouse_mail_retried_total",
        "mail delivery attempts deferred (4xx, no connection, timeout) and retried later"
    );
    describe_counter!(
        "gatehouse_mail_failed_total",
        "mails refused for good (5xx) or given up after email.give_up_after"
    );
    describe_gauge!(
        "gatehouse_mail_queue_depth",
        "mails waiting in the outbox, as the delivery task last saw it"
    );
}

pub(crate) fn record_request(route: &'static str, status: StatusCode, elapsed: Duration) {
    let (requests, duration) = request_series(route, status);
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
}

/// The two series of a route and status, registered once: building the labelled key and
/// looking it up in the recorder's registry on every request was 3–5 % of a token check's
/// CPU (BENCHMARKS.md, *profile*). Bounded: routes × the statuses they answer.
type RequestSeries = (metrics::Counter, metrics::Histogram);

fn request_series(route: &'static str, status: StatusCode) -> RequestSeries {
    type Registered = std::sync::RwLock<HashMap<(&'static str, u16), RequestSeries>>;
    static REGISTERED: OnceLock<Registered> = OnceLock::new();
    let register = || {
        (
            metrics::counter!("gatehouse_http_requests_total", "route" => route, "status" => status.as_str().to_owned()),
            metrics::histogram!("gatehouse_http_request_duration_seconds", "route" => route),
        )
    };
    // Before the recorder exists a handle would be a no-op forever: do not keep it.
    if !matches!(HANDLE.get(), Some(Some(_))) {
        return register();
    }
    let registered = REGISTERED.get_or_init(Default::default);
    let key = (route, status.as_u16());
    if let Some(series) = registered
        .read()
        .ok()
        .and_then(|map| map.get(&key).cloned())
    {
        return series;
    }
    let series = register();
    if let Ok(mut map) = registered.write() {
        map.insert(key, series.clone());
    }
    series
}

/// Prometheus' text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn render(app: &App) -> HttpResponse {
    let Some(handle) = install() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            EXPOSITION,
            "metrics recorder unavailable\n".into(),
        );
    };
    match app.auth.store().live_sessions().await {
        Ok(n) => metrics::gauge!("gatehouse_sessions_active").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "cannot count sessions for /metrics"),
    }
    handle.run_upkeep();
    text(StatusCode::OK, EXPOSITION, handle.render())
}
