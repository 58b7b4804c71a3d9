//! Rotation without accumulation (GD-0005): a session's stored state stays the same size
//! however often it refreshes, every earlier token is still recognised as reuse, and the
//! grace window forgives only the token rotated last. And the embedded store's file stays
//! flat under churn: the space of ended and expired sessions is used again.

mod common;

use std::time::Duration;

use common::*;

backend_tests!(
    thousands_of_rotations_leave_the_state_flat,
    earlier_tokens_are_reuse_however_old,
    grace_forgives_only_the_token_rotated_last,
    churn_reuses_the_space_of_ended_sessions,
    a_week_of_churn_keeps_the_file_flat,
);

const ROTATIONS: usize = 3000;

/// What the backend holds: the redb file's size (embedded) or the number of keys (Redis).
fn footprint(server: &Server) -> u64 {
    match &server.backend {
        Backend::Embedded => std::fs::metadata(server.data_dir.join("gatehouse.redb"))
            .expect("database file")
            .len(),
        Backend::Redis(redis) => redis_keys(redis),
    }
}

fn redis_keys(redis: &RedisServer) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "dbsize"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("DBSIZE")
}

async fn rotate(server: &Server, refresh: &str) -> Tokens {
    let r = server.refresh(refresh).await;
    assert_eq!(r.status(), 200);
    Tokens::from(r.json::<serde_json::Value>().await.unwrap())
}

/// Lets the embedded store's group commits and page reuse settle before a size is read.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn thousands_of_rotations_leave_the_state_flat(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
        .start();
    let user = email("flat");
    let mut t = server.signup(&user).await;
    // Warm up: the first rotations may allocate the pages every later one reuses.
    for _ in 0..200 {
        t = rotate(&server, &t.refresh).await;
    }
    settle().await;
    let before = footprint(&server);
    for _ in 0..ROTATIONS {
        t = rotate(&server, &t.refresh).await;
    }
    settle().await;
    let after = footprint(&server);
    eprintln!("footprint before {before}, after {ROTATIONS} rotations {after}");
    match &server.backend {
        // Per rotation, the old design kept a ~650-byte record: 3000 rotations were ~2 MB.
        // Allow a few redb pages of slack, not anything that scales with the rotations.
        Backend::Embedded => assert!(
            after <= before + 64 * 1024,
            "the database grew from {before} to {after} bytes over {ROTATIONS} rotations"
        ),
        Backend::Redis(_) => {
            assert_eq!(after, before, "{ROTATIONS} rotations changed the key count")
        }
    }
    // The session is still one live session and works.
    assert_eq!(server.me_status(&t.access).await, 200);
}

async fn earlier_tokens_are_reuse_however_old(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
        .start();
    let user = email("old");
    server.signup(&user).await;
    for probe in ["first", "middle"] {
        let first = server.relogin(&user).await;
        let mut t = rotate(&server, &first.refresh).await;
        let mut middle = None;
        for i in 0..1000 {
            if i == 500 {
                middle = Some(t.refresh.clone());
            }
            t = rotate(&server, &t.refresh).await;
        }
        let earlier = match probe {
            "first" => first.refresh,
            _ => middle.unwrap(),
        };
        assert_problem(server.refresh(&earlier).await, 401).await;
        // Reuse ended the whole session: the current tokens are dead too.
        assert_problem(server.refresh(&t.refresh).await, 401).await;
        assert_eq!(server.me_status(&t.access).await, 401, "{probe}");
    }
    assert!(server.logs().contains("refresh_reuse_detected"));
}

async fn grace_forgives_only_the_token_rotated_last(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "30")
        .start();
    let user = email("grace");
    let t0 = server.signup(&user).await;
    let t1 = rotate(&server, &t0.refresh).await;
    let t2 = rotate(&server, &t1.refresh).await;
    // t1 is the token rotated last: repeating it answers the same successor, t2.
    let again = rotate(&server, &t1.refresh).await;
    assert_eq!(again.refresh, t2.refresh);
    assert_eq!(server.me_status(&again.access).await, 200);
    // t0 was rotated seconds ago too, but not last: reuse, and the session ends.
    assert_problem(server.refresh(&t0.refresh).await, 401).await;
    assert_problem(server.refresh(&t2.refresh).await, 401).await;
    assert_eq!(server.me_status(&t2.access).await, 401);
}

