//! `/admin`: the administration pages, for users with the `admin` role.
//!
//! Server-rendered (askama, `templates/admin/`), no JavaScript. Every page is a `GET`; every
//! action is a plain form post to the page it is on, with an `action` field, answered by a
//! redirect back to the page (`303`, `?done=<what>`, so a reload never repeats it) or, when
//! it fails, by the page again with the reason in words and a 4xx status.
//!
//! Who may: a valid access token (cookie or Bearer) of a live session whose role is
//! `admin`; tokens carry the role and a role change ends the user's sessions, so the token's
//! role is the stored one. A browser without a session goes to the login page with `rd`
//! naming the page (302); anyone else without the role gets 403.
//!
//! Cross-site requests: a cookie-authenticated post must come from gatehouse's own site
//! (`Origin`, else `Referer`: [`check_same_origin`]) and carry the form's `csrf` field,
//! which is bound to the session ([`csrf_token`]). Bearer callers are not exposed to CSRF and
//! need neither.
//!
//! The handlers call `auth::Service` only; what this page needs from features built on other
//! branches (invitations, the audit log) goes through [`seams`].

mod seams;
mod views;

use std::fmt::Write as _;

use base64::Engine;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use self::views::{
    AuditPage, BanRow, BansPage, Chrome, ClientRow, ClientsPage, ErrorPage, GroupRow, GroupsPage,
    OverviewPage, SessionRow, UserPage, UserRow, UsersPage,
};
use crate::app::App;
use crate::auth::AuthError;
use crate::auth::tokens::AccessClaims;
use crate::clock::{now_secs, rfc3339};
use crate::domain::{Role, normalize_email};
use crate::http::caller::{self, Via};
use crate::http::error::ApiError;
use crate::http::handlers::forward_auth::is_browser;
use crate::http::pages::render;
use crate::http::redirect;
use crate::http::request::{HttpRequest, check_same_origin};
use crate::http::response::{self, HttpResponse, html};
use crate::http::router::Route;

/// Users listed per page.
pub(crate) const PAGE_SIZE: usize = 50;

/// Longest search text accepted (an email is at most 320 bytes).
const MAX_SEARCH_CHARS: usize = 320;

/// The path of a user's page, after which comes the user's id.
pub(crate) const USER_PREFIX: &str = "/admin/users/";

/// Answers one request for an admin page. Refusals and bad input that a browser causes are
/// shown as a page; API clients get problem+json, like everywhere else.
pub(crate) async fn handle(
    app: &App,
    req: HttpRequest,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    let browser = is_browser(req.headers());
    match serve(app, req, route).await {
        Err(e) if browser && shown_as_page(&e) => Ok(error_page(app, &e)),
        other => other,
    }
}

/// Errors a browser sees as a page. 413 and 415 stay problems: their body may be unread,
/// and the router then closes the connection, which it does only for an error.
fn shown_as_page(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Forbidden(_) | ApiError::NotFound | ApiError::BadRequest(_)
    )
}

fn error_page(app: &App, e: &ApiError) -> HttpResponse {
    let (heading, hint) = match e {
        ApiError::Forbidden(_) => (
            "Not allowed",
            "The admin pages are for accounts with the admin role.",
        ),
        ApiError::NotFound => ("Not found", "There is no such page or account."),
        _ => ("Bad request", "Go back, check the form and try again."),
    };
    html(
        e.status(),
        render(&ErrorPage {
            heading,
            detail: capitalise(&e.to_string()),
            hint,
            root: root(app),
        }),
    )
}

