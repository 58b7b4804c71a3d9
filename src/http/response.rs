//! Every response gatehouse sends is built here: JSON, problem documents, HTML pages,
//! redirects, plain text and empty answers. None of them is ever cached (they carry tokens,
//! identities or state).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

pub type HttpResponse = Response<Full<Bytes>>;

/// The one constructor: status, body, its type, and `Cache-Control: no-store`.
fn respond(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    // Our response types are plain structs: serializing them cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    respond(status, Some("application/json"), Bytes::from(bytes))
}

/// An RFC 9457 problem document (the headers its status calls for are the caller's:
/// see [`super::error::ApiError::into_response`]).
pub fn problem<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    respond(status, Some("application/problem+json"), Bytes::from(bytes))
}

/// An HTML page that cannot be framed, sniffed or run scripts.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    page(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    )
}

/// An HTML page that runs gatehouse's own script files (passkeys need WebAuthn, a JavaScript
/// API) and may call gatehouse's API: `script-src 'self'`, never inline scripts. No
/// `form-action`: browsers apply it to the redirect after a form post too, and the login
/// form's answer sends the browser on to the app it came from (another origin).
pub fn html_with_scripts(status: StatusCode, body: String) -> HttpResponse {
    page(
        status,
        body,
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    )
}

/// A static script file (`/static/…`).
pub fn script(body: &'static str) -> HttpResponse {
    let mut response = respond(
        StatusCode::OK,
        Some("text/javascript; charset=utf-8"),
        Bytes::from_static(body.as_bytes()),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn page(status: StatusCode, body: String, policy: &'static str) -> HttpResponse {
    let mut response = respond(status, Some("text/html; charset=utf-8"), Bytes::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// An HTML page whose address carries a secret (a mailed link's token): as [`html`], but
/// with `Referrer-Policy: strict-origin`, so no request from the page (a link followed, the
/// form posted) ever carries its path or query in `Referer`. Not `no-referrer`: under it,
/// browsers send `Origin: null` with the page's own form post, which the Origin check
/// (CSRF) must refuse.
pub fn html_with_secret_url(status: StatusCode, body: String) -> HttpResponse {
    let mut response = html(status, body);
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin"),
    );
    response
}

/// A redirect (`302`/`303`) to `location`; `None` if it is not a valid header value.
pub fn redirect(status: StatusCode, location: &str) -> Option<HttpResponse> {
    let value = HeaderValue::from_str(location).ok()?;
    let mut response = empty(status);
    response.headers_mut().insert(header::LOCATION, value);
    Some(response)
}

/// Plain text of the given type (the Prometheus exposition format).
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    respond(status, Some(content_type), Bytes::from(body))
}

/// A response without a body (`204`, or a forward-auth `200` whose answer is its headers).
pub fn empty(status: StatusCode) -> HttpResponse {
    respond(status, None, Bytes::new())
}

/// 204 No Content.
pub fn no_content() -> HttpResponse {
    empty(StatusCode::NO_CONTENT)
}
