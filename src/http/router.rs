//! Method and path to handler. Every failure becomes a problem+json response here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;

use super::handlers::forward_auth::{self, Flavor};
use super::handlers::{auth, health, introspect, login, sessions};
use super::metrics;
use super::request::{HttpRequest, has_body};
use super::response::HttpResponse;
use crate::app::App;
use crate::error::ApiError;

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The API (and `/metrics` unless `metrics.listen` moves it).
    Api,
    /// Only `/metrics`, on `metrics.listen`.
    Metrics,
}

/// Answers one request; never fails, never panics on bad input.
pub async fn handle(app: &App, req: HttpRequest, peer: SocketAddr) -> HttpResponse {
    handle_on(app, req, peer, Surface::Api).await
}

/// Answers one request on the given surface, and records its metrics.
pub async fn handle_on(
    app: &App,
    req: HttpRequest,
    peer: SocketAddr,
    surface: Surface,
) -> HttpResponse {
    let started = Instant::now();
    let label = metrics::route_label(req.uri().path());
    let response = answer(app, req, peer, surface).await;
    metrics::record_request(label, response.status(), started.elapsed());
    response
}

async fn answer(app: &App, req: HttpRequest, peer: SocketAddr, surface: Surface) -> HttpResponse {
    let metrics_here = match surface {
        Surface::Api => app.config.metrics.listen.is_none(),
        Surface::Metrics => true,
    };
    if req.uri().path() == "/metrics" && metrics_here {
        return match allow(req.method(), GET) {
            Ok(()) => metrics::render(app).await,
            Err(e) => e.into_response(),
        };
    }
    if surface == Surface::Metrics {
        return ApiError::NotFound.into_response();
    }
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
        "/authz/forward-auth" => {
            allow(&method, GET)?;
            forward_auth::handle(app, req, Flavor::ForwardAuth).await
        }
        "/authz/auth-request" => {
            allow(&method, GET)?;
            forward_auth::handle(app, req, Flavor::AuthRequest).await
        }
        "/login" => match method {
            Method::GET | Method::HEAD => login::page(app, req).await,
            Method::POST => login::submit(app, req, peer).await,
            _ => Err(ApiError::MethodNotAllowed { allow: PAGE }),
        },
        "/logout" => match method {
            Method::GET | Method::HEAD => login::logout_page(app, req).await,
            Method::POST => login::logout_submit(app, req).await,
            _ => Err(ApiError::MethodNotAllowed { allow: PAGE }),
        },
        "/auth/introspect" => {
            allow(&method, POST)?;
            introspect::introspect(app, req, peer).await
        }
        "/.well-known/jwks.json" => {
            allow(&method, GET)?;
            Ok(introspect::jwks(app))
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
const PAGE: &str = "GET, HEAD, POST";

/// 405 with `Allow` unless `method` is one of `allowed` (as written in the header).
fn allow(method: &Method, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow: allowed })
    }
}