async fn serve(app: &App, req: HttpRequest, route: Route) -> Result<HttpResponse, ApiError> {
    let Some(caller) = caller::signed_in(app, req.headers()).await? else {
        return to_login(app, &req);
    };
    if caller.claims.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "the admin pages need the admin role; sign in with an admin account",
        ));
    }
    let ctx = Ctx {
        app,
        claims: caller.claims,
        root: root(app),
    };
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if reading {
        let query = Query::read(&req)?;
        let flash = Flash::done(query.done.as_deref());
        return ctx.show(route, req.uri().path(), &query, flash).await;
    }
    if caller.via == Via::Cookie {
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let path = req.uri().path().to_owned();
    let form: AdminForm = read_form(req, app.config.limits.max_body).await?;
    if caller.via == Via::Cookie {
        let expected = csrf_token(&ctx.claims.sid);
        if !bool::from(form.csrf.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::Forbidden(
                "the form is out of date or came from another site: reload the page and try again",
            ));
        }
    }
    ctx.act(route, &path, form).await
}

/// A browser without a session goes to the login page, which comes back here (`rd`);
/// anyone else gets 401.
fn to_login(app: &App, req: &HttpRequest) -> Result<HttpResponse, ApiError> {
    if !is_browser(req.headers()) {
        return Err(ApiError::MissingToken);
    }
    let base = app
        .config
        .public_url
        .as_ref()
        .map_or("", |u| u.as_str().trim_end_matches('/'));
    let here = match req.uri().query() {
        Some(q) => format!("{base}{}?{q}", req.uri().path()),
        None => format!("{base}{}", req.uri().path()),
    };
    let status = if matches!(*req.method(), Method::GET | Method::HEAD) {
        StatusCode::FOUND
    } else {
        StatusCode::SEE_OTHER
    };
    response::redirect(status, &redirect::login_url(&app.config, &here)).ok_or(ApiError::Internal)
}

/// Where gatehouse's pages live, ending in `/`: the path of `public_url` (behind a proxy
/// under a prefix), else `/`. Links and form targets start from it.
fn root(app: &App) -> String {
    crate::http::redirect::root(&app.config)
}

/// The value of the forms' `csrf` field for a session. It is bound to the session id, which
/// only the holder of the session's token knows (it travels inside the token), so another
/// site cannot know it; it needs no state and is the same on every node.
pub(crate) fn csrf_token(sid: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"gatehouse admin form\0")
        .chain_update(sid.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Reads a form body: 415 unless `application/x-www-form-urlencoded`, 413 past the limit,
/// 400 when it does not parse (a repeated field, invalid percent-encoding).
async fn read_form(req: HttpRequest, limit: usize) -> Result<AdminForm, ApiError> {
    crate::http::request::read_form(req, limit).await
}

/// Every admin form's fields; each action reads the ones it needs.
#[derive(Debug, Default, Deserialize)]
struct AdminForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    subject: String,
}

/// The query string of an admin page.
#[derive(Debug, Default, Deserialize)]
struct Query {
    /// Search text (users).
    #[serde(default)]
    q: Option<String>,
    /// Page number, from 1 (users).
    #[serde(default)]
    page: Option<String>,
    /// What the last action did (see [`Flash::done`]).
    #[serde(default)]
    done: Option<String>,
}

impl Query {
    fn read(req: &HttpRequest) -> Result<Query, ApiError> {
        let Some(query) = req.uri().query() else {
            return Ok(Query::default());
        };
        let query: Query = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::BadRequest("the query string could not be read".into()))?;
        if query
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(ApiError::BadRequest(format!(
                "the search text is longer than {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(query)
    }

    /// The page number asked for: 1 when absent or empty; 400 when not a positive number.
    fn page(&self) -> Result<usize, ApiError> {
        match self.page.as_deref().map(str::trim) {
            None | Some("") => Ok(1),
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| ApiError::BadRequest("page must be a number from 1 up".into())),
        }
    }
}

/// What a page says above its content: the outcome of the last action.
#[derive(Debug, Default)]
struct Flash {
    notice: Option<&'static str>,
    error: Option<String>,
    status: Option<StatusCode>,
    /// The email typed into the create form, kept when creating failed.
    email: String,
    /// An invitation link made just now, shown once.
    invite_link: Option<String>,
}

impl Flash {
    /// The notice for `?done=<what>`; an unknown value shows nothing (it is never echoed).
    fn done(done: Option<&str>) -> Flash {
        let notice = match done.unwrap_or("") {
            "created" => "The account is created.",
            "role" => "The role is changed; their sessions were ended.",
            "disabled" => "The account is disabled; their sessions were ended.",
            "enabled" => "The account is enabled.",
            "unchanged" => "Nothing changed.",
            "password" => "The password is set; their sessions were ended.",
            "sessions" => "Their sessions are ended.",
            "member_added" => "Added to the group.",
            "member_removed" => "Removed from the group.",
            "factors" => "Their second factors are removed; their sessions were ended.",
            "group_created" => "The group is created.",
            "group_exists" => "That group already exists.",
            "group_deleted" => "The group is deleted.",
            "ban_lifted" => "The ban is lifted.",
            "ban_gone" => "That ban had already ended.",
            _ => return Flash::default(),
        };
        Flash {
            notice: Some(notice),
            ..Flash::default()
        }
    }

