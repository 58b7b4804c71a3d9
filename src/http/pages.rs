//! The server-rendered HTML pages: login, logout confirmation, signed out. Plain HTML forms
//! that work without JavaScript; every value that comes from a request is HTML-escaped
//! (`html-escape`) where it is echoed. No script runs on them (the CSP forbids it).

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

/// What the login page shows.
#[derive(Debug, Default)]
pub(crate) struct LoginPage<'a> {
    pub title: &'a str,
    /// The validated-later `rd`, carried in a hidden field.
    pub rd: Option<&'a str>,
    /// The email typed before, kept after a failed attempt.
    pub email: Option<&'a str>,
    /// What went wrong, in words.
    pub error: Option<&'a str>,
}

const STYLE: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;\
background:#f3f4f6;color:#111827}main{max-width:22rem;margin:12vh auto;padding:2rem;\
background:#fff;border-radius:.75rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{font-size:1.4rem;margin:0 0 .25rem}p.brand{margin:0 0 1.5rem;color:#4b5563;font-size:.9rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input[type=email],input[type=password]{box-sizing:border-box;width:100%;padding:.6rem;\
font:inherit;border:1px solid #9ca3af;border-radius:.4rem}\
input:focus,button:focus{outline:3px solid #2563eb;outline-offset:1px}\
button{margin-top:1.5rem;width:100%;padding:.65rem;font:inherit;font-weight:600;color:#fff;\
background:#1d4ed8;border:0;border-radius:.4rem;cursor:pointer}\
.error{margin:0 0 1rem;padding:.6rem .75rem;color:#7f1d1d;background:#fee2e2;\
border-left:4px solid #b91c1c;border-radius:.25rem}a{color:#1d4ed8}";

fn layout(title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n<title>{title} · gatehouse</title>\n\
<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{main}</main>\n</body>\n</html>\n",
        title = text(title),
    )
}

fn heading(title: &str) -> String {
    format!(
        "<h1>{}</h1>\n<p class=\"brand\">gatehouse</p>\n",
        text(title)
    )
}

fn hidden_rd(rd: Option<&str>) -> String {
    match rd {
        Some(rd) if !rd.is_empty() => {
            format!(
                "<input type=\"hidden\" name=\"rd\" value=\"{}\">\n",
                attr(rd)
            )
        }
        _ => String::new(),
    }
}

/// The sign-in form. The form posts to `login`, relative to the page, so it works under a
/// `public_url` with a path.
pub(crate) fn login(page: &LoginPage<'_>) -> String {
    let mut main = heading(page.title);
    let described = if let Some(error) = page.error {
        main.push_str(&format!(
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>\n",
            text(error)
        ));
        " aria-describedby=\"error\" aria-invalid=\"true\""
    } else {
        ""
    };
    // Focus where the user types next: the password after a failed attempt.
    let email_focus = if page.email.is_some_and(|e| !e.is_empty()) {
        ""
    } else {
        " autofocus"
    };
    let password_focus = if email_focus.is_empty() {
        " autofocus"
    } else {
        ""
    };
    main.push_str(&format!(
        "<form method=\"post\" action=\"login\">\n{rd}\
<label for=\"email\">Email</label>\n\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required{email_focus}{described} value=\"{email}\">\n\
<label for=\"password\">Password</label>\n\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{password_focus}{described}>\n\
<button type=\"submit\">Sign in</button>\n</form>\n",
        rd = hidden_rd(page.rd),
        email = attr(page.email.unwrap_or("")),
    ));
    layout(page.title, &main)
}

/// Already signed in (a visit to the login page without a usable `rd`).
pub(crate) fn signed_in(title: &str, email: &str) -> String {
    let main = format!(
        "{}<p>You are signed in as <strong>{}</strong>.</p>\n\
<form method=\"post\" action=\"logout\">\n<button type=\"submit\">Sign out</button>\n</form>\n",
        heading(title),
        text(email)
    );
    layout(title, &main)
}

/// The confirmation asked for a `GET /logout` that did not come from gatehouse's own site.
pub(crate) fn logout_confirm(title: &str, rd: Option<&str>) -> String {
    let main = format!(
        "{}<p>Do you want to sign out?</p>\n<form method=\"post\" action=\"logout\">\n{}\
<button type=\"submit\" autofocus>Sign out</button>\n</form>\n",
        heading(title),
        hidden_rd(rd)
    );
    layout(title, &main)
}

/// After logout without a usable `rd`.
pub(crate) fn signed_out(title: &str) -> String {
    let main = format!(
        "{}<p role=\"status\">You have been signed out.</p>\n<p><a href=\"login\">Sign in again</a></p>\n",
        heading(title)
    );
    layout(title, &main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_are_escaped() {
        let evil = "\"><script>alert(1)</script>";
        let page = login(&LoginPage {
            title: "<b>Home</b>",
            rd: Some(evil),
            email: Some(evil),
            error: Some("<i>bad</i>"),
        });
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>Home"), "{page}");
        assert!(!page.contains("<i>bad"), "{page}");
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;"), "{page}");
        assert!(page.contains("type=\"password\""));
        assert!(page.contains("<label for=\"email\">"));
        // After an error the password field has the focus.
        assert!(page.contains("current-password\" required autofocus"));
        let confirm = logout_confirm("t", Some(evil));
        assert!(!confirm.contains("<script>"));
    }
}
