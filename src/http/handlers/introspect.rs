//! `POST /auth/introspect` (RFC 7662) for resource servers, and
//! `GET /.well-known/jwks.json` (the public keys that verify access tokens).

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::auth::AuthError;
use crate::auth::tokens::AccessClaims;
use crate::http::error::ApiError;
use crate::http::request::{HttpRequest, client_info, is_json, read_body};
use crate::http::response::{HttpResponse, json};

#[derive(Debug, Deserialize)]
struct IntrospectionRequest {
    token: String,
    /// RFC 7662 allows it; only access tokens are introspected, so it changes nothing.
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    token_type: &'static str,
    /// RFC 7662's human-readable identifier: the email, as in `Remote-User`.
    username: &'a str,
    #[serde(flatten)]
    claims: &'a AccessClaims,
}

/// `POST /auth/introspect`: 404 while `introspection.client_*` are unset; 401 without the
/// right HTTP Basic credentials (checked before the body is read); then `{"active": true,
/// …claims}` for an access token of a live session and `{"active": false}` for anything
/// else (expired, revoked, forged, garbage).
pub(crate) async fn introspect(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let (Some(id), Some(secret)) = (
        app.config.introspection.client_id.as_deref(),
        app.config.introspection.client_secret.as_deref(),
    ) else {
        return Err(ApiError::NotFound);
    };
    // Wrong client secrets count against the client address like failed logins.
    let client = client_info(req.headers(), peer, &app.config.trusted_networks);
    let checked = app
        .auth
        .check_client_secret(client.ip.as_deref(), || {
            client_authenticated(req.headers(), id, secret)
        })
        .await;
    if let Err(e) = checked {
        tracing::info!(event = "introspection_client_refused");
        return Err(e.into());
    }
    let json_body = is_json(req.headers());
    let form_body = is_form(req.headers());
    if !json_body && !form_body {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded or application/json",
        });
    }
    let bytes = read_body(req, app.config.limits.max_body).await?;
    let body: IntrospectionRequest = if json_body {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    } else {
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| ApiError::BadRequest("the form needs a `token` field".into()))?
    };
    let claims = match app.auth.authenticate(body.token.trim()).await {
        Ok(claims) => claims,
        // Fail closed, and say so: an unchecked token is neither active nor inactive.
        Err(AuthError::Store(e)) => return Err(AuthError::Store(e).into()),
        Err(_) => {
            return Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "active": false }),
            ));
        }
    };
    Ok(json(
        StatusCode::OK,
        &Active {
            active: true,
            token_type: "Bearer",
            username: &claims.email,
            claims: &claims,
        },
    ))
}

fn is_form(headers: &HeaderMap) -> bool {
    crate::http::request::has_content_type(headers, "application/x-www-form-urlencoded")
}

/// HTTP Basic with the configured id and secret. Both are compared as SHA-256 digests in
/// constant time, so neither their contents nor their lengths leak through timing.
fn client_authenticated(headers: &HeaderMap, id: &str, secret: &str) -> bool {
    let Some((given_id, given_secret)) = basic_credentials(headers) else {
        return false;
    };
    let digest = |s: &[u8]| Sha256::digest(s);
    let same = |a: &str, b: &str| digest(a.as_bytes()).ct_eq(&digest(b.as_bytes()));
    // As sent (curl -u), or form-decoded first as RFC 6749 §2.3.1 asks of OAuth clients.
    let raw = same(&given_id, id) & same(&given_secret, secret);
    let decoded = same(&unform(&given_id), id) & same(&unform(&given_secret), secret);
    bool::from(raw | decoded)
}

fn unform(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `Authorization: Basic base64(id:secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `GET /.well-known/jwks.json`: `{"keys": [...]}`; empty under HS256 (a secret is never
/// published).
pub(crate) fn jwks(app: &App) -> HttpResponse {
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({ "keys": app.auth.jwks() }),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn basic_client_authentication() {
        let ok = format!("Basic {}", STANDARD.encode("api:s3cret%3Awith-colon"));
        assert!(client_authenticated(
            &basic(&ok),
            "api",
            "s3cret:with-colon"
        ));
        let raw = format!("Basic {}", STANDARD.encode("api:s3cret:with-colon"));
        assert!(client_authenticated(
            &basic(&raw),
            "api",
            "s3cret:with-colon"
        ));
        let wrong = format!("Basic {}", STANDARD.encode("api:nope"));
        assert!(!client_authenticated(
            &basic(&wrong),
            "api",
            "s3cret:with-colon"
        ));
        assert!(!client_authenticated(&basic("Bearer x"), "api", "x"));
        assert!(!client_authenticated(&basic("Basic !!!"), "api", "x"));
        assert!(!client_authenticated(&HeaderMap::new(), "api", "x"));
    }
}
