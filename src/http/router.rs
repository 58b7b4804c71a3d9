//! Method and path to handler. Every failure becomes a problem+json response here.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

use super::handlers::{auth, health, sessions};
use super::request::{HttpRequest, has_body};
use super::response::HttpResponse;
use crate::app::App;
use crate::error::ApiError;

/// Answers one request; never fails, never panics on bad input.
pub async fn handle(app: &App, req: HttpRequest, peer: SocketAddr) -> HttpResponse {
    let limit = Duration::from_secs(app.config.limits.request_timeout);
    let had_body = has_body(req.headers());
    let result = match tokio::time::timeout(limit, route(app, req, peer)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout),
    };
    result.unwrap_or_else(|err| {
        let mut response = err.into_response();
        if had_body {
            // The body may be left unread (413, or refused before reading): the connection
            // cannot carry another request, so tell the client instead of resetting it.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response
    })
}

async fn route(app: &App, req: HttpRequest, peer: SocketAddr) -> Result<HttpResponse, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match path.as_str() {
        "/auth/register" => {
            allow(&method, POST)?;
            auth::register(app, req).await
        }
        "/auth/login" => {
            allow(&method, POST)?;
            auth::login(app, req, peer).await
        }
        "/auth/refresh" => {
            allow(&method, POST)?;
            auth::refresh(app, req).await
        }
        "/auth/logout" => {
            allow(&method, POST)?;
            auth::logout(app, req).await
        }
        "/auth/logout-all" => {
            allow(&method, POST)?;
            auth::logout_all(app, req).await
        }
        "/auth/me" => {
            allow(&method, GET)?;
            auth::me(app, req).await
        }
        "/auth/password" => {
            allow(&method, POST)?;
            auth::change_password(app, req, peer).await
        }
        "/auth/sessions" => {
            allow(&method, GET)?;
            sessions::list(app, req).await
        }
        "/healthz" => {
            allow(&method, GET)?;
            Ok(health::healthz())
        }
        "/readyz" => {
            allow(&method, GET)?;
            Ok(health::readyz(app).await)
        }
        _ => match path.strip_prefix("/auth/sessions/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                allow(&method, DELETE)?;
                sessions::revoke(app, req, id).await
            }
            _ => Err(ApiError::NotFound),
        },
    }
}

const POST: &str = "POST";
const GET: &str = "GET, HEAD";
const DELETE: &str = "DELETE";

/// 405 with `Allow` unless `method` is one of `allowed` (as written in the header).
fn allow(method: &Method, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow: allowed })
    }
}
