//! Credential changes against concurrent logins and writes, regulation that cannot be raced,
//! and the per-user bound on sessions (issue #19, classes 2, 3 and 8). Races are repeated
//! many times; each round asserts the guarantee, whatever the interleaving was.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

backend_tests!(
    a_login_racing_a_password_change_leaves_no_live_session,
    admin_changes_are_not_lost_to_self_service_writes,
    parallel_guesses_cannot_exceed_the_limit,
    every_secret_checking_endpoint_is_regulated,
    ipv6_clients_are_regulated_per_64,
    sessions_per_user_are_capped_oldest_first,
);

const NEW_PASSWORD: &str = "an entirely different passphrase 42";

async fn change_password(server: &Server, access: &str, current: &str, new: &str) -> u16 {
    server
        .http
        .post(server.url("/auth/password"))
        .bearer_auth(access)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_login_racing_a_password_change_leaves_no_live_session(backend: Backend) {
    let server = Server::start(backend);
    let mut raced = 0;
    for round in 0..25u64 {
        let user = email(&format!("race{round}"));
        let owner = server.signup(&user).await;
        // Start the login a little before, at the same time as, or after the change.
        let delay = Duration::from_micros((round % 5) * 400);
        let (login, changed) = tokio::join!(server.login(&user, PASSWORD), async {
            tokio::time::sleep(delay).await;
            change_password(&server, &owner.access, PASSWORD, NEW_PASSWORD).await
        });
        assert_eq!(changed, 200, "round {round}");
        // Once the change has returned, a login that checked the old password must not
        // hold a live session: its tokens are dead, or it was refused.
        match login.status().as_u16() {
            200 => {
                raced += 1;
                let t = Tokens::from(login.json::<serde_json::Value>().await.unwrap());
                assert_eq!(server.me_status(&t.access).await, 401, "round {round}");
                assert_problem(server.refresh(&t.refresh).await, 401).await;
            }
            401 => {}
            other => panic!("round {round}: login answered {other}"),
        }
        assert_eq!(server.login(&user, NEW_PASSWORD).await.status(), 200);
    }
    eprintln!("{raced} of 25 logins got tokens before the change ended them");
}

async fn admin_changes_are_not_lost_to_self_service_writes(backend: Backend) {
    // The test tries both passwords to find the current one: no regulation in the way.
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "0")
        .start();
    for round in 0..6 {
        let user = email(&format!("admin{round}"));
        let t = server.signup(&user).await;
        // The user flips their password back and forth while an admin changes the role.
        let passwords = [PASSWORD, NEW_PASSWORD];
        let self_service = async {
            let mut access = t.access.clone();
            let mut current = 0;
            for _ in 0..6 {
                let (now, next) = (passwords[current], passwords[1 - current]);
                let r = server
                    .http
                    .post(server.url("/auth/password"))
                    .bearer_auth(&access)
                    .json(&json!({"current_password": now, "new_password": next}))
                    .send()
                    .await
                    .unwrap();
                let r = if r.status() == 200 {
                    current = 1 - current;
                    r
                } else {
                    // The role change ended this session: sign in again and go on.
                    let r = server.login(&user, now).await;
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                    r
                };
                access = Tokens::from(r.json::<serde_json::Value>().await.unwrap()).access;
            }
        };
        let user_for_cli = user.clone();
        let admin = async {
            let server = &server;
            tokio::task::block_in_place(|| {
                server.cli(&["user", "set-role", &user_for_cli, "admin"], "")
            })
        };
        let ((), out) = tokio::join!(self_service, admin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Whatever the interleaving, the role change stands.
        let r = server.login(&user, PASSWORD).await;
        let r = if r.status() == 200 {
            r
        } else {
            server.login(&user, NEW_PASSWORD).await
        };
        assert_eq!(r.status(), 200, "round {round}: neither password works");
        let t = Tokens::from(r.json::<serde_json::Value>().await.unwrap());
        let me: serde_json::Value = server
            .get_auth("/auth/me", &t.access)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            me["role"], "admin",
            "round {round}: the admin's change was lost"
        );

        // Disabling while the user changes the password: the account stays disabled.
        let disable = async {
            let server = &server;
            tokio::task::block_in_place(|| server.cli(&["user", "disable", &user_for_cli], ""))
        };
        let current = if server.login(&user, PASSWORD).await.status() == 200 {
            PASSWORD
        } else {
            NEW_PASSWORD
        };
        let other = if current == PASSWORD {
            NEW_PASSWORD
        } else {
            PASSWORD
        };
        let (out, _) = tokio::join!(disable, change_password(&server, &t.access, current, other));
        assert!(out.status.success());
        for password in [PASSWORD, NEW_PASSWORD] {
            assert_eq!(
                server.login(&user, password).await.status(),
                401,
                "round {round}: a disabled account signed in"
            );
        }
    }
}

