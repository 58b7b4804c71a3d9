//! The listener's Prometheus series. Every one is registered at zero when the listener
//! starts, so `rate()` alerts work before the first connection; the handles are resolved
//! once, so counting a command is one atomic add, not a lookup by name.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gatehouse_resp_connections` | gauge | — |
//! | `gatehouse_resp_connections_total` | counter | `result`: `accepted`, `refused` (over `resp.max_connections`) |
//! | `gatehouse_resp_commands_total` | counter | `command`: each command answered, `write` (refused `-READONLY`), `unknown` |
//! | `gatehouse_resp_auth_total` | counter | `result`: `ok`, `failed`, `regulated` (refused by a ban, unchecked) |
//! | `gatehouse_resp_protocol_errors_total` | counter | — |

use metrics::{Counter, Gauge};

use super::table::COMMANDS;

pub(crate) struct RespMetrics {
    pub(crate) open: Gauge,
    pub(crate) accepted: Counter,
    pub(crate) refused: Counter,
    /// One per entry of [`COMMANDS`], in its order.
    commands: Vec<Counter>,
    pub(crate) writes: Counter,
    pub(crate) unknown: Counter,
    pub(crate) auth_ok: Counter,
    pub(crate) auth_failed: Counter,
    pub(crate) auth_regulated: Counter,
    pub(crate) protocol_errors: Counter,
}

const CONNECTIONS: &str = "gatehouse_resp_connections";
const CONNECTIONS_TOTAL: &str = "gatehouse_resp_connections_total";
const COMMANDS_TOTAL: &str = "gatehouse_resp_commands_total";
const AUTH_TOTAL: &str = "gatehouse_resp_auth_total";
const PROTOCOL_ERRORS: &str = "gatehouse_resp_protocol_errors_total";

impl RespMetrics {
    /// Registers (and describes) every series at zero.
    pub(crate) fn register() -> Self {
        use metrics::{describe_counter, describe_gauge};
        describe_gauge!(CONNECTIONS, "open connections to the RESP listener");
        describe_counter!(
            CONNECTIONS_TOTAL,
            "RESP connections by result: accepted, refused (over resp.max_connections)"
        );
        describe_counter!(
            COMMANDS_TOTAL,
            "RESP commands by command; write (refused READONLY) and unknown for the rest"
        );
        describe_counter!(
            AUTH_TOTAL,
            "RESP AUTH attempts by result: ok, failed, regulated (refused by a ban, unchecked)"
        );
        describe_counter!(
            PROTOCOL_ERRORS,
            "RESP connections closed for a malformed or oversized request"
        );
        let counter = |name: &'static str, label: &'static str, value: &'static str| {
            let c = metrics::counter!(name, label => value);
            c.absolute(0);
            c
        };
        let open = metrics::gauge!(CONNECTIONS);
        open.set(0.0);
        let protocol_errors = metrics::counter!(PROTOCOL_ERRORS);
        protocol_errors.absolute(0);
        RespMetrics {
            open,
            accepted: counter(CONNECTIONS_TOTAL, "result", "accepted"),
            refused: counter(CONNECTIONS_TOTAL, "result", "refused"),
            commands: COMMANDS
                .iter()
                .map(|spec| counter(COMMANDS_TOTAL, "command", spec.name))
                .collect(),
            writes: counter(COMMANDS_TOTAL, "command", "write"),
            unknown: counter(COMMANDS_TOTAL, "command", "unknown"),
            auth_ok: counter(AUTH_TOTAL, "result", "ok"),
            auth_failed: counter(AUTH_TOTAL, "result", "failed"),
            auth_regulated: counter(AUTH_TOTAL, "result", "regulated"),
            protocol_errors,
        }
    }

    /// Counts a command of [`COMMANDS`] by its index.
    pub(crate) fn command(&self, index: usize) {
        if let Some(c) = self.commands.get(index) {
            c.increment(1);
        }
    }
}
