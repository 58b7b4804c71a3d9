//! Groups over real HTTP and the real CLI: `gatehouse group …` whether or not the server
//! runs, `user list` naming groups, `Remote-Groups` on forward-auth, `groups` in access rules
//! (alone and beside `roles`), and membership changes reaching every node within seconds.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, PASSWORD, Server, assert_problem, email};
use serde_json::Value;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

const CONFIG: &str = r#"
public_url = "http://auth.example.org:9091"
[access_control]
default_policy = "deny"
[[access_control.rules]]
domain = "media.example.org"
groups = ["media", "family"]
[[access_control.rules]]
domain = "ops.example.org"
roles = ["admin"]
groups = ["ops"]
[[access_control.rules]]
domain = "*.example.org"
"#;

fn start(backend: Backend, dir: &tempfile::TempDir) -> Server {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, CONFIG).expect("write config");
    Server::builder(backend)
        .env("GATEHOUSE_CONFIG", &path.display().to_string())
        .env("JWT_SECRET", SECRET)
        .start()
}

/// `gatehouse ARGS` on the server's data dir and backend; stdout on success.
fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args, "");
    assert!(
        out.status.success(),
        "gatehouse {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_err(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args, "");
    assert!(!out.status.success(), "gatehouse {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A forward-auth check for `host` as Traefik sends it; the status and `Remote-Groups`.
async fn check(server: &Server, host: &str, access: &str) -> (u16, Option<String>) {
    let r = server
        .http
        .get(server.url("/authz/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", "/")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let groups = r
        .headers()
        .get("remote-groups")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), groups)
}

/// Polls until `host` answers `want` for the token, for at most `within`; the time it took.
async fn until(server: &Server, host: &str, access: &str, want: u16, within: Duration) -> Duration {
    until_answer(server, host, access, |(status, _)| *status == want, within).await
}

/// Polls until `host`'s answer (status, `Remote-Groups`) satisfies `done`.
async fn until_answer(
    server: &Server,
    host: &str,
    access: &str,
    done: impl Fn(&(u16, Option<String>)) -> bool,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = check(server, host, access).await;
        if done(&answer) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{host} still answers {answer:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until forward-auth names exactly `groups` for the token (within 5 s).
async fn until_groups(server: &Server, access: &str, groups: &str) {
    let want = (200, Some(groups.to_owned()));
    until_answer(
        server,
        "wiki.example.org",
        access,
        |a| *a == want,
        Duration::from_secs(5),
    )
    .await;
}

async fn groups_cli_remote_groups_and_rules(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(backend, &dir);
    let ada = email("ada");
    let t = server.signup(&ada).await;

    // Before any group: signed in, `Remote-Groups` is there and empty; group rules refuse.
    assert_eq!(
        check(&server, "wiki.example.org", &t.access).await,
        (200, Some(String::new()))
    );
    assert_eq!(check(&server, "media.example.org", &t.access).await.0, 403);
    let r = server
        .http
        .get(server.url("/authz/forward-auth"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "media.example.org")
        .header("x-forwarded-uri", "/")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(r, 403).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("group"),
        "{problem}"
    );

    // The CLI, through the running server (embedded: its admin socket).
    assert!(cli_ok(&server, &["group", "add", "media"]).contains("created group media"));
    assert!(cli_ok(&server, &["group", "add", "media"]).contains("already exists"));
    cli_ok(&server, &["group", "add", "family"]);
    for bad in ["Media", "_x", "a,b", "a b", ""] {
        assert!(
            cli_err(&server, &["group", "add", bad]).contains("not a group name"),
            "{bad:?}"
        );
    }
    assert!(cli_err(&server, &["group", "add-member", "nope", &ada]).contains("no group"));
    assert!(
        cli_err(
            &server,
            &["group", "add-member", "media", "who@example.org"]
        )
        .contains("no user")
    );
    cli_ok(&server, &["group", "add-member", "media", &ada]);
    cli_ok(
        &server,
        &["group", "add-member", "family", &ada.to_uppercase()],
    );
    let list = cli_ok(&server, &["group", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("media") && l.trim_end().ends_with(" 1")),
        "{list}"
    );
    let users = cli_ok(&server, &["user", "list"]);
    assert!(
        users
            .lines()
            .any(|l| l.contains(&ada) && l.trim_end().ends_with("family,media")),
        "{users}"
    );

    // The same session, no new login: the change applies within seconds (this node at once).
    let took = until(
        &server,
        "media.example.org",
        &t.access,
        200,
        Duration::from_secs(5),
    )
    .await;
    assert!(took < Duration::from_secs(5));
    assert_eq!(
        check(&server, "media.example.org", &t.access).await,
        (200, Some("family,media".into())),
        "sorted, comma-separated"
    );
    // A rule with roles and groups asks for both: in `ops` but not an admin.
    cli_ok(&server, &["group", "add", "ops"]);
    cli_ok(&server, &["group", "add-member", "ops", &ada]);
    until_groups(&server, &t.access, "family,media,ops").await;
    assert_eq!(check(&server, "ops.example.org", &t.access).await.0, 403);

    // Leaving one group keeps the other; deleting the last one shuts the rule again.
    cli_ok(&server, &["group", "remove-member", "media", &ada]);
    until_groups(&server, &t.access, "family,ops").await;
    assert_eq!(
        check(&server, "media.example.org", &t.access).await,
        (200, Some("family,ops".into()))
    );
    assert!(cli_ok(&server, &["group", "del", "family"]).contains("1 member"));
    until(
        &server,
        "media.example.org",
        &t.access,
        403,
        Duration::from_secs(5),
    )
    .await;
    let list = cli_ok(&server, &["group", "list"]);
    assert!(!list.contains("family"), "{list}");
    assert!(cli_err(&server, &["group", "del", "family"]).contains("no group"));

    // The session was never ended by membership changes.
    assert_eq!(server.me_status(&t.access).await, 200);
}

/// Groups are kept with the users: they survive a restart and work with the server stopped.
async fn groups_persist_and_work_offline(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(backend, &dir);
    let bob = email("bob");
    server.signup(&bob).await;
    server.stop();
    cli_ok(&server, &["group", "add", "media"]);
    cli_ok(&server, &["group", "add-member", "media", &bob]);
    let server = server.restart_after_kill();
    let r = server.login(&bob, PASSWORD).await;
    let t = common::Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(
        check(&server, "media.example.org", &t.access).await,
        (200, Some("media".into()))
    );
}

/// Two nodes sharing Redis: a membership change or a disabled account made through one node
/// reaches the other's forward-auth decisions within 5 seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_reach_every_node_within_five_seconds() {
    let Some(backend) = Backend::redis() else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(backend.clone(), &dir_a);
    let b = start(backend, &dir_b);
    let cy = email("cy");
    let t = a.signup(&cy).await;
    // Warm B's view of the user: not in `media`.
    assert_eq!(check(&b, "media.example.org", &t.access).await.0, 403);
    cli_ok(&a, &["group", "add", "media"]);
    cli_ok(&a, &["group", "add-member", "media", &cy]);
    let took = until(
        &b,
        "media.example.org",
        &t.access,
        200,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("membership reached the other node in {took:?}");
    cli_ok(&a, &["group", "remove-member", "media", &cy]);
    until(
        &b,
        "media.example.org",
        &t.access,
        403,
        Duration::from_secs(5),
    )
    .await;
    cli_ok(&a, &["user", "disable", &cy]);
    until(
        &b,
        "wiki.example.org",
        &t.access,
        401,
        Duration::from_secs(5),
    )
    .await;
}

backend_tests!(
    groups_cli_remote_groups_and_rules,
    groups_persist_and_work_offline
);