    fn failed(status: StatusCode, message: impl Into<String>) -> Flash {
        Flash {
            error: Some(message.into()),
            status: Some(status),
            ..Flash::default()
        }
    }
}

/// What a failed action shows: its status and the reason in words. Failures of the store
/// stay errors (503/507 problems).
fn refusal(e: AuthError) -> Result<Flash, ApiError> {
    let (status, message) = match e {
        AuthError::InvalidEmail(why) | AuthError::WeakPassword(why) => {
            (StatusCode::UNPROCESSABLE_ENTITY, capitalise(&why))
        }
        AuthError::InvalidGroup(why) => (StatusCode::UNPROCESSABLE_ENTITY, capitalise(&why)),
        AuthError::EmailTaken => (
            StatusCode::CONFLICT,
            "An account with this email already exists.".to_owned(),
        ),
        AuthError::UserNotFound(_) => (
            StatusCode::NOT_FOUND,
            "There is no such account (any more).".to_owned(),
        ),
        AuthError::GroupNotFound(name) => (
            StatusCode::NOT_FOUND,
            format!("There is no group named {name} (any more)."),
        ),
        AuthError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy hashing passwords. Try again in a moment.".to_owned(),
        ),
        other => return Err(other.into()),
    };
    Ok(Flash::failed(status, message))
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// One request's context: the admin and where links start.
struct Ctx<'a> {
    app: &'a App,
    claims: AccessClaims,
    root: String,
}

/// An action's result: go back to a page with a notice, or show the page with a failure.
enum Outcome {
    Done {
        path: String,
        done: &'static str,
    },
    /// The page again, with this flash (a failure, or something shown once).
    Show(Flash),
}

