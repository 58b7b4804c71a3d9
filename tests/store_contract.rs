//! The behaviour the `SessionStore` and `UserStore` traits promise, held to both backends:
//! the embedded store (moka + redb) and the redb user store on a temporary data dir, and the
//! Redis stores on a real `redis-server`. The service relies on exactly these semantics
//! (GD-0006: compare-and-set rotation, versioned user writes), so each backend must agree.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::RedisServer;
use gatehouse::domain::{Role, User};
use gatehouse::store::database::Db;
use gatehouse::store::embedded::EmbeddedStore;
use gatehouse::store::redb_users::RedbUserStore;
use gatehouse::store::redis::{RedisConnection, RedisSessionStore, RedisUserStore};
use gatehouse::store::{KeyInfo, KeyKind, Op, SessionStore, Swap, UserStore, UserStoreError};
use uuid::Uuid;

/// One backend pair, and what keeps it alive.
struct Stores {
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserStore>,
    _dir: Option<tempfile::TempDir>,
    _redis: Option<RedisServer>,
}

fn embedded() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &dir.path().join("gatehouse.redb")).unwrap();
    Stores {
        sessions: Arc::new(
            EmbeddedStore::open(db.clone(), 1000, Duration::from_millis(50)).unwrap(),
        ),
        users: Arc::new(RedbUserStore::open(db).unwrap()),
        _dir: Some(dir),
        _redis: None,
    }
}

fn redis() -> Option<Stores> {
    let server = RedisServer::start()?;
    let conn = |prefix: &str| {
        RedisConnection::open(
            &server.url(),
            prefix,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap()
    };
    Some(Stores {
        sessions: Arc::new(RedisSessionStore::new(conn("contract:"))),
        users: Arc::new(RedisUserStore::new(conn("contract:"))),
        _dir: None,
        _redis: Some(server),
    })
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::embedded()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(stores) = super::redis() {
                        super::$name(stores).await
                    }
                }
            )*
        }
    };
}

contract!(
    values_live_for_their_ttl,
    sets_expire_as_a_whole,
    set_sizes_follow_every_change,
    swap_has_exactly_one_winner_and_applies_its_ops_only_then,
    create_only_swap_has_one_winner_and_never_overwrites,
    counters_count_up_and_down_within_their_window,
    get_many_answers_in_order,
    live_sessions_are_counted_without_scanning,
    keys_are_inspected_like_type_and_pttl,
    user_emails_are_unique,
    user_writes_are_compare_and_set,
    email_changes_move_the_index_atomically,
);

fn set(key: &str, value: &str, ms: u64) -> Op {
    Op::set(
        key.into(),
        value.as_bytes().to_vec(),
        Duration::from_millis(ms),
    )
}

async fn values_live_for_their_ttl(s: Stores) {
    let s = s.sessions;
    s.apply(vec![set("a", "1", 10_000), set("b", "2", 150)])
        .await
        .unwrap();
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(s.get("missing").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.get("b").await.unwrap(), None, "expired");
    s.apply(vec![Op::Delete { key: "a".into() }]).await.unwrap();
    assert_eq!(s.get("a").await.unwrap(), None, "deleted");
    s.ping().await.unwrap();
}

