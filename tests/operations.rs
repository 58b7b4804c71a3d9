//! Operating gatehouse: Prometheus metrics, backup and restore.

mod common;

use common::*;

backend_tests!(
    metrics_count_requests_logins_and_sessions,
    every_series_exists_from_the_first_scrape,
);

/// Alerts on `rate(...)` need their series before the first event: a fresh server's first
/// scrape names every series README documents (the per-route HTTP ones excepted), at zero.
async fn every_series_exists_from_the_first_scrape(backend: Backend) {
    let (sessions, users) = match backend {
        Backend::Embedded => ("embedded", "redb"),
        Backend::Redis(_) => ("redis", "redis"),
    };
    let server = Server::start(backend);
    let text = server.metrics_text().await;
    let mut expected: Vec<String> = ["ok", "failed", "regulated"]
        .iter()
        .map(|r| format!(r#"gatehouse_logins_total{{result="{r}"}}"#))
        .collect();
    expected.push("gatehouse_sessions_active".into());
    expected.push("gatehouse_argon2_queue_depth".into());
    expected.push("gatehouse_argon2_wait_seconds_count".into());
    for op in [
        "get",
        "apply",
        "swap",
        "incr",
        "get_many",
        "live_sessions",
        "set_members",
        "set_len",
        "ping",
        "close",
    ] {
        expected.push(format!(
            r#"gatehouse_store_errors_total{{store="sessions",backend="{sessions}",op="{op}"}}"#
        ));
    }
    for op in ["create", "by_email", "by_id", "update", "list"] {
        expected.push(format!(
            r#"gatehouse_store_errors_total{{store="users",backend="{users}",op="{op}"}}"#
        ));
    }
    for series in &expected {
        assert_eq!(
            metric_sample(&text, series),
            Some(0.0),
            "{series} in\n{text}"
        );
    }
    for name in [
        "gatehouse_logins_total",
        "gatehouse_store_errors_total",
        "gatehouse_sessions_active",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "HELP for {name}");
    }
}

async fn metrics_count_requests_logins_and_sessions(backend: Backend) {
    let server = Server::start(backend);
    let user = email("metrics");
    let t = server.signup(&user).await;
    server.login(&user, PASSWORD).await;
    server.login(&user, "wrong password").await;
    server.get_auth("/auth/me", &t.access).await;
    server.http.get(server.url("/nope")).send().await.unwrap();

    let r = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    let get = |k: &str| metric_sample(&text, k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
    assert_eq!(
        get(r#"gatehouse_http_requests_total{route="/auth/login",status="200"}"#),
        2.0
    );
    assert_eq!(
        get(r#"gatehouse_http_requests_total{route="/auth/login",status="401"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_http_requests_total{route="/auth/me",status="200"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_http_requests_total{route="other",status="404"}"#),
        1.0
    );
    assert_eq!(get(r#"gatehouse_logins_total{result="ok"}"#), 2.0);
    assert_eq!(get(r#"gatehouse_logins_total{result="failed"}"#), 1.0);
    assert_eq!(get("gatehouse_sessions_active"), 2.0);
    assert!(get(r#"gatehouse_http_request_duration_seconds_count{route="/auth/me"}"#) >= 1.0);
    // register + 3 logins went through the hashing threads
    assert!(get("gatehouse_argon2_wait_seconds_count") >= 4.0);
    assert_eq!(get("gatehouse_argon2_queue_depth"), 0.0);

    server.post_auth("/auth/logout", &t.access).await;
    let text = server.metrics_text().await;
    assert_eq!(metric_sample(&text, "gatehouse_sessions_active"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_their_own_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .start();
    assert_problem(
        server
            .http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let r = server
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("gatehouse_"));
    let r = server
        .http
        .get(format!("http://127.0.0.1:{port}/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the metrics address serves nothing else");
}

fn gatehouse(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
        .output()
        .expect("run gatehouse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_every_acknowledged_user() {
    let mut server = Server::start(Backend::Embedded);
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let user = email(&format!("before{i}"));
        assert_eq!(server.register(&user, PASSWORD).await.status(), 201);
        acknowledged.push(user);
    }
    let kept = server.signup(&email("kept")).await;

    // Writes keep flowing while the backup runs.
    let base = server.base.clone();
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut done = Vec::new();
        for i in 0..40 {
            let user = email(&format!("during{i}"));
            let r = http
                .post(format!("{base}/auth/register"))
                .json(&serde_json::json!({"email": user, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            if r.status() == 201 {
                done.push((std::time::Instant::now(), user));
            }
        }
        done
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.redb");
    let backup_started = std::time::Instant::now();
    let out = gatehouse(&["backup", file.to_str().unwrap()], &server.data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = load.await.unwrap();
    acknowledged.extend(
        during
            .into_iter()
            .filter(|(at, _)| *at < backup_started)
            .map(|(_, u)| u),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a backup holds password hashes");
    }

    // Restore is refused while the server holds the data dir.
    let out = gatehouse(&["restore", file.to_str().unwrap()], &server.data_dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
    server.stop();

    // Restore into a fresh data dir and check every acknowledged user.
    let fresh = tempfile::tempdir().unwrap();
    let out = gatehouse(&["restore", file.to_str().unwrap()], fresh.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        server.data_dir.join("jwt_secret"),
        fresh.path().join("jwt_secret"),
    )
    .unwrap();
    let restored = Server::builder(Backend::Embedded)
        .data_dir(fresh.path())
        .start();
    for user in &acknowledged {
        assert_eq!(
            restored.login(user, PASSWORD).await.status(),
            200,
            "{user} lost"
        );
    }
    // Sessions are not restored by default: a revoked session must not come back.
    assert_eq!(restored.me_status(&kept.access).await, 401);

    // --keep-sessions brings them back.
    let again = tempfile::tempdir().unwrap();
    let out = gatehouse(
        &["restore", "--keep-sessions", file.to_str().unwrap()],
        again.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        server.data_dir.join("jwt_secret"),
        again.path().join("jwt_secret"),
    )
    .unwrap();
    let with_sessions = Server::builder(Backend::Embedded)
        .data_dir(again.path())
        .start();
    assert_eq!(with_sessions.me_status(&kept.access).await, 200);

    // Garbage is refused.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = gatehouse(
        &["restore", junk.to_str().unwrap()],
        tempfile::tempdir().unwrap().path(),
    );
    assert!(!out.status.success());
}