impl Ctx<'_> {
    fn chrome(&self, section: &'static str, flash: &mut Flash) -> Chrome {
        Chrome::new(
            &self.root,
            &self.claims.email,
            section,
            csrf_token(&self.claims.sid),
            flash.notice.take(),
            flash.error.take(),
        )
    }

    fn href(&self, path: &str) -> String {
        format!("{}{}", self.root, path.trim_start_matches('/'))
    }

    /// The user named by a `/admin/users/{id}` path; 404 for a bad id or no such user.
    async fn user_at(&self, path: &str) -> Result<crate::domain::User, ApiError> {
        let id = path
            .strip_prefix(USER_PREFIX)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or(ApiError::NotFound)?;
        self.app
            .auth
            .user_by_id(id)
            .await?
            .ok_or(ApiError::NotFound)
    }

    async fn show(
        &self,
        route: Route,
        path: &str,
        query: &Query,
        mut flash: Flash,
    ) -> Result<HttpResponse, ApiError> {
        let status = flash.status.unwrap_or(StatusCode::OK);
        let body = match route {
            Route::AdminOverview => self.overview(&mut flash).await?,
            Route::AdminUsers => self.users(query, &mut flash).await?,
            Route::AdminUser => self.user(path, &mut flash).await?,
            Route::AdminGroups => self.groups(&mut flash).await?,
            Route::AdminClients => self.clients(&mut flash),
            Route::AdminBans => self.bans(&mut flash).await?,
            Route::AdminAudit => self.audit(&mut flash).await?,
            _ => return Err(ApiError::NotFound),
        };
        let mut response = html(status, body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Busy hashing: like every 503 of gatehouse, say when to come back.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Ok(response)
    }

    async fn overview(&self, flash: &mut Flash) -> Result<String, ApiError> {
        let auth = &self.app.auth;
        let users = auth.list_users().await?;
        let history = auth.login_history().await?;
        let page = OverviewPage {
            chrome: self.chrome("overview", flash),
            users: users.len(),
            admins: users.iter().filter(|u| u.role == Role::Admin).count(),
            disabled: users.iter().filter(|u| u.disabled).count(),
            sessions: auth.store().live_sessions().await?,
            groups: auth.list_groups().await?.len(),
            bans: auth.bans().await?.len(),
            clients: self.app.config.oidc.clients.len(),
            chart: views::Chart::new(&history, now_secs()),
        };
        Ok(render(&page))
    }

    async fn users(&self, query: &Query, flash: &mut Flash) -> Result<String, ApiError> {
        let page_no = query.page()?;
        let search = query.q.as_deref().map(str::trim).unwrap_or("");
        let needle = normalize_email(search);
        let mut users = self.app.auth.list_users().await?;
        users.retain(|u| needle.is_empty() || normalize_email(&u.email).contains(&needle));
        users.sort_by_cached_key(|u| normalize_email(&u.email));
        let total = users.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page_no = page_no.min(pages);
        let link = |page: usize| {
            let mut href = self.href("admin/users");
            let mut sep = '?';
            if !search.is_empty() {
                let q: String = form_urlencoded::byte_serialize(search.as_bytes()).collect();
                let _ = write!(href, "?q={q}");
                sep = '&';
            }
            if page > 1 {
                let _ = write!(href, "{sep}page={page}");
            }
            href
        };
        let rows = users
            .iter()
            .skip((page_no - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|u| UserRow {
                href: self.href(&format!("admin/users/{}", u.id)),
                email: u.email.clone(),
                role: u.role.as_str(),
                disabled: u.disabled,
                groups: u.groups.join(", "),
                created: day(u.created_at),
            })
            .collect();
        let page = UsersPage {
            chrome: self.chrome("users", flash),
            q: search.to_owned(),
            rows,
            total,
            page: page_no,
            pages,
            first: (page_no - 1) * PAGE_SIZE + 1,
            prev: (page_no > 1).then(|| link(page_no - 1)),
            next: (page_no < pages).then(|| link(page_no + 1)),
            email: std::mem::take(&mut flash.email),
            invite: seams::INVITE,
            invite_link: flash.invite_link.take(),
        };
        Ok(render(&page))
    }

    async fn user(&self, path: &str, flash: &mut Flash) -> Result<String, ApiError> {
        let user = self.user_at(path).await?;
        let auth = &self.app.auth;
        let all_groups = auth.list_groups().await?;
        let sessions = auth
            .sessions(user.id)
            .await?
            .into_iter()
            .map(|s| SessionRow {
                created: rfc3339(s.record.created_at),
                last_seen: rfc3339(s.record.last_seen_at),
                device: s.record.user_agent.unwrap_or_default(),
                address: s.record.ip.unwrap_or_default(),
                app: s.record.grant.map(|g| g.client),
            })
            .collect();
        let page = UserPage {
            chrome: self.chrome("users", flash),
            action: self.href(&format!("admin/users/{}", user.id)),
            is_self: user.id == self.claims.sub,
            id: user.id.to_string(),
            email: user.email,
            admin: user.role == Role::Admin,
            disabled: user.disabled,
            created: rfc3339(user.created_at),
            available_groups: all_groups
                .into_iter()
                .map(|g| g.name)
                .filter(|g| !user.groups.contains(g))
                .collect(),
            factors: views::factors_summary(
                user.factors.totp.is_some(),
                user.factors.passkeys.len(),
                user.factors.recovery.len(),
            ),
            groups: user.groups,
            sessions,
            reset_factors: seams::RESET_FACTORS,
        };
        Ok(render(&page))
    }

    async fn groups(&self, flash: &mut Flash) -> Result<String, ApiError> {
        let rows = self
            .app
            .auth
            .list_groups()
            .await?
            .into_iter()
            .map(|g| GroupRow {
                name: g.name,
                members: g.members,
            })
            .collect();
        Ok(render(&GroupsPage {
            chrome: self.chrome("groups", flash),
            rows,
        }))
    }

    fn clients(&self, flash: &mut Flash) -> String {
        let rows = self
            .app
            .config
            .oidc
            .clients
            .iter()
            .map(|c| ClientRow {
                id: c.id.clone(),
                name: c.name.clone(),
                public: c.is_public(),
                consent: match c.consent {
                    crate::config::oidc::Consent::Explicit => "asked",
                    crate::config::oidc::Consent::Implicit => "not asked (first-party)",
                },
                groups: c.groups.join(", "),
                scopes: c.scopes.join(" "),
                redirect_uris: c.redirect_uris.clone(),
            })
            .collect();
        render(&ClientsPage {
            chrome: self.chrome("clients", flash),
            rows,
        })
    }

    async fn bans(&self, flash: &mut Flash) -> Result<String, ApiError> {
        let now = now_secs();
        let rows = self
            .app
            .auth
            .bans()
            .await?
            .into_iter()
            .map(|b| {
                let (kind, who) = match b.subject.split_once(':') {
                    Some(("user", email)) => ("Account", email.to_owned()),
                    Some(("ip", address)) => ("Client address", address.to_owned()),
                    _ => ("Subject", b.subject.clone()),
                };
                BanRow {
                    kind,
                    who,
                    until: rfc3339(b.until),
                    minutes_left: b.until.saturating_sub(now).div_ceil(60).max(1),
                    subject: b.subject,
                }
            })
            .collect();
        Ok(render(&BansPage {
            chrome: self.chrome("bans", flash),
            rows,
        }))
    }

    async fn audit(&self, flash: &mut Flash) -> Result<String, ApiError> {
        let events = seams::recent_audit(self.app, 100).await?;
        Ok(render(&AuditPage {
            chrome: self.chrome("audit", flash),
            available: seams::AUDIT,
            events,
        }))
    }

    /// Runs a form's action, then redirects back to the page (303) or shows it with the
    /// failure.
    async fn act(
        self,
        route: Route,
        path: &str,
        form: AdminForm,
    ) -> Result<HttpResponse, ApiError> {
        let outcome = match route {
            Route::AdminUsers => self.act_users(form).await?,
            Route::AdminUser => self.act_user(path, form).await?,
            Route::AdminGroups => self.act_groups(form).await?,
            Route::AdminBans => self.act_bans(form).await?,
            _ => return Err(ApiError::NotFound),
        };
        match outcome {
            Outcome::Done { path, done } => {
                let location = format!("{}?done={done}", self.href(&path));
                response::redirect(StatusCode::SEE_OTHER, &location).ok_or(ApiError::Internal)
            }
            Outcome::Show(flash) => self.show(route, path, &Query::default(), flash).await,
        }
    }

    async fn act_users(&self, form: AdminForm) -> Result<Outcome, ApiError> {
        let auth = &self.app.auth;
        let role = parse_role(&form.role)?;
        let email = form.email.trim();
        let result = match form.action.as_str() {
            "create" => auth
                .create_user(email, &form.password, role)
                .await
                .map(|u| Outcome::Done {
                    path: format!("admin/users/{}", u.id),
                    done: "created",
                }),
            "invite" => match seams::invite(self.app, email, role).await? {
                Ok(link) => {
                    return Ok(Outcome::Show(Flash {
                        notice: Some("The invitation is made. Send this link to them:"),
                        status: Some(StatusCode::OK),
                        invite_link: Some(link),
                        ..Flash::default()
                    }));
                }
                Err(e) => Err(e),
            },
            _ => return Err(unknown_action()),
        };
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                let mut flash = refusal(e)?;
                flash.email = email.to_owned();
                Ok(Outcome::Show(flash))
            }
        }
    }

    async fn act_user(&self, path: &str, form: AdminForm) -> Result<Outcome, ApiError> {
        let user = self.user_at(path).await?;
        let auth = &self.app.auth;
        let me = user.id == self.claims.sub;
        let email = user.email.as_str();
        let back = |done| Outcome::Done {
            path: path.to_owned(),
            done,
        };
        let result = match form.action.as_str() {
            "role" => {
                let role = parse_role(&form.role)?;
                if me && role != Role::Admin {
                    return Ok(Outcome::Show(Flash::failed(
                        StatusCode::CONFLICT,
                        "You cannot take the admin role from yourself: ask another admin, or use `gatehouse user set-role`.",
                    )));
                }
                if role == user.role {
                    // A role change ends the user's sessions: not for nothing.
                    return Ok(back("unchanged"));
                }
                auth.set_role(email, role).await.map(|_| back("role"))
            }
            "disable" => {
                if me {
                    return Ok(Outcome::Show(Flash::failed(
                        StatusCode::CONFLICT,
                        "You cannot disable your own account: ask another admin, or use `gatehouse user disable`.",
                    )));
                }
                auth.set_disabled(email, true)
                    .await
                    .map(|_| back("disabled"))
            }
            "enable" => auth
                .set_disabled(email, false)
                .await
                .map(|_| back("enabled")),
            "password" => auth
                .set_password(email, &form.password)
                .await
                .map(|_| back("password")),
            "end_sessions" => auth.end_sessions(user.id).await.map(|_| back("sessions")),
            "add_group" => auth
                .add_member(form.group.trim(), email)
                .await
                .map(|_| back("member_added")),
            "remove_group" => auth
                .remove_member(form.group.trim(), email)
                .await
                .map(|_| back("member_removed")),
            "reset_factors" => seams::reset_factors(self.app, email)
                .await?
                .map(|()| back("factors")),
            _ => return Err(unknown_action()),
        };
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => Ok(Outcome::Show(refusal(e)?)),
        }
    }

    async fn act_groups(&self, form: AdminForm) -> Result<Outcome, ApiError> {
        let auth = &self.app.auth;
        let name = form.group.trim();
        let back = |done| Outcome::Done {
            path: "admin/groups".to_owned(),
            done,
        };
        let result = match form.action.as_str() {
            "create" => auth.create_group(name).await.map(|created| {
                back(if created {
                    "group_created"
                } else {
                    "group_exists"
                })
            }),
            "delete" => auth.delete_group(name).await.map(|_| back("group_deleted")),
            _ => return Err(unknown_action()),
        };
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => Ok(Outcome::Show(refusal(e)?)),
        }
    }

    async fn act_bans(&self, form: AdminForm) -> Result<Outcome, ApiError> {
        if form.action != "lift" {
            return Err(unknown_action());
        }
        // Only the subjects the page lists (`user:…`, `ip:…`): the CLI's looser forms (a bare
        // email or address) are not needed here.
        let subject = form.subject.trim();
        if !(subject.starts_with("user:") || subject.starts_with("ip:")) || subject.len() > 512 {
            return Err(ApiError::BadRequest(
                "subject must be a ban's subject as listed (user:… or ip:…)".into(),
            ));
        }
        let lifted = self.app.auth.lift_ban(subject).await?;
        Ok(Outcome::Done {
            path: "admin/bans".to_owned(),
            done: if lifted.is_empty() {
                "ban_gone"
            } else {
                "ban_lifted"
            },
        })
    }
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    match role.trim() {
        "" | "user" => Ok(Role::User),
        "admin" => Ok(Role::Admin),
        _ => Err(ApiError::BadRequest(
            "role must be \"user\" or \"admin\"".into(),
        )),
    }
}

fn unknown_action() -> ApiError {
    ApiError::BadRequest("unknown action".into())
}

/// The day of a Unix time, `YYYY-MM-DD` (UTC).
fn day(secs: u64) -> String {
    rfc3339(secs).chars().take(10).collect()
}

#[cfg(test)]
mod tests;