async fn sets_expire_as_a_whole(s: Stores) {
    let s = s.sessions;
    let add = |m: &str, ms: u64| Op::SetAdd {
        set: "s".into(),
        member: m.into(),
        ttl: Duration::from_millis(ms),
    };
    s.apply(vec![add("x", 250), add("y", 250)]).await.unwrap();
    s.apply(vec![Op::SetRemove {
        set: "s".into(),
        member: "x".into(),
    }])
    .await
    .unwrap();
    assert_eq!(s.set_members("s").await.unwrap(), ["y"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.set_members("s").await.unwrap().is_empty());
}

/// `set_len` (SCARD) agrees with `set_members` through adds, repeats, removals, a swap's
/// ops, DEL, expiry and a fresh start of an expired set; the embedded store answers it from
/// sizes it keeps after a set's first count, so the count must be asked in between changes.
async fn set_sizes_follow_every_change(s: Stores) {
    let s = s.sessions;
    let add = |set: &str, m: &str, ms: u64| Op::SetAdd {
        set: set.into(),
        member: m.into(),
        ttl: Duration::from_millis(ms),
    };
    let remove = |m: &str| Op::SetRemove {
        set: "n".into(),
        member: m.into(),
    };
    assert_eq!(s.set_len("n").await.unwrap(), 0, "no set");
    s.apply(vec![add("n", "a", 10_000), add("n", "b", 10_000)])
        .await
        .unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 2, "first count");
    // An add of a member already there, a removal of one that is not: no change.
    s.apply(vec![add("n", "a", 10_000), remove("zz")])
        .await
        .unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 2);
    s.apply(vec![add("n", "c", 10_000), add("other", "a", 10_000)])
        .await
        .unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 3);
    assert_eq!(s.set_len("other").await.unwrap(), 1);
    s.apply(vec![remove("a")]).await.unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 2);
    // A swap's ops count only when it wins.
    s.apply(vec![set("k", "v", 10_000)]).await.unwrap();
    let swap = |expected: &'static str| Swap {
        key: "k".into(),
        expected: Some(Bytes::from_static(expected.as_bytes())),
        value: b"w".to_vec(),
        ttl: Duration::from_secs(10),
    };
    assert!(
        !s.swap_then_apply(swap("nope"), vec![add("n", "d", 10_000)])
            .await
            .unwrap()
    );
    assert_eq!(s.set_len("n").await.unwrap(), 2);
    assert!(
        s.swap_then_apply(swap("v"), vec![add("n", "d", 10_000)])
            .await
            .unwrap()
    );
    assert_eq!(s.set_len("n").await.unwrap(), 3);
    let mut members = s.set_members("n").await.unwrap();
    members.sort();
    assert_eq!(members, ["b", "c", "d"]);
    // Emptied member by member, then refilled.
    s.apply(vec![remove("b"), remove("c"), remove("d")])
        .await
        .unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 0);
    s.apply(vec![add("n", "e", 10_000)]).await.unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 1);
    // DEL of the whole set.
    s.apply(vec![Op::Delete { key: "n".into() }]).await.unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 0);
    // Expiry: the set reads empty, and an add starts it afresh.
    s.apply(vec![add("n", "f", 150), add("n", "g", 150)])
        .await
        .unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.set_len("n").await.unwrap(), 0, "expired");
    s.apply(vec![add("n", "h", 10_000)]).await.unwrap();
    assert_eq!(s.set_len("n").await.unwrap(), 1, "a fresh set");
    assert_eq!(s.set_members("n").await.unwrap(), ["h"]);
}

