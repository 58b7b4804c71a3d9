//! Operating gatehouse: Prometheus metrics, backup and restore.

mod common;

use common::*;

backend_tests!(metrics_count_requests_logins_and_sessions);

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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
    let get = |k: &str| sample(&text, k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
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
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&text, "gatehouse_sessions_active"), Some(1.0));
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
