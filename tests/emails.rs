//! One person, one address: emails are unique after NFKC and full case folding, forms that
//! render ambiguously are refused, and accounts indexed under the earlier normalisation
//! (trimmed lower case) are found after an upgrade. On both user backends (redb, Redis).

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    one_account_per_normalised_email,
    ambiguous_emails_are_refused,
    accounts_indexed_before_nfkc_are_found,
);

/// `jürgen<n>@example.org` composed (NFC) and decomposed (NFD).
fn jurgen(n: &str) -> (String, String) {
    (
        format!("j\u{fc}rgen{n}@example.org"),
        format!("ju\u{308}rgen{n}@example.org"),
    )
}

fn unique() -> String {
    email("x").trim_end_matches("@example.org").to_owned()
}

async fn one_account_per_normalised_email(backend: Backend) {
    let server = Server::start(backend);
    let (nfc, nfd) = jurgen(&unique());
    let r = server.register(&nfc, PASSWORD).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].clone();
    // The decomposed form, in any case, is the same account.
    for variant in [nfd.clone(), nfd.to_uppercase(), nfc.to_uppercase()] {
        let problem = assert_problem(server.register(&variant, PASSWORD).await, 409).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("already exists")
        );
    }
    // Registered decomposed, an account is stored and shown composed (NFC).
    let (nfc2, nfd2) = jurgen(&unique());
    let r = server.register(&nfd2, PASSWORD).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], nfc2.as_str());
    // Either form signs in, to the one account, which keeps the email as registered.
    for variant in [&nfc, &nfd, &nfd.to_uppercase()] {
        let r = server.login(variant, PASSWORD).await;
        assert_eq!(r.status(), 200, "{variant:?}");
        let access = Tokens::from(r.json::<Value>().await.unwrap()).access;
        let me: Value = server
            .get_auth("/auth/me", &access)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["id"], id);
        assert_eq!(me["email"], nfc.as_str());
    }

    // ASCII case variants, and full case folding where lower case is not enough.
    let n = unique();
    let ada = format!("Ada{n}@Example.org");
    assert_eq!(server.register(&ada, PASSWORD).await.status(), 201);
    assert_problem(server.register(&ada.to_lowercase(), PASSWORD).await, 409).await;
    assert_eq!(
        server.login(&ada.to_uppercase(), PASSWORD).await.status(),
        200
    );
    let strasse = format!("stra\u{df}e{n}@example.org");
    assert_eq!(server.register(&strasse, PASSWORD).await.status(), 201);
    assert_problem(
        server
            .register(&format!("STRASSE{n}@EXAMPLE.ORG"), PASSWORD)
            .await,
        409,
    )
    .await;
    assert_eq!(
        server
            .login(&format!("Strasse{n}@example.org"), PASSWORD)
            .await
            .status(),
        200
    );
    // A login typed with full-width letters finds the account (registering one is refused).
    let wide: String = format!("ada{n}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap()
            } else {
                c
            }
        })
        .collect();
    assert_eq!(
        server
            .login(&format!("{wide}@example.org"), PASSWORD)
            .await
            .status(),
        200
    );
}

async fn ambiguous_emails_are_refused(backend: Backend) {
    let server = Server::start(backend);
    for (bad, why) in [
        ("\"ada lovelace\"@example.org", "space"),
        ("\"ada\"@example.org", "quoted"),
        ("ada(work)@example.org", "comments"),
        ("ada@[192.0.2.1]", "IP address"),
        ("ada@192.0.2.1", "IP address"),
        ("ada\u{200b}@example.org", "invisible"),
        ("ada\u{202e}gro.elpmaxe@example.org", "invisible"),
        ("ada\u{a0}@example.org", "space"),
        ("\u{ff41}da@example.org", "compatibility"),
        ("p\u{430}ypal@example.org", "scripts"),
        ("ada@ex\u{430}mple.org", "scripts"),
        (
            "ada@example.org\r\nRemote-User: admin@example.org",
            "control",
        ),
    ] {
        let problem = assert_problem(server.register(bad, PASSWORD).await, 422).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{bad:?}: {detail}");
    }
}

/// Rewrites the email index of `data_dir`'s redb file as a release before NFKC made it:
/// the user with `email` is indexed under its old key (trimmed lower case) only, and the
/// index is marked old. With `twin`, a copy of that user, one second younger, is added under
/// the id and email given, indexed under its own old key.
fn redb_to_old_keys(data_dir: &Path, email: &str, twin: Option<(uuid::Uuid, &str)>) {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
    const EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
    const META: TableDefinition<&str, u64> = TableDefinition::new("user_meta");
    let db = redb::Database::open(data_dir.join("gatehouse.redb")).unwrap();
    let new_key = gatehouse::domain::normalize_email(email);
    let id = {
        let read = db.begin_read().unwrap();
        let emails = read.open_table(EMAILS).unwrap();
        emails.get(new_key.as_str()).unwrap().unwrap().value()
    };
    let txn = db.begin_write().unwrap();
    {
        let mut emails = txn.open_table(EMAILS).unwrap();
        emails.remove(new_key.as_str()).unwrap();
        emails.insert(email.to_lowercase().as_str(), id).unwrap();
        txn.open_table(META).unwrap().remove("email_keys").unwrap();
        // Before, the record kept the email exactly as typed (today: composed, NFC).
        {
            let mut users = txn.open_table(USERS).unwrap();
            let mut record: Value =
                serde_json::from_slice(users.get(id).unwrap().unwrap().value()).unwrap();
            record["email"] = json!(email);
            let bytes = serde_json::to_vec(&record).unwrap();
            users.insert(id, bytes.as_slice()).unwrap();
        }
        if let Some((twin_id, twin)) = twin {
            let mut users = txn.open_table(USERS).unwrap();
            let mut record: Value =
                serde_json::from_slice(users.get(id).unwrap().unwrap().value()).unwrap();
            record["id"] = json!(twin_id.to_string());
            record["email"] = json!(twin);
            record["created_at"] = json!(record["created_at"].as_u64().unwrap() + 1);
            let bytes = serde_json::to_vec(&record).unwrap();
            users.insert(twin_id.as_u128(), bytes.as_slice()).unwrap();
            emails
                .insert(twin.to_lowercase().as_str(), twin_id.as_u128())
                .unwrap();
        }
    }
    txn.commit().unwrap();
}

