//! The admin pages (`/admin`, issue #15) over real HTTP on both backends: who may see them,
//! every action as the plain form post a browser without JavaScript sends (cookie, `Origin`
//! and the form's `csrf` field), refusals of cross-site posts, search and pages of users,
//! bans and the overview's login counts. Then, in headless Chromium (`browser_*`), every page
//! at desktop and phone widths: signed in through `/login`, no horizontal scroll at 390 px,
//! under 50 KB, no request to another origin, and no serious or critical axe-core finding.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::browser::{WebDriver, free_port, require};
use common::{Backend, PASSWORD, Server, assert_problem, browser_cookies, email, set_cookies};
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use serde_json::{Value, json};

const PUBLIC: &str = "http://auth.gatehouse.test";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn start(backend: Backend) -> Server {
    Server::builder(backend)
        .env("GATEHOUSE_PUBLIC_URL", PUBLIC)
        .start()
}

/// Creates an admin with the CLI; returns the email.
fn add_admin(server: &Server) -> String {
    let admin = email("admin");
    let out = server.cli(
        &["user", "add", &admin, "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    admin
}

/// A browser's view of gatehouse: the cookies of a cookie-mode login.
struct Browser<'s> {
    server: &'s Server,
    cookies: String,
}

/// An answer: status, `Location`, body.
#[derive(Debug)]
struct Page {
    status: u16,
    location: String,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl<'s> Browser<'s> {
    async fn sign_in(server: &'s Server, email: &str, password: &str) -> Browser<'s> {
        let r = server
            .http
            .post(server.url("/auth/login"))
            .header("x-auth-mode", "cookie")
            .header(ORIGIN, PUBLIC)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 200, "login {email}");
        let cookies = browser_cookies(&set_cookies(r.headers()), "/admin");
        assert!(cookies.contains("gatehouse_access="), "{cookies}");
        Browser { server, cookies }
    }

    async fn get(&self, path: &str) -> Page {
        let r = self
            .server
            .http
            .get(self.server.url(path))
            .header(ACCEPT, BROWSER_ACCEPT)
            .header(COOKIE, &self.cookies)
            .send()
            .await
            .expect("get");
        page(r).await
    }

    /// Posts a form as a browser on gatehouse's own page would: `Origin` and the page's
    /// `csrf` field (read from the page first).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        // Every page's forms carry the session's token; the groups page always has a form.
        let token = csrf_of(&self.get("/admin/groups").await.body);
        let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form, &[(ORIGIN.as_str(), PUBLIC)])
            .await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self
            .server
            .http
            .post(self.server.url(path))
            .header(ACCEPT, BROWSER_ACCEPT)
            .header(COOKIE, &self.cookies)
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        page(req.send().await.expect("post")).await
    }
}

async fn page(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Page {
        status,
        location,
        body: r.text().await.unwrap_or_default(),
        headers,
    }
}

/// The `csrf` field's value on a page.
fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field:\n{body}"));
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// The error shown on a page.
fn alert(body: &str) -> &str {
    body.split("role=\"alert\">")
        .nth(1)
        .unwrap_or(body)
        .split('<')
        .next()
        .unwrap_or(body)
}

/// A page without its head (the stylesheet).
fn main(body: &str) -> &str {
    body.split("<main").nth(1).unwrap_or(body)
}

