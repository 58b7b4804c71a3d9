//! Upgrade from the first on-disk format of the embedded store (GD-0013): a data dir written
//! by the release before it (`tests/fixtures/v1-store`, made by `make_v1_store.py` with
//! 7ad4739) keeps working with today's binary: the store converts it when it opens, the old
//! access and refresh tokens keep working, sessions list as before, reuse detection still
//! knows the rotated session's earlier tokens, the bans hold, the RESP listener answers the
//! same keys, and `backup`/`restore` carry the converted store.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const CENTURY: &str = "3153600000";
const RESP_PASSWORD: &str = "upgrade-resp-password-0123";

fn fixture() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-store/tokens.json"),
    )
    .expect("fixture tokens");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// A private copy of the fixture's data dir.
fn copy_fixture(into: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-store/data");
    std::fs::create_dir_all(into).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// The settings the fixture was made with (tokens and bans that outlive any test run).
fn server(data: &Path) -> Server {
    Server::builder(Backend::Embedded)
        .data_dir(data)
        .env("GATEHOUSE_TOKENS__ACCESS_TTL", CENTURY)
        .env("GATEHOUSE_TOKENS__REFRESH_TTL", CENTURY)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "0")
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "2")
        .env("GATEHOUSE_REGULATION__BAN_TIME", CENTURY)
        .env("GATEHOUSE_REGULATION__FIND_TIME", CENTURY)
        .env("GATEHOUSE_TRUSTED_PROXIES", r#"["127.0.0.1"]"#)
        .env("GATEHOUSE_RESP__LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_RESP__PASSWORD", RESP_PASSWORD)
        .start()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn sid_of(refresh: &str) -> &str {
    refresh.split('.').next().unwrap()
}

async fn sessions(server: &Server, access: &str) -> Vec<Value> {
    let r = server.get_auth("/auth/sessions", access).await;
    assert_eq!(r.status(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

/// `redis-cli` against the RESP listener; `None` (said loudly) when it is not installed.
fn resp(server: &Server, args: &[&str]) -> Option<String> {
    let logs = server.logs();
    let addr = logs
        .lines()
        .find_map(|l| l.split("resp=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .expect("the RESP listener's address in the logs")
        .to_owned();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            host,
            "-p",
            port,
            "--no-auth-warning",
            "-a",
            RESP_PASSWORD,
        ])
        .args(args)
        .output();
    match out {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("redis-cli is not installed; CI must install it")
        }
        Err(_) => {
            eprintln!("SKIPPED: redis-cli is not installed; the RESP part did not run");
            None
        }
    }
}

async fn login_from(server: &Server, email: &str, password: &str, from: &str) -> u16 {
    server
        .http
        .post(server.url("/auth/login"))
        .header("x-forwarded-for", from)
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_first_format_keeps_working() {
    let f = fixture();
    let password = str_of(&f, "password").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_fixture(&data);
    let server = server(&data);
    assert!(
        server
            .logs()
            .contains("converted the session store to its compact on-disk format"),
        "the conversion is logged:\n{}",
        server.logs()
    );

    let ada = &f["users"]["ada"];
    let bob = &f["users"]["bob"];
    let rotated = &ada["sessions"][0];
    let second = &ada["sessions"][1];
    let bobs = &bob["sessions"][0];

    // Every access token of a live session works, and its sessions are listed as before.
    for s in [rotated, second, bobs] {
        assert_eq!(server.me_status(str_of(s, "access")).await, 200, "{s}");
    }
    let listed = sessions(&server, str_of(second, "access")).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = listed
        .iter()
        .find(|s| s["id"] == sid_of(str_of(rotated, "refresh")))
        .expect("the rotated session is listed");
    assert_eq!(
        first["user_agent"],
        "Mozilla/5.0 (X11; Linux x86_64) Fixture/1"
    );
    assert_eq!(first["ip"], "127.0.0.1");
    assert_eq!(sessions(&server, str_of(bobs, "access")).await.len(), 1);
    // The session bob ended before the upgrade stays ended.
    let ended = &bob["ended"];
    assert_eq!(server.me_status(str_of(ended, "access")).await, 401);
    assert_problem(server.refresh(str_of(ended, "refresh")).await, 401).await;

    // The RESP listener answers the converted keys as the Redis backend would hold them.
    let me: Value = server
        .get_auth("/auth/me", str_of(second, "access"))
        .await
        .json()
        .await
        .unwrap();
    let ada_id = str_of(&me, "id").to_owned();
    let session_key = format!("gatehouse:session:{}", sid_of(str_of(second, "refresh")));
    if let Some(got) = resp(&server, &["GET", &session_key]) {
        let record: Value = serde_json::from_str(&got).expect("a JSON session record");
        assert_eq!(record["uid"], ada_id.as_str());
        let members = resp(
            &server,
            &["SMEMBERS", &format!("gatehouse:user_sessions:{ada_id}")],
        )
        .unwrap();
        assert_eq!(members.lines().count(), 2, "{members}");
        let ttl: i64 = resp(&server, &["TTL", &session_key])
            .unwrap()
            .parse()
            .unwrap();
        assert!(ttl > 3_000_000_000, "{ttl}");
    }

    // Bans written before the upgrade hold: eve's account and the address she tried from.
    let eve = str_of(&f["users"]["eve"], "email");
    assert_eq!(
        login_from(&server, eve, &password, "198.51.100.7").await,
        429
    );
    let bob_email = str_of(bob, "email");
    assert_eq!(
        login_from(&server, bob_email, &password, "203.0.113.9").await,
        429
    );
    assert_eq!(
        login_from(&server, bob_email, &password, "198.51.100.7").await,
        200
    );

    // The rotated session refreshes; its earlier tokens are still reuse and end it.
    let r = server.refresh(str_of(rotated, "refresh")).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(server.me_status(&next.access).await, 200);
    let earlier = rotated["earlier"][0].as_str().unwrap();
    assert_problem(server.refresh(earlier).await, 401).await;
    assert_eq!(server.me_status(&next.access).await, 401);
    assert_problem(server.refresh(&next.refresh).await, 401).await;
    assert_eq!(sessions(&server, str_of(second, "access")).await.len(), 1);

    // Started again, nothing is converted twice and everything still holds.
    let mut server = server.restart();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.logs().contains("converted"), "{}", server.logs());
    assert_eq!(server.me_status(str_of(second, "access")).await, 200);
    assert_eq!(server.me_status(str_of(bobs, "access")).await, 200);

    // The offline backup of the converted store restores with its sessions.
    assert!(server.stop().success());
    let copy = dir.path().join("copy.redb");
    let out = server.cli(&["backup", copy.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = dir.path().join("restored");
    copy_fixture(&restored);
    std::fs::remove_file(restored.join("gatehouse.redb")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["restore", copy.to_str().unwrap(), "--keep-sessions"])
        .env_clear()
        .env("GATEHOUSE_DATA_DIR", &restored)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = self::server(&restored);
    assert_eq!(server.me_status(str_of(second, "access")).await, 200);
    assert_eq!(server.me_status(str_of(bobs, "access")).await, 200);
}

/// A backup taken by an older release (the first format) restores into today's binary,
/// which converts it when it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_the_first_format_restores_and_converts() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_fixture(&data);
    let old_backup = dir.path().join("old-backup.redb");
    std::fs::copy(data.join("gatehouse.redb"), &old_backup).unwrap();
    std::fs::remove_file(data.join("gatehouse.redb")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["restore", old_backup.to_str().unwrap(), "--keep-sessions"])
        .env_clear()
        .env("GATEHOUSE_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = server(&data);
    assert!(server.logs().contains("converted the session store"));
    let second = &f["users"]["ada"]["sessions"][1];
    assert_eq!(server.me_status(str_of(second, "access")).await, 200);
    assert_eq!(sessions(&server, str_of(second, "access")).await.len(), 2);
}
