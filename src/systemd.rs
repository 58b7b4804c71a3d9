//! systemd integration (`Type=notify`): readiness, stopping and watchdog pings over
//! `NOTIFY_SOCKET`. Without that variable every call is a no-op.

/// Sends a state change to systemd's notify socket; nothing happens without `NOTIFY_SOCKET`.
pub(crate) fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog (`WatchdogSec=`) at half its interval for as long as the
/// runtime schedules tasks; a stuck runtime stops the pings and systemd restarts us.
pub(crate) async fn watchdog(interval: std::time::Duration) {
    // tokio panics on a zero period; WATCHDOG_USEC=1 would make one.
    let mut tick = tokio::time::interval((interval / 2).max(std::time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify(&[sd_notify::NotifyState::Watchdog]);
    }
}