/// One Redis command over RESP; the reply as text (integers and bulk strings).
fn redis(port: u16, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).bytes());
        out.extend(a.bytes());
        out.extend(b"\r\n");
    }
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Accounts from before (indexed under trimmed lower case) are found by either form after
/// the upgrade and their old keys are gone; of two accounts that became one address, the
/// one already holding the key keeps it and the other is named in a warning.
async fn accounts_indexed_before_nfkc_are_found(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::builder(backend.clone())
        .data_dir(dir.path())
        .start();
    let n = unique();
    let strasse = format!("Stra\u{df}e{n}@example.org");
    let (nfc, nfd) = jurgen(&n);
    assert_eq!(server.register(&strasse, PASSWORD).await.status(), 201);
    let r = server.register(&nfd, PASSWORD).await;
    assert_eq!(r.status(), 201);
    let jurgen_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.stop();

    // Index them as before: `straße…` (lower case, no folding) and the NFD form, plus a
    // twin of Jürgen registered in NFC, whose old key is the new key of both.
    let twin_id = uuid::Uuid::now_v7();
    match &backend {
        Backend::Embedded => {
            redb_to_old_keys(dir.path(), &strasse, None);
            redb_to_old_keys(dir.path(), &nfd, Some((twin_id, &nfc)));
        }
        Backend::Redis(r) => {
            let key = |k: &str| format!("gatehouse:user_email:{k}");
            for email in [&strasse, &nfd] {
                let new = gatehouse::domain::normalize_email(email);
                let reply = redis(r.port, &["RENAME", &key(&new), &key(&email.to_lowercase())]);
                assert!(reply.starts_with("+OK"), "{reply}");
            }
            let record = redis(r.port, &["GET", &format!("gatehouse:user:{jurgen_id}")]);
            let json_start = record.find('{').unwrap();
            let mut twin: Value = serde_json::from_str(record[json_start..].trim_end()).unwrap();
            // Before, the record kept the email exactly as typed (today: composed, NFC).
            let mut old = twin.clone();
            old["email"] = json!(nfd);
            redis(
                r.port,
                &[
                    "SET",
                    &format!("gatehouse:user:{jurgen_id}"),
                    &old.to_string(),
                ],
            );
            twin["id"] = json!(twin_id.to_string());
            twin["email"] = json!(nfc);
            twin["created_at"] = json!(twin["created_at"].as_u64().unwrap() + 1);
            let twin_key = format!("gatehouse:user:{twin_id}");
            redis(r.port, &["SET", &twin_key, &twin.to_string()]);
            redis(r.port, &["SADD", "gatehouse:users", &twin_id.to_string()]);
            redis(
                r.port,
                &["SET", &key(&nfc.to_lowercase()), &twin_id.to_string()],
            );
            redis(r.port, &["DEL", "gatehouse:user_email_keys"]);
        }
    }

    let server = Server::builder(backend.clone())
        .data_dir(dir.path())
        .start();
    for variant in [
        strasse.clone(),
        strasse.to_uppercase(),
        format!("strasse{n}@example.org"),
    ] {
        assert_eq!(
            server.login(&variant, PASSWORD).await.status(),
            200,
            "{variant}"
        );
    }
    assert_problem(
        server
            .register(&format!("STRASSE{n}@example.org"), PASSWORD)
            .await,
        409,
    )
    .await;
    // The twin held the key (its old key was already the new one): both forms reach it.
    for variant in [&nfc, &nfd] {
        let t = server.relogin(variant).await;
        let me: Value = server
            .get_auth("/auth/me", &t.access)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["id"], twin_id.to_string(), "{variant:?}");
    }
    assert_problem(server.register(&nfd, PASSWORD).await, 409).await;
    let logs = server.logs();
    assert!(
        logs.contains("two accounts have one email") && logs.contains(&jurgen_id),
        "{logs}"
    );
    // The old key of the account that moved is gone.
    if let Backend::Redis(r) = &backend {
        let old = format!("gatehouse:user_email:{}", strasse.to_lowercase());
        assert_eq!(redis(r.port, &["EXISTS", &old]).trim(), ":0");
    }
}
