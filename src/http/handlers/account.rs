//! `/account`: the signed-in user's own page (server-rendered; passkeys through
//! `/static/webauthn.js` and the JSON API). Every other action is a form post to `/account`
//! with an `action` field, origin-checked like any cookie-authenticated write, and answered
//! with the page again (recovery codes are shown once, on that answer): sessions, password,
//! email change, second factors, and the OpenID Connect apps the user allowed.

use std::net::SocketAddr;

use http::StatusCode;
use serde::Deserialize;

use crate::app::App;
use crate::auth::AuthError;
use crate::auth::tokens::AccessClaims;
use crate::clock::rfc3339;
use crate::http::caller::{self, Via};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::pages::{AccountPage, AppRow, PasskeyRow, SessionRow, TotpSetup, qr_svg, render};
use crate::http::redirect;
use crate::http::request::{HttpRequest, client_info, has_content_type, read_body};
use crate::http::response::{HttpResponse, html_with_scripts};

/// The account page's forms (`application/x-www-form-urlencoded`).
#[derive(Debug, Default, Deserialize)]
struct AccountForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    new_email: String,
}

/// What an action leaves to show.
#[derive(Default)]
struct Outcome {
    notice: Option<&'static str>,
    error: Option<String>,
    recovery_codes: Vec<String>,
}

/// `GET /account`: the page; without a session, the login page with `rd` naming this one.
pub(crate) async fn page(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(caller) = caller::signed_in(app, req.headers()).await? else {
        let here = redirect::page_url(&app.config, "account", None);
        let login = redirect::login_url(&app.config, &here);
        return crate::http::response::redirect(StatusCode::FOUND, &login)
            .ok_or(ApiError::Internal);
    };
    show(app, &caller.claims, Outcome::default(), StatusCode::OK).await
}