/// Eight swaps made by `swap` from the values `<prefix>1`..`<prefix>8`, at once, each with a
/// marker write as its op: exactly one wins, it holds the key, and only its marker was
/// written.
async fn one_of_eight_swaps_wins(
    s: &Arc<dyn SessionStore>,
    prefix: &str,
    swap: impl Fn(&str) -> Swap,
) {
    let marker = |m: &str| vec![set(&format!("marker:{m}"), "1", 10_000)];
    let attempts = (1..=8).map(|i| {
        let to = format!("{prefix}{i}");
        let (swap, ops) = (swap(&to), marker(&to));
        let s = s.clone();
        async move { (s.swap_then_apply(swap, ops).await.unwrap(), to) }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&String> = results.iter().filter(|(w, _)| *w).map(|(_, v)| v).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let key = swap("").key;
    assert_eq!(
        s.get(&key).await.unwrap().as_deref(),
        Some(winners[0].as_bytes())
    );
    for (won, to) in &results {
        let marked = s.get(&format!("marker:{to}")).await.unwrap().is_some();
        assert_eq!(marked, *won, "ops of {to} applied only if its swap won");
    }
}

async fn swap_has_exactly_one_winner_and_applies_its_ops_only_then(s: Stores) {
    let s = s.sessions;
    s.apply(vec![set("session:k", "v0", 10_000)]).await.unwrap();
    let swap = |to: &str| Swap {
        key: "session:k".into(),
        expected: Some(Bytes::from_static(b"v0")),
        value: to.as_bytes().to_vec(),
        ttl: Duration::from_secs(10),
    };
    one_of_eight_swaps_wins(&s, "v", swap).await;
    let marker = |m: &str| vec![set(&format!("marker:{m}"), "1", 10_000)];
    // A swap of an absent key does nothing, not even create it.
    let absent = Swap {
        key: "session:gone".into(),
        ..swap("x")
    };
    assert!(!s.swap_then_apply(absent, marker("gone")).await.unwrap());
    assert_eq!(s.get("session:gone").await.unwrap(), None);
    assert_eq!(s.get("marker:gone").await.unwrap(), None);
}

/// `expected: None` [SET NX]: how an authorization code's first use claims it.
async fn create_only_swap_has_one_winner_and_never_overwrites(s: Stores) {
    let s = s.sessions;
    let claim = |to: &str| Swap {
        key: "oidc_code:c1".into(),
        expected: None,
        value: to.as_bytes().to_vec(),
        ttl: Duration::from_millis(300),
    };
    one_of_eight_swaps_wins(&s, "use", claim).await;
    // A live value of any kind blocks it, a set included.
    s.apply(vec![Op::SetAdd {
        set: "oidc_code:c2".into(),
        member: "m".into(),
        ttl: Duration::from_secs(10),
    }])
    .await
    .unwrap();
    assert!(
        !s.swap_then_apply(
            Swap {
                key: "oidc_code:c2".into(),
                ..claim("x")
            },
            Vec::new()
        )
        .await
        .unwrap()
    );
    // Once the value expired, the key can be claimed afresh.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(s.swap_then_apply(claim("again"), Vec::new()).await.unwrap());
    assert_eq!(
        s.get("oidc_code:c1").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

async fn counters_count_up_and_down_within_their_window(s: Stores) {
    let s = s.sessions;
    let window = Duration::from_millis(300);
    assert_eq!(s.incr_by("c", 1, window).await.unwrap(), 1);
    assert_eq!(s.incr_by("c", 2, window).await.unwrap(), 3);
    assert_eq!(
        s.incr_by("c", -5, window).await.unwrap(),
        0,
        "never below zero"
    );
    assert_eq!(s.incr_by("c", 1, window).await.unwrap(), 1);
    // The window is armed by the first increment and not moved by later ones.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        s.incr_by("c", 1, window).await.unwrap(),
        1,
        "a fresh window"
    );
}

async fn get_many_answers_in_order(s: Stores) {
    let s = s.sessions;
    s.apply(vec![set("m1", "a", 10_000), set("m3", "c", 10_000)])
        .await
        .unwrap();
    let keys = ["m3", "m2", "m1"].map(String::from);
    let values = s.get_many(&keys).await.unwrap();
    let values: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
    assert_eq!(values, [Some(&b"c"[..]), None, Some(&b"a"[..])]);
    assert!(s.get_many(&[]).await.unwrap().is_empty());
}

async fn live_sessions_are_counted_without_scanning(s: Stores) {
    let s = s.sessions;
    let base = s.live_sessions().await.unwrap();
    s.apply(vec![
        set("session:1", "a", 10_000),
        set("session:2", "b", 10_000),
        set("session:3", "c", 200),
        set("other:1", "x", 10_000),
    ])
    .await
    .unwrap();
    assert_eq!(s.live_sessions().await.unwrap(), base + 3);
    // Rewriting a session is not a new one; deleting one is one less.
    s.apply(vec![
        set("session:1", "a2", 10_000),
        Op::Delete {
            key: "session:2".into(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.live_sessions().await.unwrap(), base + 2);
    // An expired session stops counting (the embedded store at its purge, every 50 ms here).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.live_sessions().await.unwrap(), base + 1);
}

/// `inspect` is `TYPE` + `PTTL`: values and sets, their time left, nothing for absent,
/// expired or emptied keys (Redis has no empty sets).
async fn keys_are_inspected_like_type_and_pttl(s: Stores) {
    let s = s.sessions;
    let add = |set: &str, m: &str, ms: u64| Op::SetAdd {
        set: set.into(),
        member: m.into(),
        ttl: Duration::from_millis(ms),
    };
    s.apply(vec![
        set("session:i", "v", 10_000),
        set("session:short", "v", 150),
        add("user_sessions:i", "a", 20_000),
        add("user_sessions:gone", "b", 20_000),
    ])
    .await
    .unwrap();
    let within = |info: Option<KeyInfo>, kind: KeyKind, max_ms: u64| {
        let info = info.unwrap_or_else(|| panic!("expected a {kind:?}"));
        assert_eq!(info.kind, kind);
        let ttl = info
            .ttl
            .expect("every key gatehouse writes expires")
            .as_millis() as u64;
        assert!(
            ttl > max_ms - 2_000 && ttl <= max_ms,
            "{ttl} ms left of {max_ms}"
        );
    };
    within(
        s.inspect("session:i").await.unwrap(),
        KeyKind::String,
        10_000,
    );
    within(
        s.inspect("user_sessions:i").await.unwrap(),
        KeyKind::Set,
        20_000,
    );
    assert_eq!(s.inspect("session:missing").await.unwrap(), None);
    // The last member removed: the set no longer exists.
    s.apply(vec![Op::SetRemove {
        set: "user_sessions:gone".into(),
        member: "b".into(),
    }])
    .await
    .unwrap();
    assert_eq!(s.inspect("user_sessions:gone").await.unwrap(), None);
    // Expired, and deleted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.inspect("session:short").await.unwrap(), None);
    s.apply(vec![
        Op::Delete {
            key: "session:i".into(),
        },
        Op::Delete {
            key: "user_sessions:i".into(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.inspect("session:i").await.unwrap(), None);
    assert_eq!(s.inspect("user_sessions:i").await.unwrap(), None);
}

fn user(email: &str) -> User {
    User {
        id: Uuid::now_v7(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        role: Role::User,
        created_at: 1,
        disabled: false,
        version: 0,
        credential_version: 0,
        groups: Vec::new(),
        consents: Vec::new(),
        factors: Default::default(),
        email_verified: false,
    }
}

async fn user_emails_are_unique(s: Stores) {
    let users = s.users;
    let ada = user("ada@example.org");
    users.create(&ada).await.unwrap();
    assert!(matches!(
        users.create(&user("ADA@example.org")).await,
        Err(UserStoreError::EmailTaken)
    ));
    let found = users.by_email("Ada@Example.org").await.unwrap().unwrap();
    assert_eq!(found.id, ada.id);
    assert_eq!(users.by_id(ada.id).await.unwrap().unwrap().email, ada.email);
    assert!(users.by_email("bob@example.org").await.unwrap().is_none());
    assert!(users.by_id(Uuid::now_v7()).await.unwrap().is_none());
    assert_eq!(users.list().await.unwrap().len(), 1);
}

async fn user_writes_are_compare_and_set(s: Stores) {
    let users = s.users;
    let ada = user("cas@example.org");
    users.create(&ada).await.unwrap();
    let read = users.by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(read.version, 0);
    // Two writers read version 0; the first write wins, the second is refused.
    let admin = User {
        role: Role::Admin,
        ..read.clone()
    };
    let self_service = User {
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3".into(),
        ..read.clone()
    };
    users.update(&admin).await.unwrap();
    assert!(matches!(
        users.update(&self_service).await,
        Err(UserStoreError::Conflict)
    ));
    let now = users.by_id(ada.id).await.unwrap().unwrap();
    assert_eq!((now.role, now.version), (Role::Admin, 1));
    assert_eq!(now.password_hash, read.password_hash);
    // Concurrent writers from the same version: exactly one succeeds.
    let writes = (0..6).map(|i| {
        let users = users.clone();
        let mut u = now.clone();
        u.created_at = i;
        async move { users.update(&u).await.is_ok() }
    });
    let ok = futures::future::join_all(writes)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 1);
    assert_eq!(users.by_id(ada.id).await.unwrap().unwrap().version, 2);
    // A user that does not exist cannot be updated into existence.
    assert!(matches!(
        users.update(&user("ghost@example.org")).await,
        Err(UserStoreError::Conflict)
    ));
}

async fn email_changes_move_the_index_atomically(s: Stores) {
    let users = s.users;
    let ada = user("ada.old@example.org");
    let bob = user("bob@example.org");
    users.create(&ada).await.unwrap();
    users.create(&bob).await.unwrap();
    // Another account's email (in any case) is refused, and nothing changes.
    assert!(matches!(
        users.change_email(&ada, "BOB@example.org").await,
        Err(UserStoreError::EmailTaken)
    ));
    assert_eq!(users.by_id(ada.id).await.unwrap().unwrap().version, 0);
    // The move: the new email finds the account, the old one is free again.
    let verified = User {
        email_verified: true,
        ..ada.clone()
    };
    users
        .change_email(&verified, "Ada.New@example.org")
        .await
        .unwrap();
    let now = users
        .by_email("ada.new@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.id, now.version), (ada.id, 1));
    assert_eq!(now.email, "Ada.New@example.org");
    assert!(now.email_verified);
    assert!(
        users
            .by_email("ada.old@example.org")
            .await
            .unwrap()
            .is_none()
    );
    users.create(&user("ada.old@example.org")).await.unwrap();
    // Based on a stale read: refused, like `update`.
    assert!(matches!(
        users.change_email(&ada, "ada.third@example.org").await,
        Err(UserStoreError::Conflict)
    ));
    assert!(
        users
            .by_email("ada.third@example.org")
            .await
            .unwrap()
            .is_none()
    );
    // A change of case only keeps the same index entry.
    users
        .change_email(&now, "ADA.NEW@example.org")
        .await
        .unwrap();
    assert_eq!(
        users
            .by_email("ada.new@example.org")
            .await
            .unwrap()
            .unwrap()
            .email,
        "ADA.NEW@example.org"
    );
}
