//! The pages mailed links open: `/reset`, `/invite`, `/verify` and `/email/confirm`, each
//! `?token=T`. Plain HTML forms without JavaScript.
//!
//! `GET` shows what the link does and never uses it: mail scanners and link previews open
//! links before people do. The form posts the token back (in the body, not the address);
//! the post must come from gatehouse's own site (Origin/Referer, as every form post). The
//! pages send `Referrer-Policy: strict-origin`, so the token in their address never travels
//! in a `Referer`.

use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::auth::AuthError;
use crate::domain::link::{Purpose, Slot};
use crate::http::error::ApiError;
use crate::http::pages::{LinkDonePage, LinkFormPage, render};
use crate::http::request::{HttpRequest, check_same_origin, read_form};
use crate::http::response::{HttpResponse, html_with_secret_url};

/// Which link page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkPage {
    Reset,
    Invite,
    Verify,
    EmailConfirm,
}

impl LinkPage {
    fn slot(self) -> Slot {
        match self {
            LinkPage::Reset | LinkPage::Invite => Slot::Password,
            LinkPage::Verify => Slot::Verify,
            LinkPage::EmailConfirm => Slot::Email,
        }
    }

    /// The form's target, relative to the page (so a `public_url` with a path works).
    fn action(self) -> &'static str {
        match self {
            LinkPage::Reset => "reset",
            LinkPage::Invite => "invite",
            LinkPage::Verify => "verify",
            LinkPage::EmailConfirm => "confirm",
        }
    }

    /// The sign-in page, relative to this one.
    fn login(self) -> &'static str {
        match self {
            LinkPage::EmailConfirm => "../login",
            _ => "login",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// The form's fields.
#[derive(Debug, Default, Deserialize)]
struct LinkForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: Option<String>,
}

const INVALID: &str = "This link is invalid, has expired or was already used. Ask for a new one: “Forgot your password?” mails a new reset link, and an administrator can make a new invitation.";

/// `GET`: what the link does, or why it cannot be used.
pub(crate) async fn show(
    app: &App,
    req: HttpRequest,
    page: LinkPage,
) -> Result<HttpResponse, ApiError> {
    let token = req
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<TokenQuery>(q).ok())
        .and_then(|q| q.token)
        .unwrap_or_default();
    match app.auth.peek_link(&token, page.slot()).await {
        Ok((purpose, email)) => Ok(form(app, page, purpose, &email, &token, None)),
        Err(AuthError::InvalidLink) => Ok(done(
            app,
            page,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            INVALID,
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST`: uses the link.
pub(crate) async fn submit(
    app: &App,
    req: HttpRequest,
    page: LinkPage,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(req.method(), req.headers(), &app.config)?;
    let fields: LinkForm = read_form(req, app.config.limits.max_body).await?;
    let token = fields.token.as_str();
    let outcome = match page {
        LinkPage::Reset | LinkPage::Invite => {
            let password = fields.new_password.unwrap_or_default();
            if password.is_empty() {
                return again(app, page, token, "Enter a new password.").await;
            }
            match app.auth.reset_password(token, &password).await {
                Ok(_) => Ok("Your password is set, and every earlier session of the account was signed out. Sign in with it now.".to_owned()),
                Err(AuthError::WeakPassword(why)) => return again(app, page, token, &why).await,
                Err(e) => Err(e),
            }
        }
        LinkPage::Verify => app
            .auth
            .verify_email(token)
            .await
            .map(|u| format!("{} is confirmed as the email of your account.", u.email)),
        LinkPage::EmailConfirm => app.auth.confirm_email_change(token).await.map(|u| {
            format!(
                "Your account's email is now {}. Sign in with it from now on.",
                u.email
            )
        }),
    };
    match outcome {
        Ok(message) => Ok(done(app, page, StatusCode::OK, "Done", &message)),
        Err(AuthError::InvalidLink) => Ok(done(
            app,
            page,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            INVALID,
        )),
        Err(AuthError::EmailTaken) => Ok(done(
            app,
            page,
            StatusCode::CONFLICT,
            "Email taken",
            "Another account uses this email now, so the change cannot be made.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The form again, with what was wrong (422), while the link is still good.
async fn again(
    app: &App,
    page: LinkPage,
    token: &str,
    error: &str,
) -> Result<HttpResponse, ApiError> {
    match app.auth.peek_link(token, page.slot()).await {
        Ok((purpose, email)) => {
            let mut response = form(app, page, purpose, &email, token, Some(error));
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(AuthError::InvalidLink) => Ok(done(
            app,
            page,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            INVALID,
        )),
        Err(e) => Err(e.into()),
    }
}

fn form(
    app: &App,
    page: LinkPage,
    purpose: Purpose,
    email: &str,
    token: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (heading, intro, button) = match purpose {
        Purpose::Reset => (
            "Choose a new password",
            format!(
                "Choose a new password for {email}. Every session of the account will be signed out."
            ),
            "Set the password",
        ),
        Purpose::Invite => (
            "Choose your password",
            format!("Welcome! Choose a password for your account {email}."),
            "Set the password",
        ),
        Purpose::Verify => (
            "Confirm your email",
            format!("Confirm that {email} is the email of your account."),
            "Confirm my email",
        ),
        Purpose::EmailChange => (
            "Confirm your new email",
            format!("Use {email} as your account's email from now on."),
            "Use this email",
        ),
    };
    html_with_secret_url(
        StatusCode::OK,
        render(&LinkFormPage {
            title: &app.config.login.title,
            heading,
            intro,
            action: page.action(),
            token,
            password: page.slot() == Slot::Password,
            button,
            error,
        }),
    )
}

fn done(
    app: &App,
    page: LinkPage,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> HttpResponse {
    html_with_secret_url(
        status,
        render(&LinkDonePage {
            title: &app.config.login.title,
            heading,
            message,
            failed: !status.is_success(),
            login: page.login(),
        }),
    )
}