/// `POST /account`: one action of the page's forms.
pub(crate) async fn submit(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let caller = caller::requires_enrolling(app, &req).await?;
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    if !has_content_type(req.headers(), "application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        });
    }
    let body = read_body(req, app.config.limits.max_body).await?;
    let form: AccountForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ApiError::BadRequest("the form could not be read".into()))?;
    let claims = &caller.claims;
    let auth = &app.auth;
    let limited = claims.enrolment_only;
    let mut outcome = Outcome::default();
    let mut new_cookies = None;
    let result: Result<(), AuthError> = match form.action.as_str() {
        "totp_setup" => auth
            .totp_begin(claims, &form.password, &client)
            .await
            .map(|_| ()),
        "totp_confirm" => match auth.totp_confirm(claims, &form.code).await {
            Ok(codes) => {
                outcome.notice = Some("The authenticator app is on.");
                outcome.recovery_codes = codes;
                new_cookies = Some(Renew::Access);
                Ok(())
            }
            Err(e) => Err(e),
        },
        "totp_remove" => auth
            .totp_remove(claims, &form.password, &client)
            .await
            .map(|()| outcome.notice = Some("The authenticator app is off.")),
        "recovery_regenerate" => auth
            .regenerate_recovery_codes(claims, &form.password, &client)
            .await
            .map(|codes| outcome.recovery_codes = codes),
        "passkey_remove" => auth
            .passkey_remove(claims, &form.id, &form.password, &client)
            .await
            .map(|()| outcome.notice = Some("The passkey is removed.")),
        "end_session" if !limited => {
            if form.id == claims.sid {
                auth.logout(claims).await?;
                let mut response = crate::http::response::redirect(
                    StatusCode::SEE_OTHER,
                    &redirect::page_url(&app.config, "login", None),
                )
                .ok_or(ApiError::Internal)?;
                cookies::clear(response.headers_mut(), &app.config);
                return Ok(response);
            }
            auth.revoke_own_session(claims.sub, &form.id)
                .await
                .map(|()| outcome.notice = Some("The session is ended."))
        }
        "change_password" if !limited => {
            match auth
                .change_password(claims, &form.current_password, &form.new_password, &client)
                .await
            {
                Ok(issued) => {
                    outcome.notice =
                        Some("Your password is changed; your other sessions are ended.");
                    new_cookies = Some(Renew::Both(issued));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        "change_email" if !limited => auth
            .request_email_change(claims, &form.new_email, &form.password, &client)
            .await
            .map(|()| {
                outcome.notice = Some(
                    "A confirmation link is on its way to the new address; your email changes when you use it.",
                )
            }),
        "revoke_app" if !limited => auth
            .revoke_app(claims.sub, &form.id)
            .await
            .map(|()| outcome.notice = Some("The app's access is revoked.")),
        "end_session" | "change_password" | "change_email" | "revoke_app" => {
            return Err(ApiError::EnrolmentRequired);
        }
        _ => return Err(ApiError::BadRequest("unknown action".into())),
    };
    if let Err(e) = result {
        outcome.error = Some(match e {
            AuthError::WrongPassword => "The current password is wrong.".to_owned(),
            AuthError::WrongCode => {
                "That code is wrong or expired. Type the code your app shows now.".to_owned()
            }
            AuthError::Regulated { .. } => {
                "Too many wrong passwords. Try again in a few minutes.".to_owned()
            }
            AuthError::NoPendingEnrolment => {
                "The set-up expired. Start the authenticator set-up again.".to_owned()
            }
            AuthError::FactorNotFound | AuthError::SessionNotFound => {
                "That no longer exists.".to_owned()
            }
            AuthError::WeakPassword(why)
            | AuthError::InvalidInput(why)
            | AuthError::InvalidEmail(why)
            | AuthError::Refused(why) => why,
            AuthError::EmailTaken => "That email belongs to another account.".to_owned(),
            AuthError::MailOff => "This server sends no mail.".to_owned(),
            other => return Err(other.into()),
        });
    }
    // The caller's session may have changed: new cookies before showing the page.
    let (claims, renewed) = match new_cookies {
        Some(Renew::Both(issued)) => {
            let claims = auth.authenticate(&issued.access_token).await?;
            (claims, Some((issued.access_token.clone(), Some(issued))))
        }
        Some(Renew::Access) if caller.via == Via::Cookie => {
            let token = auth.reissue_access(claims).await?;
            (auth.authenticate(&token).await?, Some((token, None)))
        }
        _ => (caller.claims.clone(), None),
    };
    let status = if outcome.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut response = show(app, &claims, outcome, status).await?;
    match renewed {
        Some((_, Some(issued))) => {
            cookies::set_tokens(response.headers_mut(), &app.config, &issued)
        }
        Some((token, None)) => cookies::set_access(
            response.headers_mut(),
            &app.config,
            &token,
            app.config.tokens.refresh_ttl,
        ),
        None => {}
    }
    Ok(response)
}

/// The name a client is shown by (its id once it is no longer configured).
fn client_name(app: &App, id: &str) -> String {
    app.config
        .oidc
        .client(id)
        .map_or_else(|| id.to_owned(), |c| c.name.clone())
}

enum Renew {
    Access,
    Both(crate::auth::Issued),
}

async fn show(
    app: &App,
    claims: &AccessClaims,
    outcome: Outcome,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let auth = &app.auth;
    let user = auth.user(claims).await?;
    let mfa = auth.mfa_status(claims).await?;
    let totp_setup = if mfa.totp {
        None
    } else {
        auth.totp_pending(&user).await?.and_then(|pending| {
            Some(TotpSetup {
                qr_svg: qr_svg(&pending.otpauth_uri)?,
                secret: pending.secret,
            })
        })
    };
    let sessions = if claims.enrolment_only {
        Vec::new()
    } else {
        auth.sessions(claims.sub)
            .await?
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == claims.sid,
                created_at: rfc3339(s.record.created_at),
                last_seen_at: rfc3339(s.record.last_seen_at),
                user_agent: s.record.user_agent.unwrap_or_default(),
                ip: s.record.ip.unwrap_or_default(),
                app: s
                    .record
                    .grant
                    .map(|g| client_name(app, &g.client))
                    .unwrap_or_default(),
                id: s.id,
            })
            .collect()
    };
    let root = redirect::root(&app.config);
    let page = AccountPage {
        title: &app.config.login.title,
        email: &user.email,
        root: &root,
        error: outcome.error.as_deref(),
        notice: outcome.notice,
        recovery_codes: outcome.recovery_codes,
        enrolment_only: claims.enrolment_only,
        totp: mfa.totp,
        totp_setup,
        passkeys: mfa
            .passkeys
            .into_iter()
            .map(|p| PasskeyRow {
                id: p.id,
                name: p.name,
                created_at: rfc3339(p.created_at),
            })
            .collect(),
        passkeys_enabled: auth.passkeys_enabled(),
        recovery_codes_left: mfa.recovery_codes_left,
        sessions,
        mail: app.config.smtp.is_some(),
        apps: user
            .consents
            .iter()
            .map(|c| AppRow {
                name: client_name(app, &c.client),
                client: c.client.clone(),
                scopes: c.scopes.join(", "),
            })
            .collect(),
    };
    Ok(html_with_scripts(status, render(&page)))
}
