//! The running server: `gatehouse serve` binds the listeners (HTTP, optional metrics and
//! RESP, the admin socket), reports readiness to systemd, serves until SIGINT or SIGTERM, then stops
//! accepting, finishes in-flight requests and flushes the session store.

use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;

/// `gatehouse serve`: builds the app, binds the listeners (HTTP, metrics, admin socket),
/// tells systemd it is ready, serves until SIGINT or SIGTERM, then drains and flushes.
pub(crate) async fn serve(config: Config) -> Result<(), String> {
    let listen = config.listen;
    // The recorder first: the app registers its series (at zero) as it is built.
    if let Some(handle) = crate::http::metrics::install() {
        // Histograms keep raw samples (in blocks of 64) until upkeep folds them into
        // buckets; without a scraper that would grow with every request. Four times a second:
        // with upkeep every five seconds the samples were 2.7 MB of heap at 41,000 requests/s
        // (heaptrack) and grew with the rate; the work per sample is the same however often
        // it runs.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let app = App::build(config, &crate::auth::secret::SecretInputs::from_env())
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    raise_fd_limit();
    let metrics = match app.config.metrics.listen {
        Some(metrics_addr) => {
            let metrics_listener = TcpListener::bind(metrics_addr)
                .await
                .map_err(|e| format!("cannot listen on {metrics_addr} (metrics.listen): {e}"))?;
            let serving = crate::http::serve(
                app.clone(),
                metrics_listener,
                crate::http::router::Surface::Metrics,
                std::future::pending(),
            );
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    // The RESP listener (bound before the admin socket, so a bad address or certificate
    // leaves nothing behind) stops with the HTTP one, and is closed before the store is
    // flushed.
    let (resp_stop, resp_stopped) = tokio::sync::watch::channel(false);
    let resp = match app.config.resp.clone() {
        Some(settings) => {
            let bound = crate::resp::bind(&settings).await?;
            // Not "listening": the test harness and scripts take that line's addr= as HTTP's.
            tracing::info!(resp = %bound.addr, tls = settings.tls.is_some(), "RESP listener ready");
            Some(tokio::spawn(crate::resp::serve(
                app.clone(),
                settings,
                bound,
                resp_stopped,
            )))
        }
        None => None,
    };
    let admin = crate::admin::bind(&app.config.data_dir)
        .map(|socket| tokio::spawn(crate::admin::serve(app.clone(), socket)));
    // Audit events kept for the admin page (they are logged either way).
    let _audit = crate::audit::start(app.auth.shared_store());
    // Mail: the lookups behind forgot and resend, and the delivery of the outbox (also what
    // other nodes or the CLI queued). Neither ever holds up an HTTP answer.
    let mail_requests = {
        let app = app.clone();
        tokio::spawn(async move { app.auth.run_mail_requests().await })
    };
    let delivery = app.auth.mail().is_some().then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            if let Some(mailer) = app.auth.mail() {
                mailer.run().await;
            }
        })
    });
    // Signal handlers are in place before anyone can learn we listen: a SIGTERM right after
    // "listening" still gets the graceful stop and the store flush.
    let stop = tokio::spawn(shutdown_signal());
    tokio::task::yield_now().await;
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "listening");
    // Both sockets are bound: tell systemd (Type=notify) that we are ready.
    crate::systemd::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("listening on {addr}")),
    ]);
    let watchdog = sd_notify::watchdog_enabled()
        .map(|interval| tokio::spawn(crate::systemd::watchdog(interval)));
    let shutdown = async {
        let _ = stop.await;
        let _ = resp_stop.send(true);
        crate::systemd::notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("shutting down: finishing in-flight requests"),
        ]);
    };
    crate::http::serve(
        app.clone(),
        listener,
        crate::http::router::Surface::Api,
        shutdown,
    )
    .await;
    // A mail being sent is cut off here; its lease runs out and the next start sends it
    // again, with the same Message-ID (GD-0012).
    for task in [admin, metrics, Some(mail_requests), delivery]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
    if let Some(resp) = resp {
        let _ = resp.await;
    }
    let _ = std::fs::remove_file(crate::admin::socket_path(&app.config.data_dir));
    app.auth
        .store()
        .close()
        .await
        .map_err(|e| format!("flushing the session store failed: {e}"))?;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The SIGTERM handler is registered when this is called,
/// not when first polled.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term_stream =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term_stream {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every connection is a file, and
/// the default soft limit (often 1024) would refuse connections long before
/// `limits.max_connections`.
// std offers no way to read or raise RLIMIT_NOFILE.
#[allow(unsafe_code)]
fn raise_fd_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
