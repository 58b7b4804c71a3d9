use super::views::*;
use super::*;

fn chrome() -> Chrome {
    Chrome::new(
        "/",
        "<b>me</b>@x.org",
        "users",
        csrf_token("sid"),
        None,
        None,
    )
}

#[test]
fn csrf_tokens_are_per_session_and_url_safe() {
    let a = csrf_token("session-a");
    assert_eq!(a, csrf_token("session-a"));
    assert_ne!(a, csrf_token("session-b"));
    assert_eq!(a.len(), 43);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

#[test]
fn notices_come_from_a_fixed_list() {
    assert_eq!(
        Flash::done(Some("created")).notice,
        Some("The account is created.")
    );
    assert!(Flash::done(Some("<script>")).notice.is_none());
    assert!(Flash::done(None).notice.is_none());
}

#[test]
fn factors_in_words() {
    assert_eq!(
        factors_summary(false, 0, 0),
        "None: they sign in with their password alone."
    );
    assert_eq!(
        factors_summary(false, 1, 1),
        "Authenticator app off, 1 passkey, 1 recovery code left."
    );
}

#[test]
fn roles_and_messages() {
    assert_eq!(parse_role("").unwrap(), Role::User);
    assert_eq!(parse_role(" admin ").unwrap(), Role::Admin);
    assert!(parse_role("root").is_err());
    assert_eq!(capitalise("the email is bad"), "The email is bad.");
    assert_eq!(capitalise(""), ".");
}

#[test]
fn pages_escape_what_users_typed() {
    let evil = "\"><script>alert(1)</script>";
    let page = render(&UserPage {
        chrome: chrome(),
        action: "/admin/users/x".into(),
        id: "x".into(),
        email: evil.into(),
        admin: false,
        disabled: false,
        created: "now".into(),
        is_self: false,
        groups: vec![evil.into()],
        available_groups: vec![evil.into()],
        sessions: vec![SessionRow {
            created: "a".into(),
            last_seen: "b".into(),
            device: evil.into(),
            address: evil.into(),
            app: None,
        }],
        factors: factors_summary(true, 2, 10),
        reset_factors: true,
    });
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<b>me"), "{page}");
    // Every form carries the session's token, and nothing runs scripts.
    let forms = page.matches("<form method=\"post\"").count();
    assert!(forms >= 6, "{page}");
    assert_eq!(
        page.matches("name=\"csrf\" value=\"").count(),
        forms - 1, // the sign-out form posts to /logout, which checks the origin
        "{page}"
    );
    assert!(!page.contains("<script"));
    assert!(page.contains("aria-current=\"page\">Users"));
    assert!(
        page.contains("Authenticator app on, 2 passkeys, 10 recovery codes left."),
        "{page}"
    );

    let users = render(&UsersPage {
        chrome: chrome(),
        q: evil.into(),
        rows: vec![UserRow {
            href: "/admin/users/1".into(),
            email: evil.into(),
            role: "user",
            disabled: true,
            groups: evil.into(),
            created: "2026-01-01".into(),
        }],
        total: 1,
        page: 1,
        pages: 1,
        first: 1,
        prev: None,
        next: None,
        email: evil.into(),
        invite: false,
        invite_link: None,
    });
    assert!(!users.contains("<script>"), "{users}");
    assert!(users.contains("1 user matching"), "{users}");
}

#[test]
fn the_overview_draws_its_chart_on_the_server() {
    let now = 1_800_000_000;
    let hours: Vec<HourCount> = (0..24u64)
        .map(|i| HourCount {
            start: (now / 3600 - 23 + i) * 3600,
            ok: i,
            failed: 1,
        })
        .collect();
    let page = render(&OverviewPage {
        chrome: chrome(),
        users: 3,
        admins: 1,
        disabled: 0,
        sessions: 2,
        groups: 0,
        bans: 0,
        clients: 0,
        chart: Chart::new(&hours, now),
    });
    assert!(
        page.contains("<svg viewBox=\"0 0 640 236\" role=\"img\""),
        "{page}"
    );
    assert_eq!(page.matches("<rect class=\"ok\"").count(), 23, "{page}");
    assert_eq!(page.matches("<rect class=\"failed\"").count(), 24, "{page}");
    assert!(
        page.contains("276 successful and 24 failed sign-ins"),
        "{page}"
    );
    assert!(!page.contains("<script"));
}

use crate::auth::service::stats::HourCount;