async fn parallel_guesses_cannot_exceed_the_limit(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "3")
        .env("GATEHOUSE_ARGON2__MAX_CONCURRENT", "2")
        .start();
    let user = email("burst");
    server.register(&user, PASSWORD).await;
    let guesses = (0..24).map(|i| {
        let server = &server;
        let user = user.clone();
        async move {
            server
                .login(&user, &format!("guess number {i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    // Reserved before hashing: never more checks than max_retries + argon2.max_concurrent,
    // however many guesses are in flight; the others are shed (503) or banned (429).
    assert!(
        checked <= 3 + 2,
        "{checked} guesses were checked: {statuses:?}"
    );
    assert!(checked >= 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    // The account is banned now, even for the right password.
    assert_eq!(server.login(&user, PASSWORD).await.status(), 429);
}

async fn every_secret_checking_endpoint_is_regulated(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "3")
        .env("GATEHOUSE_INTROSPECTION__CLIENT_ID", "rs")
        .env(
            "GATEHOUSE_INTROSPECTION__CLIENT_SECRET",
            "the right client secret 123",
        )
        .env("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start();
    // Wrong current passwords on /auth/password count against the account.
    let user = email("current");
    let t = server.signup(&user).await;
    for _ in 0..3 {
        assert_eq!(
            change_password(&server, &t.access, "wrong guess", NEW_PASSWORD).await,
            401
        );
    }
    assert_eq!(
        change_password(&server, &t.access, PASSWORD, NEW_PASSWORD).await,
        429
    );
    assert_eq!(server.login(&user, PASSWORD).await.status(), 429);

    // Wrong introspection client secrets count against the client address.
    let introspect = |secret: &'static str| {
        let server = &server;
        async move {
            server
                .http
                .post(server.url("/auth/introspect"))
                .header("x-forwarded-for", "198.51.100.77")
                .basic_auth("rs", Some(secret))
                .form(&[("token", "whatever")])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_problem(introspect("a wrong client secret").await, 401).await;
    }
    let r = introspect("the right client secret 123").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429).await;
    // Another address is not affected.
    let r = server
        .http
        .post(server.url("/auth/introspect"))
        .header("x-forwarded-for", "198.51.100.78")
        .basic_auth("rs", Some("the right client secret 123"))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn ipv6_clients_are_regulated_per_64(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "3")
        .env("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start();
    let login_from = |ip: &'static str, account: String, password: &'static str| {
        let server = &server;
        async move {
            server
                .http
                .post(server.url("/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": account, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let victim = email("v6");
    server.register(&victim, PASSWORD).await;
    // Three addresses of one /64, each guessing at a different (unknown) account.
    for (i, ip) in [
        "2001:db8:1:2::1",
        "2001:db8:1:2:aaaa::2",
        "2001:db8:1:2:ffff::3",
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            login_from(ip, email(&format!("nobody{i}")), "guess").await,
            401
        );
    }
    // The whole /64 is banned now, whichever address of it comes next.
    assert_eq!(
        login_from("2001:db8:1:2::9", victim.clone(), PASSWORD).await,
        429
    );
    // The next /64 is not.
    assert_eq!(
        login_from("2001:db8:1:3::1", victim.clone(), PASSWORD).await,
        200
    );
    let bans = server.cli(&["ban", "list"], "");
    let listed = String::from_utf8_lossy(&bans.stdout);
    assert!(listed.contains("ip:2001:db8:1:2::/64"), "{listed}");
}

async fn sessions_per_user_are_capped_oldest_first(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_SESSIONS__MAX_PER_USER", "3")
        .start();
    let user = email("cap");
    let mut sessions = vec![server.signup(&user).await];
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct created_at
        sessions.push(server.relogin(&user).await);
    }
    // The two oldest ended; the three newest live.
    for (i, t) in sessions.iter().enumerate() {
        let expected = if i < 2 { 401 } else { 200 };
        assert_eq!(server.me_status(&t.access).await, expected, "session {i}");
    }
    assert_problem(server.refresh(&sessions[0].refresh).await, 401).await;
    let listed: Vec<serde_json::Value> = server
        .get_auth("/auth/sessions", &sessions[4].access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
}