/// The id in `/admin/users/<id>?done=…`.
fn user_id(location: &str) -> String {
    let path = location.split('?').next().unwrap_or_default();
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

async fn assert_page_headers(page: &Page) {
    let h = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(h("cache-control"), "no-store");
    assert!(h("content-type").starts_with("text/html"));
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no scripts at all: {csp}");
    assert_eq!(h("x-frame-options"), "DENY");
}

const PAGES: [&str; 6] = [
    "/admin",
    "/admin/users",
    "/admin/groups",
    "/admin/clients",
    "/admin/bans",
    "/admin/audit",
];

async fn only_admins_get_in(backend: Backend) {
    let server = start(backend);
    let admin = add_admin(&server);
    let user = email("user");
    let user_tokens = server.signup(&user).await;

    // A browser without a session: the login page, which comes back here.
    let r = server
        .http
        .get(server.url("/admin/users?q=a%20b"))
        .header(ACCEPT, BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()[LOCATION],
        format!("{PUBLIC}/login?rd=http%3A%2F%2Fauth.gatehouse.test%2Fadmin%2Fusers%3Fq%3Da%2520b")
    );
    // An API client without a token: 401.
    let r = server.http.get(server.url("/admin")).send().await.unwrap();
    assert_problem(r, 401).await;

    // Signed in without the admin role: 403, by cookie (a page) and by Bearer (a problem),
    // for pages and actions alike.
    let browser = Browser::sign_in(&server, &user, PASSWORD).await;
    for path in PAGES {
        let page = browser.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("admin role"), "{}", page.body);
        let r = server.get_auth(path, &user_tokens.access).await;
        assert_problem(r, 403).await;
    }
    let forbidden = browser
        .post_raw(
            "/admin/users",
            &[("action", "create"), ("email", "x@example.org")],
            &[("origin", PUBLIC)],
        )
        .await;
    assert_eq!(forbidden.status, 403);
    let r = server
        .http
        .post(server.url("/admin/groups"))
        .bearer_auth(&user_tokens.access)
        .form(&[("action", "create"), ("group", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;

    // The admin, by cookie and by Bearer: every page, with the headers of a private page.
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;
    let admin_tokens = server.relogin(&admin).await;
    for path in PAGES {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_page_headers(&page).await;
        assert!(page.body.contains(&admin), "{path}");
        assert!(
            page.body.len() < 50_000,
            "{path}: {} bytes",
            page.body.len()
        );
        let r = server.get_auth(path, &admin_tokens.access).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    // Bad paths and methods: clear 4xx.
    for (path, status) in [
        ("/admin/users/not-a-uuid", 404),
        ("/admin/users/0190d1a6-0000-7000-8000-000000000000", 404),
        ("/admin/nothing", 404),
        ("/admin/users?page=0", 400),
        ("/admin/users?page=x", 400),
        ("/admin/users?page=1&page=2", 400),
    ] {
        assert_eq!(browser.get(path).await.status, status, "{path}");
    }
    let long = format!("/admin/users?q={}", "a".repeat(400));
    assert_eq!(browser.get(&long).await.status, 400);
    let r = server
        .http
        .delete(server.url("/admin/users"))
        .bearer_auth(&admin_tokens.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, 405).await;
    let r = server
        .http
        .post(server.url("/admin"))
        .bearer_auth(&admin_tokens.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, 405).await;
}

async fn every_action_works_by_form_post(backend: Backend) {
    let server = start(backend);
    let admin = add_admin(&server);
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;

    // Create an account.
    let ada = email("ada");
    let done = browser
        .post(
            "/admin/users",
            &[
                ("action", "create"),
                ("email", &ada),
                ("password", PASSWORD),
                ("role", "user"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    // Relative to `public_url`'s path, so it works behind a proxy under a prefix.
    assert!(
        done.location.starts_with("/admin/users/"),
        "{}",
        done.location
    );
    assert!(
        done.location.ends_with("?done=created"),
        "{}",
        done.location
    );
    let id = user_id(&done.location);
    let page_path = format!("/admin/users/{id}");
    let page = browser.get(&format!("{page_path}?done=created")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&ada) && page.body.contains("The account is created."));

    // Refusals come back as the page with the reason, never a 500.
    for (fields, status, words) in [
        (
            vec![("email", ada.as_str()), ("password", PASSWORD)],
            409,
            "already exists",
        ),
        (
            vec![("email", "not-an-email"), ("password", PASSWORD)],
            422,
            "valid address",
        ),
        (
            vec![("email", "weak@example.org"), ("password", "abc")],
            422,
            "assword",
        ),
    ] {
        let mut form = vec![("action", "create")];
        form.extend(fields);
        let page = browser.post("/admin/users", &form).await;
        assert_eq!(page.status, status, "{}", page.body);
        assert!(page.body.contains(words), "{words}: {}", alert(&page.body));
        assert!(page.body.contains("role=\"alert\""));
    }
    for form in [
        vec![("action", "create"), ("role", "root")],
        vec![("action", "explode")],
        vec![],
    ] {
        let page = browser.post("/admin/users", &form).await;
        assert_eq!(page.status, 400, "{form:?}: {}", page.body);
    }

    // Role: the user's sessions end, and the next login carries the new role.
    let tokens = server.relogin(&ada).await;
    let done = browser
        .post(&page_path, &[("action", "role"), ("role", "admin")])
        .await;
    assert_eq!(done.status, 303);
    assert!(done.location.ends_with("?done=role"));
    assert_eq!(server.me_status(&tokens.access).await, 401);
    let me = server
        .get_auth("/auth/me", &server.relogin(&ada).await.access)
        .await;
    assert_eq!(
        me.json::<serde_json::Value>().await.unwrap()["role"],
        "admin"
    );
    let done = browser
        .post(&page_path, &[("action", "role"), ("role", "user")])
        .await;
    assert_eq!(done.status, 303);

    // Disable: their token is refused within 5 s, and so are their logins; enable again.
    let tokens = server.relogin(&ada).await;
    let done = browser.post(&page_path, &[("action", "disable")]).await;
    assert!(done.location.ends_with("?done=disabled"), "{done:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.me_status(&tokens.access).await != 401 {
        assert!(Instant::now() < deadline, "the token still works after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.login(&ada, PASSWORD).await.status(), 401);
    assert!(browser.get(&page_path).await.body.contains("disabled"));
    let done = browser.post(&page_path, &[("action", "enable")]).await;
    assert!(done.location.ends_with("?done=enabled"));
    let tokens = server.relogin(&ada).await;

    // End all sessions.
    let done = browser
        .post(&page_path, &[("action", "end_sessions")])
        .await;
    assert!(done.location.ends_with("?done=sessions"));
    assert_eq!(server.me_status(&tokens.access).await, 401);

    // Set a password: the new one signs in.
    let new_password = "a brand new staple for the horse";
    let done = browser
        .post(
            &page_path,
            &[("action", "password"), ("password", new_password)],
        )
        .await;
    assert!(done.location.ends_with("?done=password"), "{done:?}");
    assert_eq!(server.login(&ada, new_password).await.status(), 200);
    let weak = browser
        .post(&page_path, &[("action", "password"), ("password", "x")])
        .await;
    assert_eq!(weak.status, 422);

    // Groups: create, add a member, remove them, delete.
    let done = browser
        .post("/admin/groups", &[("action", "create"), ("group", "media")])
        .await;
    assert!(
        done.location.ends_with("/admin/groups?done=group_created"),
        "{done:?}"
    );
    let bad = browser
        .post(
            "/admin/groups",
            &[("action", "create"), ("group", "Not A Name")],
        )
        .await;
    assert_eq!(bad.status, 422);
    let done = browser
        .post(&page_path, &[("action", "add_group"), ("group", "media")])
        .await;
    assert!(done.location.ends_with("?done=member_added"), "{done:?}");
    let groups = browser.get("/admin/groups").await.body;
    assert!(groups.contains("<td>media</td><td>1</td>"), "{groups}");
    let missing = browser
        .post(&page_path, &[("action", "add_group"), ("group", "nosuch")])
        .await;
    assert_eq!(missing.status, 404);
    let done = browser
        .post(
            &page_path,
            &[("action", "remove_group"), ("group", "media")],
        )
        .await;
    assert!(done.location.ends_with("?done=member_removed"));
    let groups = browser.get("/admin/groups").await.body;
    assert!(groups.contains("<td>media</td><td>0</td>"), "{groups}");
    browser
        .post(&page_path, &[("action", "add_group"), ("group", "media")])
        .await;
    let done = browser
        .post("/admin/groups", &[("action", "delete"), ("group", "media")])
        .await;
    assert!(done.location.ends_with("?done=group_deleted"));
    let listing = server.cli(&["user", "list"], "");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = listing.lines().find(|l| l.contains(&ada)).expect("listed");
    assert!(!line.contains("media"), "{line}");
    let gone = browser
        .post("/admin/groups", &[("action", "delete"), ("group", "media")])
        .await;
    assert_eq!(gone.status, 404);

    // Reset second factors (none here: it still ends their sessions).
    let r = server.login(&ada, new_password).await;
    let tokens = common::Tokens::from(r.json::<serde_json::Value>().await.unwrap());
    let done = browser
        .post(&page_path, &[("action", "reset_factors")])
        .await;
    assert!(done.location.ends_with("?done=factors"), "{done:?}");
    assert_eq!(server.me_status(&tokens.access).await, 401);
    // An invitation: the account without a password, and the link to pass on (no SMTP here).
    let page = browser
        .post(
            "/admin/users",
            &[("action", "invite"), ("email", "new@example.org")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("/invite?token="), "{}", page.body);
    let page = browser
        .post(
            "/admin/users",
            &[("action", "invite"), ("email", "new@example.org")],
        )
        .await;
    assert_eq!(
        page.status, 200,
        "a second invitation replaces the first: {}",
        page.body
    );

    // An admin cannot lock themselves out.
    let me = browser.get("/admin/users").await.body;
    let my_href = me
        .split("href=\"")
        .find(|s| {
            s.split('"')
                .next()
                .is_some_and(|h| h.contains("/admin/users/"))
                && s.contains(&admin)
        })
        .and_then(|s| s.split('"').next())
        .expect("my row")
        .trim_start_matches(PUBLIC)
        .to_owned();
    for action in [
        vec![("action", "disable")],
        vec![("action", "role"), ("role", "user")],
    ] {
        let page = browser.post(&my_href, &action).await;
        assert_eq!(page.status, 409, "{}", page.body);
    }

    // Bearer clients post the same forms, without Origin or csrf field.
    let bearer = server.relogin(&admin).await;
    let r = server
        .http
        .post(server.url("/admin/groups"))
        .bearer_auth(&bearer.access)
        .form(&[("action", "create"), ("group", "api")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // A body over the limit: 413, not a 500.
    let huge = "a".repeat(100 * 1024);
    let page = browser
        .post_raw(
            "/admin/groups",
            &[("action", "create"), ("group", &huge)],
            &[("origin", PUBLIC)],
        )
        .await;
    assert_eq!(page.status, 413);
    // Not a form: 415.
    let r = server
        .http
        .post(server.url("/admin/groups"))
        .bearer_auth(&bearer.access)
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415).await;

    // The audit page shows what was done above, newest first (kept off the request path).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let page = browser.get("/admin/audit").await;
        assert_eq!(page.status, 200);
        if page.body.contains("role changed") && page.body.contains("user disabled") {
            assert!(page.body.contains("an administrator"), "{}", page.body);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit events: {}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let server = start(backend);
    let admin = add_admin(&server);
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;
    let token = csrf_of(&browser.get("/admin/groups").await.body);
    let create = |name: &'static str, token: &str| {
        vec![
            ("csrf".to_owned(), token.to_owned()),
            ("action".to_owned(), "create".to_owned()),
            ("group".to_owned(), name.to_owned()),
        ]
    };
    let post = |form: Vec<(String, String)>, headers: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post_raw("/admin/groups", &form, &headers).await
        }
    };
    // A foreign Origin, even with the right token; a foreign Referer; neither header.
    for headers in [
        vec![("origin", "https://evil.example".to_owned())],
        vec![(
            "origin",
            "http://auth.gatehouse.test.evil.example".to_owned(),
        )],
        vec![("referer", "https://evil.example/admin/groups".to_owned())],
        vec![],
    ] {
        let page = post(create("evil", &token), headers.clone()).await;
        assert_eq!(page.status, 403, "{headers:?}: {}", page.body);
    }
    // The right Origin without the session's token, or with another's.
    let other = Browser::sign_in(&server, &admin, PASSWORD).await;
    let other_token = csrf_of(&other.get("/admin/groups").await.body);
    assert_ne!(other_token, token);
    for bad in ["", "forged", other_token.as_str()] {
        let page = post(create("evil", bad), vec![("origin", PUBLIC.to_owned())]).await;
        assert_eq!(page.status, 403, "{bad:?}");
    }
    assert!(!browser.get("/admin/groups").await.body.contains("evil"));
    // Gatehouse's own Referer without Origin, with the token: accepted.
    let page = post(
        create("fine", &token),
        vec![("referer", format!("{PUBLIC}/admin/groups"))],
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(browser.get("/admin/groups").await.body.contains("fine"));
}

async fn users_are_searched_and_paged(backend: Backend) {
    let server = start(backend);
    let admin = add_admin(&server);
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;
    let tag = format!("pg{}x", std::process::id());
    for i in 0..55 {
        let r = server
            .register(&format!("{tag}{i:02}@example.org"), PASSWORD)
            .await;
        assert_eq!(r.status(), 201);
    }
    let rows = |body: &str| body.matches("<tr><td><a href=").count();

    let first = browser.get("/admin/users").await;
    assert_eq!(rows(&first.body), 50);
    assert!(
        first.body.contains("1–50 of 56 users"),
        "{}",
        main(&first.body)
    );
    assert!(
        first
            .body
            .contains("href=\"/admin/users?page=2\" rel=\"next\""),
        "{}",
        main(&first.body)
    );
    let second = browser.get("/admin/users?page=2").await;
    assert_eq!(rows(&second.body), 6);
    assert!(second.body.contains("Page 2 of 2"));
    // Past the end: the last page.
    let past = browser.get("/admin/users?page=99").await;
    assert_eq!(rows(&past.body), 6);

    // Search: a case-insensitive substring of the email, kept in the page links.
    let q = format!("/admin/users?q={}", tag.to_uppercase());
    let found = browser.get(&q).await;
    assert_eq!(rows(&found.body), 50);
    assert!(
        found.body.contains("1–50 of 55 users matching"),
        "{}",
        main(&found.body)
    );
    assert!(
        found.body.contains(&format!(
            "href=\"/admin/users?q={}&#38;page=2\"",
            tag.to_uppercase()
        )),
        "{}",
        main(&found.body)
    );
    let one = browser.get(&format!("/admin/users?q={tag}07")).await;
    assert_eq!(rows(&one.body), 1);
    assert!(one.body.contains(&format!("{tag}07@example.org")));
    let none = browser.get("/admin/users?q=%3Cscript%3E").await;
    assert_eq!(rows(&none.body), 0);
    assert!(
        none.body.contains("No users match “&#60;script&#62;”"),
        "{}",
        none.body
    );
}

async fn bans_are_listed_and_lifted(backend: Backend) {
    let server = Server::builder(backend)
        .env("GATEHOUSE_PUBLIC_URL", PUBLIC)
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "2")
        .env("GATEHOUSE_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start();
    let admin = add_admin(&server);
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;
    let victim = email("victim");
    server.signup(&victim).await;
    // Failures from one client address (told by a trusted proxy): the account and the
    // address are banned.
    for _ in 0..2 {
        let r = server
            .http
            .post(server.url("/auth/login"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"email": victim, "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(server.login(&victim, PASSWORD).await.status(), 429);

    let bans = browser.get("/admin/bans").await.body;
    assert!(
        bans.contains(&format!("Account <strong>{victim}</strong>")),
        "{bans}"
    );
    assert!(
        bans.contains("Client address <strong>203.0.113.9</strong>"),
        "{bans}"
    );
    assert!(
        browser
            .get("/admin")
            .await
            .body
            .contains("<span class=\"n\">2</span> bans")
    );

    let done = browser
        .post(
            "/admin/bans",
            &[("action", "lift"), ("subject", &format!("user:{victim}"))],
        )
        .await;
    assert!(
        done.location.ends_with("/admin/bans?done=ban_lifted"),
        "{done:?}"
    );
    // At once.
    assert_eq!(server.login(&victim, PASSWORD).await.status(), 200);
    let bans = browser.get("/admin/bans").await.body;
    assert!(
        !bans.contains(&victim) && bans.contains("203.0.113.9"),
        "{bans}"
    );
    let done = browser
        .post(
            "/admin/bans",
            &[("action", "lift"), ("subject", "ip:203.0.113.9")],
        )
        .await;
    assert!(done.location.ends_with("?done=ban_lifted"));
    assert!(browser.get("/admin/bans").await.body.contains("No bans."));
    // Lifting again: said, not an error; a subject that is no ban's: 400.
    let done = browser
        .post(
            "/admin/bans",
            &[("action", "lift"), ("subject", "ip:203.0.113.9")],
        )
        .await;
    assert!(done.location.ends_with("?done=ban_gone"));
    let bad = browser
        .post(
            "/admin/bans",
            &[("action", "lift"), ("subject", "everyone")],
        )
        .await;
    assert_eq!(bad.status, 400);
}

async fn the_overview_counts_logins(backend: Backend) {
    let server = start(backend);
    let admin = add_admin(&server);
    let ada = email("ada");
    server.signup(&ada).await;
    server.relogin(&ada).await;
    assert_eq!(server.login(&ada, "wrong").await.status(), 401);
    let browser = Browser::sign_in(&server, &admin, PASSWORD).await;
    // Counted in the background: within moments. Three good logins (two of ada's, the
    // admin's) and the failure.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = browser.get("/admin").await;
        assert_eq!(page.status, 200);
        if page.body.contains("3 successful and 1 failed sign-ins") {
            assert!(page.body.contains("<rect class=\"ok\""));
            assert!(page.body.contains("<rect class=\"failed\""));
            assert!(
                page.body.contains("<span class=\"n\">2</span> users"),
                "{}",
                page.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- in a browser ---

/// axe-core's browser build, installed by `.ci/run` (`npm ci --prefix tests/pages`); `None`
/// (said, or a failure under `CI=true`) when it is missing.
fn axe_source() -> Option<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pages/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{} is missing; CI must run `npm ci --prefix tests/pages`",
                path.display()
            )
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: axe-core is not installed (npm ci --prefix tests/pages); the admin pages' browser test did not run"
            );
            None
        }
    }
}

/// Where screenshots go: `docs/screenshots/` with `GATEHOUSE_SCREENSHOTS=1` (to commit
/// them), else `target/test-artifacts/`.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var("GATEHOUSE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        root.join("docs/screenshots")
    } else {
        root.join("target/test-artifacts")
    }
}

/// A server with something on every page: users, groups, OpenID Connect clients, bans and
/// logins. Returns it, the admin's email and the id of a user to show.
async fn furnished_server(dir: &Path, public: &str, port: u16) -> (Server, String, String) {
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        r#"
trusted_proxies = ["127.0.0.1"]
[[oidc.clients]]
id = "grafana"
name = "Grafana"
secret = "a-long-client-secret-0123456789"
redirect_uris = ["https://grafana.gatehouse.test/login/generic_oauth"]
groups = ["ops"]
[[oidc.clients]]
id = "photos-spa"
name = "Photos"
consent = "implicit"
redirect_uris = ["https://photos.gatehouse.test/callback", "http://127.0.0.1:8123/callback"]
"#,
    )
    .expect("config");
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_CONFIG", &config.display().to_string())
        .env("GATEHOUSE_LISTEN", &format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", public)
        .start();
    let admin = "admin@gatehouse.test".to_owned();
    let out = server.cli(
        &["user", "add", &admin, "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    for group in ["family", "media", "ops"] {
        assert!(server.cli(&["group", "add", group], "").status.success());
    }
    let people = [
        "ada.lovelace@example.org",
        "grace.hopper@example.org",
        "alan.turing@example.org",
        "katherine.johnson@example.org",
        "edsger.dijkstra@example.org",
        "barbara.liskov@example.org",
        "donald.knuth@example.org",
        "margaret.hamilton@example.org",
    ];
    for (i, person) in people.iter().enumerate() {
        server.signup(person).await;
        let group = ["family", "media", "ops"][i % 3];
        assert!(
            server
                .cli(&["group", "add-member", group, person], "")
                .status
                .success()
        );
    }
    assert!(
        server
            .cli(&["group", "add-member", "media", people[0]], "")
            .status
            .success()
    );
    assert!(
        server
            .cli(&["user", "disable", people[6]], "")
            .status
            .success()
    );
    // Failed logins from an address behind the proxy: a ban of that address and account.
    for _ in 0..5 {
        let r = server
            .http
            .post(server.url("/auth/login"))
            .header("x-forwarded-for", "203.0.113.77")
            .json(&json!({"email": people[4], "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 429));
    }
    let listing = server.cli(&["user", "list"], "");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let ada_id = listing
        .lines()
        .find(|l| l.contains(people[0]))
        .and_then(|l| l.split_whitespace().next())
        .expect("ada listed")
        .to_owned();
    (server, admin, ada_id)
}

/// What the page says about itself, measured in the browser.
const MEASURE: &str = r#"
const nav = performance.getEntriesByType('navigation')[0];
const urls = [...document.querySelectorAll('[src],[href],[action]')]
  .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('action'));
return {
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  innerWidth: window.innerWidth,
  bytes: nav ? nav.decodedBodySize : -1,
  resources: performance.getEntriesByType('resource').map(r => r.name),
  urls: urls.map(u => new URL(u, location.href).origin),
  origin: location.origin,
  dark: matchMedia('(prefers-color-scheme: dark)').matches,
  height: document.documentElement.scrollHeight,
};
"#;

const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
  }))))
  .catch(e => done({error: String(e)}));
"#;

/// Checks the page the browser shows: no horizontal scroll, under 50 KB, nothing from
/// another origin, no serious or critical axe-core violation; then a screenshot.
async fn check_page(browser: &WebDriver, axe: &str, name: &str, view: &str, width: u32) {
    let m = browser.execute(MEASURE, json!([])).await;
    let what = format!("{name} at {view}");
    assert_eq!(m["innerWidth"], width, "{what}: {m}");
    assert!(
        m["scrollWidth"].as_u64() <= m["clientWidth"].as_u64(),
        "{what} scrolls sideways: {m}"
    );
    let bytes = m["bytes"].as_u64().expect("navigation timing");
    assert!(bytes > 0 && bytes < 50_000, "{what} weighs {bytes} bytes");
    let origin = m["origin"].as_str().expect("origin");
    // The admin pages are one request each; the account page adds gatehouse's own passkey
    // script. Nothing ever comes from another origin.
    let resources = m["resources"].as_array().expect("resources");
    let allowed = [format!("{origin}/static/webauthn.js")];
    for resource in resources {
        let resource = resource.as_str().unwrap_or_default();
        assert!(
            allowed.iter().any(|a| a == resource) && name == "account",
            "{what} loads other files: {m}"
        );
    }
    for url_origin in m["urls"].as_array().expect("urls") {
        assert_eq!(url_origin, origin, "{what} names another origin: {m}");
    }
    if view == "dark" {
        assert_eq!(m["dark"], true, "{what}: the dark scheme is not on");
    }

    let loaded = browser
        .execute(&format!("{axe}\n;return typeof axe;"), json!([]))
        .await;
    assert_eq!(loaded, "object", "axe-core did not load");
    let violations = browser.execute_async(AXE_RUN, json!([])).await;
    let list = violations
        .as_array()
        .unwrap_or_else(|| panic!("axe: {violations}"));
    for v in list {
        eprintln!(
            "axe ({what}): {} {} — {} {}",
            v["impact"], v["id"], v["help"], v["nodes"]
        );
    }
    let grave: Vec<&Value> = list
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(grave.is_empty(), "{what}: axe-core found {grave:#?}");

    let dir = screenshot_dir();
    if view == "desktop" {
        // The whole page, not only the first screen.
        let height = m["height"].as_u64().unwrap_or(900).clamp(400, 2400) as u32;
        browser.set_window(width, height).await;
        // The window's height includes what the browser draws around the page.
        let inner = browser
            .execute("return window.innerHeight;", json!([]))
            .await;
        let inner = inner.as_u64().unwrap_or(u64::from(height)) as u32;
        if inner < height {
            browser.set_window(width, 2 * height - inner).await;
        }
    }
    browser
        .screenshot(&dir.join(format!("admin-{name}-{view}.png")))
        .await;
    if view == "desktop" {
        browser.set_window(width, 900).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_at_desktop_and_phone_widths() {
    let Some(axe) = axe_source() else {
        return;
    };
    let (Some(chromium), Some(chromedriver)) = (
        require("chromium", "chromium"),
        require("chromedriver", "chromium-driver"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let public = format!("http://auth.gatehouse.test:{port}");
    let (server, admin, ada_id) = furnished_server(dir.path(), &public, port).await;
    let pages = [
        ("overview", "admin".to_owned()),
        ("users", "admin/users".to_owned()),
        ("user", format!("admin/users/{ada_id}")),
        ("groups", "admin/groups".to_owned()),
        ("clients", "admin/clients".to_owned()),
        ("bans", "admin/bans".to_owned()),
        ("audit", "admin/audit".to_owned()),
        // The signed-in user's own page (second factors, sessions, apps, email, password).
        ("account", "account".to_owned()),
    ];
    for (view, width) in [
        ("desktop", 1280),
        ("phone", 390),
        ("dark", 1280),
        ("nojs", 390),
    ] {
        let profile = dir.path().join(view);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut extra = vec![
            "--host-resolver-rules=MAP *.gatehouse.test 127.0.0.1",
            "--hide-scrollbars",
        ];
        let mut options = json!({});
        match view {
            "phone" => {
                options["mobileEmulation"] = json!({"deviceMetrics": {
                    "width": 390, "height": 844, "pixelRatio": 1.0, "mobile": true, "touch": true,
                }});
            }
            "dark" => extra.push("--blink-settings=preferredColorScheme=0"),
            // Every action is a plain form: the pages work with JavaScript off.
            "nojs" => extra.push("--blink-settings=scriptEnabled=false"),
            _ => {}
        }
        let browser =
            WebDriver::start_with(&chromium, &chromedriver, &profile, &extra, options).await;
        if view != "phone" {
            browser.set_window(width, 900).await;
        }

        // Sign in through the login page, which comes back to /admin.
        browser.goto(&format!("{public}/admin")).await;
        browser
            .wait_url("the login page", |u| {
                u.starts_with(&format!("{public}/login?rd="))
            })
            .await;
        browser.type_into("#email", &admin).await;
        browser.type_into("#password", PASSWORD).await;
        browser.click("button[type=submit]").await;
        browser
            .wait_url("the admin overview", |u| u == format!("{public}/admin"))
            .await;

        if view == "nojs" {
            // Without JavaScript (so no axe here): create a group, then delete it, by clicking
            // the forms' buttons; and end a session from the account page.
            browser.goto(&format!("{public}/admin/groups")).await;
            browser.type_into("#group", "nojs").await;
            browser.click("#group ~ button").await;
            browser
                .wait_url("the group created", |u| {
                    u.ends_with("/admin/groups?done=group_created")
                })
                .await;
            browser.wait_text("Delete nojs").await;
            browser
                .click("form:has(input[name=group][value=nojs]) button")
                .await;
            browser
                .wait_url("the group deleted", |u| {
                    u.ends_with("/admin/groups?done=group_deleted")
                })
                .await;
            browser.goto(&format!("{public}/account")).await;
            browser.wait_text("End session").await;
            let before = browser.source().await.matches("End session").count();
            // The first row is the oldest session: not this one.
            browser
                .click("form:has(input[name=action][value=end_session]) button")
                .await;
            browser.wait_text("The session is ended.").await;
            let after = browser.source().await.matches("End session").count();
            assert_eq!(after + 1, before, "one session fewer");
            browser.quit().await;
            continue;
        }
        for (name, path) in &pages {
            if view == "dark" && !matches!(*name, "overview" | "user" | "account") {
                continue;
            }
            browser.goto(&format!("{public}/{path}")).await;
            check_page(&browser, &axe, name, view, width).await;
        }

        if view == "desktop" {
            // An action in the browser, without JavaScript on the page: create a group.
            browser.goto(&format!("{public}/admin/groups")).await;
            browser.type_into("#group", "lab").await;
            browser.click("#group ~ button").await;
            browser
                .wait_url("the group created", |u| {
                    u.ends_with("/admin/groups?done=group_created")
                })
                .await;
            let page = browser.source().await;
            assert!(
                page.contains("The group is created.") && page.contains("<td>lab</td>"),
                "{page}"
            );
        }
        browser.quit().await;
    }
    drop(server);
}

backend_tests!(
    only_admins_get_in,
    every_action_works_by_form_post,
    cross_site_posts_are_refused,
    users_are_searched_and_paged,
    bans_are_listed_and_lifted,
    the_overview_counts_logins,
);
