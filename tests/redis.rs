//! What only the Redis backend promises: several nodes sharing one Redis, atomic rotation and
//! unique emails across nodes, failing closed and healing when Redis goes away and returns.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-for-every-node-of-the-cluster";

fn node(backend: &Backend) -> Server {
    Server::builder(backend.clone())
        .env("JWT_SECRET", SECRET)
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_users_sessions_and_revocations() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let (a, b, c) = (node(&backend), node(&backend), node(&backend));
    let user = email("cluster");
    assert_eq!(a.register(&user, PASSWORD).await.status(), 201);
    let r = b.login(&user, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let t0 = Tokens::from(r.json::<Value>().await.unwrap());
    let r = c.refresh(&t0.refresh).await;
    assert_eq!(r.status(), 200);
    let t1 = Tokens::from(r.json::<Value>().await.unwrap());
    for n in [&a, &b, &c] {
        assert_eq!(n.me_status(&t1.access).await, 200);
    }
    assert_eq!(a.post_auth("/auth/logout", &t1.access).await.status(), 204);
    // Revocation holds on the very next request, on every node.
    for n in [&b, &c, &a] {
        assert_eq!(n.me_status(&t1.access).await, 401);
        assert_eq!(n.me_status(&t0.access).await, 401);
    }
    assert_eq!(b.refresh(&t1.refresh).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_across_nodes_have_one_winner() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    // Without a grace window exactly one of the racing refreshes may succeed.
    let nodes: Vec<Server> = (0..3)
        .map(|_| {
            Server::builder(backend.clone())
                .env("JWT_SECRET", SECRET)
                .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
                .start()
        })
        .collect();
    for round in 0..5 {
        let t = nodes[0].signup(&email(&format!("race{round}"))).await;
        let results =
            futures_join(nodes.iter().cycle().take(9).map(|n| n.refresh(&t.refresh))).await;
        let winners: Vec<&reqwest::Response> =
            results.iter().filter(|r| r.status() == 200).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|r| r.status()).collect::<Vec<_>>()
        );
        assert!(
            results
                .iter()
                .all(|r| r.status() == 200 || r.status() == 401)
        );
    }

    // With the default grace window every racer gets the same successor: one session.
    let graceful: Vec<Server> = (0..3).map(|_| node(&backend)).collect();
    let t = graceful[0].signup(&email("tabs")).await;
    let results = futures_join(graceful.iter().map(|n| n.refresh(&t.refresh))).await;
    let mut successors = Vec::new();
    for r in results {
        assert_eq!(r.status(), 200);
        successors.push(Tokens::from(r.json::<Value>().await.unwrap()).refresh);
    }
    successors.dedup();
    assert_eq!(
        successors.len(),
        1,
        "one successor, not independent sessions"
    );
    let r = graceful[2].refresh(&successors[0]).await;
    assert_eq!(r.status(), 200, "the session lives on");
    let next = Tokens::from(r.json::<Value>().await.unwrap());
    let sessions: Vec<Value> = graceful[1]
        .get_auth("/auth/sessions", &next.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_stay_unique_under_concurrent_registration_on_many_nodes() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let nodes: Vec<Server> = (0..3).map(|_| node(&backend)).collect();
    for round in 0..3 {
        let user = email(&format!("dup{round}"));
        let variants = [user.clone(), user.to_uppercase(), user.clone()];
        let results = futures_join(
            nodes
                .iter()
                .cycle()
                .take(9)
                .enumerate()
                .map(|(i, n)| n.register(&variants[i % 3], PASSWORD)),
        )
        .await;
        let created = results.iter().filter(|r| r.status() == 201).count();
        let taken = results.iter().filter(|r| r.status() == 409).count();
        assert_eq!((created, taken), (1, 8), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_one_node_sessions_shared_by_all() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let Backend::Redis(redis) = &backend else {
        unreachable!()
    };
    // The owner keeps users in its redb; the other node shares only sessions.
    let mixed = |s: ServerBuilder| {
        s.env("JWT_SECRET", SECRET)
            .env("GATEHOUSE_SESSIONS__BACKEND", "redis")
            .env("GATEHOUSE_SESSIONS__REDIS_URL", &redis.url())
            .start()
    };
    let owner = mixed(Server::builder(Backend::Embedded));
    let verifier = mixed(Server::builder(Backend::Embedded));
    let t = owner.signup(&email("owner")).await;
    let list = verifier.get_auth("/auth/sessions", &t.access).await;
    assert_eq!(list.status(), 200, "the other node verifies tokens");
    assert_eq!(
        verifier.post_auth("/auth/logout", &t.access).await.status(),
        204
    );
    assert_eq!(
        owner.me_status(&t.access).await,
        401,
        "and revokes them for the owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_and_heals() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let Backend::Redis(redis) = &backend else {
        unreachable!()
    };
    let server = Server::builder(backend.clone())
        .env("GATEHOUSE_REDIS__COMMAND_TIMEOUT_MS", "300")
        .start();
    let user = email("outage");
    let t = server.signup(&user).await;
    assert_eq!(server.me_status(&t.access).await, 200);

    redis.kill();
    for _ in 0..5 {
        let r = server.get_auth("/auth/me", &t.access).await;
        assert_eq!(r.status(), 503, "an unchecked token is never accepted");
        assert!(r.headers().contains_key("retry-after"));
        assert_problem(r, 503).await;
    }
    assert_problem(server.login(&user, PASSWORD).await, 503).await;
    assert_problem(server.refresh(&t.refresh).await, 503).await;
    assert_problem(
        server.http.get(server.url("/readyz")).send().await.unwrap(),
        503,
    )
    .await;
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Each failure is counted by store, backend and operation.
    let metrics = server.metrics_text().await;
    let failed = |series: &str| metric_sample(&metrics, series).unwrap_or(0.0);
    assert!(
        failed(r#"gatehouse_store_errors_total{store="sessions",backend="redis",op="get"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(
        failed(r#"gatehouse_store_errors_total{store="sessions",backend="redis",op="ping"}"#)
            >= 1.0,
        "{metrics}"
    );

    // Redis comes back empty (no persistence in this test): service resumes by itself.
    redis.restart();
    let started = Instant::now();
    loop {
        let ready = server
            .http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if ready == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.register(&email("after"), PASSWORD).await.status(),
        201
    );
    let r = server
        .post_json("/auth/login", &json!({"email": user, "password": PASSWORD}))
        .await;
    assert_eq!(
        r.status(),
        401,
        "the user was lost with the unpersisted Redis, not invented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protected_and_unix_socket_redis() {
    let Some(secured) = RedisServer::start_with(&["--requirepass", "s3cret-pw"]) else {
        return;
    };
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/2", secured.port);
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_SESSIONS__BACKEND", "redis")
        .env("GATEHOUSE_SESSIONS__REDIS_URL", &url)
        .env("GATEHOUSE_USERS__BACKEND", "redis")
        .start();
    let t = server.signup(&email("authed")).await;
    assert_eq!(server.me_status(&t.access).await, 200);
    assert!(
        !server.logs().contains("s3cret-pw"),
        "the Redis password is not logged"
    );

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let Some(unix) = RedisServer::start_with(&[
        "--unixsocket",
        &socket.display().to_string(),
        "--unixsocketperm",
        "700",
    ]) else {
        return;
    };
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_SESSIONS__BACKEND", "redis")
        .env(
            "GATEHOUSE_SESSIONS__REDIS_URL",
            &format!("redis+unix://{}?db=1", socket.display()),
        )
        .start();
    let t = server.signup(&email("unix")).await;
    assert_eq!(server.me_status(&t.access).await, 200);
    drop(unix);
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(futures).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_redis_crash_with_aof() {
    let Some(redis) = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let redis = std::sync::Arc::new(redis);
    let backend = Backend::Redis(redis.clone());
    let server = Server::builder(backend)
        .env("GATEHOUSE_REDIS__COMMAND_TIMEOUT_MS", "300")
        .start();
    let user = email("aof");
    let kept = server.signup(&user).await;
    let ended = server.relogin(&user).await;
    assert_eq!(
        server
            .post_auth("/auth/logout", &ended.access)
            .await
            .status(),
        204
    );

    redis.kill(); // SIGKILL: only what was fsynced to the AOF survives
    redis.restart();
    let started = Instant::now();
    while server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.me_status(&kept.access).await,
        200,
        "the session survived"
    );
    assert_eq!(
        server.me_status(&ended.access).await,
        401,
        "the logout survived"
    );
    assert_eq!(
        server.login(&user, PASSWORD).await.status(),
        200,
        "the user survived"
    );
}

/// `rediss://`: TLS to Redis, verified against a CA given in `SSL_CERT_FILE` (the system
/// trust store otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_redis() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=gatehouse-test-ca",
    ]) && openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    if !made {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "openssl is needed in CI"
        );
        eprintln!("SKIPPED: openssl not available; the TLS test did not run");
        return;
    }
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let path = |f: &str| dir.join(f).display().to_string();
    let Some(redis) = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]) else {
        return;
    };
    let url = format!("rediss://localhost:{tls_port}/0");
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_SESSIONS__BACKEND", "redis")
        .env("GATEHOUSE_SESSIONS__REDIS_URL", &url)
        .env("SSL_CERT_FILE", &path("ca.pem"))
        .env("JWT_SECRET", SECRET)
        .start();
    let t = server.signup(&email("tls")).await;
    assert_eq!(server.me_status(&t.access).await, 200);

    // Without the CA the certificate is refused: fail closed with 503, never plain text.
    let untrusting = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_SESSIONS__BACKEND", "redis")
        .env("GATEHOUSE_SESSIONS__REDIS_URL", &url)
        .env("GATEHOUSE_REDIS__COMMAND_TIMEOUT_MS", "500")
        .env("JWT_SECRET", SECRET)
        .start();
    assert_problem(
        untrusting
            .http
            .get(untrusting.url("/readyz"))
            .send()
            .await
            .unwrap(),
        503,
    )
    .await;
    assert_problem(untrusting.get_auth("/auth/me", &t.access).await, 503).await;
    drop(redis);
}