async fn churn_reuses_the_space_of_ended_sessions(backend: Backend) {
    if !matches!(backend, Backend::Embedded) {
        return; // Redis reclaims deleted keys itself; this is about the redb file.
    }
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
        .start();
    let user = email("churn");
    server.signup(&user).await;
    let cycle = |n: usize| {
        let server = &server;
        let user = user.clone();
        async move {
            for _ in 0..n {
                let t = server.relogin(&user).await;
                let t = rotate(server, &t.refresh).await;
                assert_eq!(
                    server.post_auth("/auth/logout", &t.access).await.status(),
                    204
                );
            }
        }
    };
    cycle(150).await;
    settle().await;
    let before = footprint(&server);
    cycle(600).await;
    settle().await;
    let after = footprint(&server);
    eprintln!("database before {before}, after 600 sessions {after} bytes");
    assert!(
        after <= before + 64 * 1024,
        "600 sessions begun and ended grew the database from {before} to {after} bytes"
    );
}

/// Simulated days of the churn below; a "day" lasts a few seconds: sessions live
/// `tokens.refresh_ttl` = 2 s after their last refresh, purged every second.
const DAYS: usize = 7;

/// A week of churn with every way a session ends: each day, every user signs in a few
/// times and refreshes, some sessions are logged out, one user logs out everywhere, one
/// session is ended by reuse, and the rest are abandoned to expire and be purged. The file
/// must not grow after the first days have sized it (there is no clock to fake: short
/// lifetimes stand in for a week's).
async fn a_week_of_churn_keeps_the_file_flat(backend: Backend) {
    if !matches!(backend, Backend::Embedded) {
        return; // Redis expires and reclaims keys itself; this is about the redb file.
    }
    let server = Server::builder(backend)
        .env("GATEHOUSE_TOKENS__REFRESH_TTL", "2")
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
        .env("GATEHOUSE_SESSIONS__PURGE_INTERVAL", "1")
        .start();
    let users: Vec<String> = (0..12).map(|i| email(&format!("week{i}"))).collect();
    for user in &users {
        server.signup(user).await;
    }
    let mut sizes = Vec::new();
    for day in 0..DAYS {
        for (i, user) in users.iter().enumerate() {
            let mut open = Vec::new();
            for _ in 0..4 {
                let t = server.relogin(user).await;
                let t = rotate(&server, &t.refresh).await;
                open.push(rotate(&server, &t.refresh).await);
            }
            match (i + day) % 4 {
                0 => {
                    let t = &open[0];
                    assert_eq!(
                        server
                            .post_auth("/auth/logout-all", &t.access)
                            .await
                            .status(),
                        204
                    );
                }
                1 => {
                    let t = open.pop().unwrap();
                    assert_eq!(
                        server.post_auth("/auth/logout", &t.access).await.status(),
                        204
                    );
                }
                2 => {
                    // Reuse: presenting a consumed token ends the session.
                    let t = open.pop().unwrap();
                    let next = rotate(&server, &t.refresh).await;
                    assert_problem(server.refresh(&t.refresh).await, 401).await;
                    assert_eq!(server.me_status(&next.access).await, 401);
                }
                _ => {} // everything abandoned: it expires
            }
        }
        // Every session left expires 2 s after its last refresh; the purge runs each second.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let size = footprint(&server);
        eprintln!("day {day}: database {size} bytes");
        sizes.push(size);
    }
    let text = server.metrics_text().await;
    assert_eq!(
        metric_sample(&text, "gatehouse_sessions_active"),
        Some(0.0),
        "every session ended or expired"
    );
    // Days 0-1 size the file; the next five reuse its pages.
    let sized = sizes[1];
    let last = sizes[DAYS - 1];
    assert!(
        last <= sized + 64 * 1024,
        "a week of churn grew the database from {sized} to {last} bytes: {sizes:?}"
    );
}
