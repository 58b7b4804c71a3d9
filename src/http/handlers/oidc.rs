//! The OpenID Connect provider's endpoints (404 while no client is configured):
//!
//! - `GET /.well-known/openid-configuration`: discovery.
//! - `GET|POST /oidc/authorize`: the authorization endpoint and its consent form; a browser
//!   without a session goes through `/login` and comes back.
//! - `POST /oidc/token`: code exchange and refresh (RFC 6749 errors as JSON).
//! - `GET|POST /oidc/userinfo`: Bearer.
//! - `POST /oidc/revoke` (RFC 7009), `POST /oidc/introspect` (RFC 7662).
//! - `GET|POST /oidc/logout`: RP-initiated logout.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::auth::oidc::Provider;
use crate::auth::service::grants::{AuthorizeParams, Authorized, ClientCredentials, OAuthError};
use crate::http::cookies;
use crate::http::error::ApiError;
use crate::http::pages::{ConsentPage, OidcErrorPage, OidcLogoutPage, SignedOutPage, render};
use crate::http::request::{HttpRequest, check_same_origin, client_info, read_body};
use crate::http::response::{self, HttpResponse, html, json};

fn provider(app: &App) -> Result<&Provider, ApiError> {
    app.auth.provider().ok_or(ApiError::NotFound)
}

/// `GET /.well-known/openid-configuration`
pub(crate) fn discovery(app: &App) -> Result<HttpResponse, ApiError> {
    Ok(json(StatusCode::OK, &provider(app)?.discovery()))
}

/// The parameters of a request: the query (GET) or the form body (POST). A parameter sent
/// twice is refused (RFC 6749 §3.1): which one a relying party meant is anyone's guess.
async fn parameters(app: &App, req: HttpRequest) -> Result<Vec<(String, String)>, String> {
    let from_body = req.method() == Method::POST;
    let raw: Vec<u8> = if from_body {
        if !crate::http::request::has_content_type(
            req.headers(),
            "application/x-www-form-urlencoded",
        ) {
            return Err("the request must be a form (application/x-www-form-urlencoded)".into());
        }
        read_body(req, app.config.limits.max_body)
            .await
            .map_err(|e| e.to_string())?
            .to_vec()
    } else {
        req.uri().query().unwrap_or("").as_bytes().to_vec()
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&raw) {
        if out.iter().any(|(name, _)| name == &k) {
            return Err(format!("the parameter {k} is sent more than once"));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn authorize_params(params: &[(String, String)]) -> AuthorizeParams {
    let mut map = Map::new();
    for (k, v) in params {
        if !v.is_empty() {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    serde_json::from_value(Value::Object(map)).unwrap_or_default()
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    html(status, render(&OidcErrorPage { message }))
}

fn found(location: &str, method: &Method) -> HttpResponse {
    let status = if method == Method::POST {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    response::redirect(status, location).unwrap_or_else(|| {
        error_page(
            StatusCode::BAD_REQUEST,
            "The redirect address is not valid.",
        )
    })
}

/// `GET|POST /oidc/authorize`
pub(crate) async fn authorize(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let provider = provider(app)?;
    let method = req.method().clone();
    let headers = req.headers().clone();
    let params = match parameters(app, req).await {
        Ok(params) => params,
        Err(why) => return Ok(error_page(StatusCode::BAD_REQUEST, &why)),
    };
    // The consent form's answer: only from a form post of our own page.
    let decision = match param(&params, "decision") {
        None => None,
        Some(answer) => {
            if method != Method::POST {
                return Ok(error_page(
                    StatusCode::BAD_REQUEST,
                    "A consent answer must be posted from the consent page.",
                ));
            }
            check_same_origin(&method, &headers, &app.config)?;
            Some(answer == "allow")
        }
    };
    let request = authorize_params(&params);
    let browser = match cookies::get(&headers, cookies::ACCESS).filter(|t| !t.is_empty()) {
        Some(token) => app.auth.browser(token).await?,
        None => None,
    };
    let outcome = app
        .auth
        .authorize(&request, browser.as_ref(), decision)
        .await?;
    Ok(match outcome {
        Authorized::Refused(message) => error_page(StatusCode::BAD_REQUEST, &message),
        Authorized::Redirect(location) => found(&location, &method),
        Authorized::Login { fresh } => {
            // Back here after signing in: the same request, less what asked for the sign-in
            // and the consent answer, plus when a fresh sign-in was asked for.
            let mut again = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                match k.as_str() {
                    "decision" | "login_after" => {}
                    "prompt" => {
                        let rest: Vec<&str> = v.split(' ').filter(|p| *p != "login").collect();
                        if !rest.is_empty() {
                            again.append_pair(k, &rest.join(" "));
                        }
                    }
                    _ => {
                        again.append_pair(k, v);
                    }
                }
            }
            if let Some(marker) = &fresh {
                again.append_pair("login_after", marker);
            }
            let original = format!("{}/oidc/authorize?{}", provider.issuer(), again.finish());
            let mut login = crate::http::redirect::login_url(&app.config, &original);
            if fresh.is_some() {
                login.push_str("&prompt=login");
            }
            if let Some(hint) = request.login_hint.as_deref() {
                login.push_str("&login_hint=");
                login.extend(form_urlencoded::byte_serialize(hint.as_bytes()));
            }
            found(&login, &method)
        }
        Authorized::Consent { client, scopes } => {
            let email = browser.as_ref().map_or("", |b| b.claims.email.as_str());
            let fields = params
                .iter()
                .filter(|(k, _)| k != "decision")
                .cloned()
                .collect();
            let described = scopes.iter().filter_map(|s| describe_scope(s)).collect();
            html(
                StatusCode::OK,
                render(&ConsentPage {
                    client: &client,
                    email,
                    scopes: described,
                    fields,
                }),
            )
        }
    })
}

fn describe_scope(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "who you are (an identifier for your account)",
        "email" => "your email address",
        "profile" => "your name and user name",
        "groups" => "the groups you belong to",
        "offline_access" => "access while you are away (stays signed in)",
        _ => return None,
    })
}

/// An RFC 6749 error response: JSON `error` and `error_description`, 400 (401 with
/// `WWW-Authenticate` for client authentication).
fn oauth_error(e: OAuthError) -> HttpResponse {
    let status = match &e {
        OAuthError::InvalidClient | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
        OAuthError::Regulated { .. } => StatusCode::TOO_MANY_REQUESTS,
        OAuthError::Other(crate::auth::AuthError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::Other(crate::auth::AuthError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let description = match &e {
        OAuthError::Other(inner) => {
            tracing::error!(error = %inner, "OpenID Connect request failed");
            "the server could not answer; retry later".to_owned()
        }
        other => other.to_string(),
    };
    let code = match &e {
        OAuthError::Other(crate::auth::AuthError::Busy | crate::auth::AuthError::Store(_)) => {
            "temporarily_unavailable"
        }
        other => other.code(),
    };
    let mut response = json(
        status,
        &json!({"error": code, "error_description": description}),
    );
    let headers = response.headers_mut();
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    match e {
        OAuthError::InvalidClient => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gatehouse\""),
            );
        }
        OAuthError::InvalidToken => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        OAuthError::Regulated { retry_after }
        | OAuthError::Other(crate::auth::AuthError::Regulated { retry_after }) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        }
        OAuthError::Other(crate::auth::AuthError::Busy | crate::auth::AuthError::Store(_)) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient;
    let value = value.to_str().map_err(|_| bad())?.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The parameters and authenticated client of a token-side request.
async fn client_request(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<(Vec<(String, String)>, &crate::config::oidc::Client), OAuthError> {
    if req.method() != Method::POST {
        return Err(OAuthError::InvalidRequest("use POST".into()));
    }
    let headers = req.headers().clone();
    let basic = basic_credentials(&headers)?;
    let params = parameters(app, req)
        .await
        .map_err(OAuthError::InvalidRequest)?;
    let credentials = ClientCredentials {
        basic,
        client_id: param(&params, "client_id").map(str::to_owned),
        client_secret: param(&params, "client_secret").map(str::to_owned),
    };
    let ip = client_info(&headers, peer, &app.config.trusted_networks).ip;
    let client = app
        .auth
        .authenticate_client(&credentials, ip.as_deref())
        .await?;
    Ok((params, client))
}

fn no_store_json(body: &impl serde::Serialize) -> HttpResponse {
    let mut response = json(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /oidc/token`
pub(crate) async fn token(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    provider(app)?;
    let info = client_info(req.headers(), peer, &app.config.trusted_networks);
    let result = async {
        let (params, client) = client_request(app, req, peer).await?;
        match param(&params, "grant_type") {
            Some("authorization_code") => {
                let code = param(&params, "code")
                    .ok_or_else(|| OAuthError::InvalidRequest("code is missing".into()))?;
                app.auth
                    .exchange_code(
                        client,
                        code,
                        param(&params, "redirect_uri"),
                        param(&params, "code_verifier"),
                        &info,
                    )
                    .await
            }
            Some("refresh_token") => {
                let token = param(&params, "refresh_token")
                    .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is missing".into()))?;
                app.auth
                    .refresh_grant(client, token, param(&params, "scope"))
                    .await
            }
            Some(_) => Err(OAuthError::UnsupportedGrantType),
            None => Err(OAuthError::InvalidRequest("grant_type is missing".into())),
        }
    }
    .await;
    Ok(match result {
        Ok(tokens) => no_store_json(&tokens),
        Err(e) => oauth_error(e),
    })
}

/// `GET|POST /oidc/userinfo`: the access token as `Authorization: Bearer` (or, RFC 6750
/// §2.2, an `access_token` form field on POST).
pub(crate) async fn userinfo(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    provider(app)?;
    let bearer = crate::http::caller::access_token(req.headers())
        .filter(|(_, via)| *via == crate::http::caller::Via::Bearer)
        .map(|(t, _)| t.to_owned());
    let token = match bearer {
        Some(token) => Some(token),
        None if req.method() == Method::POST => parameters(app, req)
            .await
            .ok()
            .and_then(|p| param(&p, "access_token").map(str::to_owned)),
        None => None,
    };
    let Some(token) = token else {
        return Ok(oauth_error(OAuthError::InvalidToken));
    };
    Ok(match app.auth.userinfo(&token).await {
        Ok(claims) => no_store_json(&claims),
        Err(e) => oauth_error(e),
    })
}

/// `POST /oidc/revoke` (RFC 7009): 200 whether or not the token was live.
pub(crate) async fn revoke(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    provider(app)?;
    let result = async {
        let (params, client) = client_request(app, req, peer).await?;
        let token = param(&params, "token")
            .ok_or_else(|| OAuthError::InvalidRequest("token is missing".into()))?;
        app.auth.revoke_grant_token(client, token).await
    }
    .await;
    Ok(match result {
        Ok(()) => response::empty(StatusCode::OK),
        Err(e) => oauth_error(e),
    })
}

/// `POST /oidc/introspect` (RFC 7662), for the client the token was issued to.
pub(crate) async fn introspect(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    provider(app)?;
    let result = async {
        let (params, client) = client_request(app, req, peer).await?;
        let token = param(&params, "token")
            .ok_or_else(|| OAuthError::InvalidRequest("token is missing".into()))?;
        app.auth.introspect_grant_token(client, token).await
    }
    .await;
    Ok(match result {
        Ok(body) => no_store_json(&body),
        Err(e) => oauth_error(e),
    })
}

/// `GET|POST /oidc/logout` (RP-Initiated Logout 1.0). With a valid `id_token_hint` it ends
/// the browser session and that grant at once; without one, only after the user confirms
/// (a posted form of this page), so a foreign link cannot sign anyone out. Then to a
/// registered `post_logout_redirect_uri` with `state`, else a signed-out page.
pub(crate) async fn end_session(app: &App, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let provider = provider(app)?;
    let method = req.method().clone();
    let headers = req.headers().clone();
    let params = match parameters(app, req).await {
        Ok(params) => params,
        Err(why) => return Ok(error_page(StatusCode::BAD_REQUEST, &why)),
    };
    let hint = match param(&params, "id_token_hint") {
        Some(token) => match provider.verify_id_token_hint(token) {
            Some(hint) => Some(hint),
            None => {
                return Ok(error_page(
                    StatusCode::BAD_REQUEST,
                    "The sign-out request carries an id_token_hint that this server did not issue.",
                ));
            }
        },
        None => None,
    };
    let client_id = match (
        hint.as_ref().map(|h| h.aud.as_str()),
        param(&params, "client_id"),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "client_id does not match the id_token_hint.",
            ));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let client = client_id.and_then(|id| provider.client(id));
    if client_id.is_some() && client.is_none() {
        return Ok(error_page(StatusCode::BAD_REQUEST, "Unknown client_id."));
    }
    let back = match param(&params, "post_logout_redirect_uri") {
        None => None,
        Some(uri) => match client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri),
            _ => {
                return Ok(error_page(
                    StatusCode::BAD_REQUEST,
                    "post_logout_redirect_uri is not registered for this client.",
                ));
            }
        },
    };
    let confirmed = method == Method::POST && param(&params, "confirm") == Some("yes");
    if confirmed {
        check_same_origin(&method, &headers, &app.config)?;
    }
    if hint.is_none() && !confirmed {
        let fields = params
            .iter()
            .filter(|(k, _)| k != "confirm")
            .cloned()
            .collect();
        return Ok(html(
            StatusCode::OK,
            render(&OidcLogoutPage {
                client: client.map(|c| c.name.as_str()),
                fields,
            }),
        ));
    }
    if let Some(token) = cookies::get(&headers, cookies::ACCESS).filter(|t| !t.is_empty()) {
        app.auth.logout_by_access_token(token).await?;
    }
    if let Some(hint) = &hint {
        app.auth.end_grant(hint).await?;
    }
    let mut response = match back {
        Some(uri) => {
            let mut target = uri.to_owned();
            if let Some(state) = param(&params, "state") {
                target.push(if uri.contains('?') { '&' } else { '?' });
                target.push_str("state=");
                target.extend(form_urlencoded::byte_serialize(state.as_bytes()));
            }
            found(&target, &method)
        }
        None => html(
            StatusCode::OK,
            render(&SignedOutPage {
                title: &app.config.login.title,
                login_href: "../login",
            }),
        ),
    };
    cookies::clear(response.headers_mut(), &app.config);
    Ok(response)
}
