//! Who is calling, if anyone: the one place that finds a request's access token and checks
//! it. The JSON API [`requires`] a caller (the enrolment endpoints accept one whose session is
//! limited to enrolling a second factor: [`requires_enrolling`]); forward-auth and the pages
//! ask whether one is [`signed_in`] and treat anything else as anonymous.

use http::{HeaderMap, header};

use super::cookies;
use super::request::{HttpRequest, check_same_origin};
use crate::app::App;
use crate::auth::AuthError;
use crate::auth::tokens::AccessClaims;
use crate::http::error::ApiError;

/// How the access token travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`: an API client.
    Bearer,
    /// The access cookie: a browser, whose state-changing requests need the CSRF check.
    Cookie,
}

/// A caller with a valid access token of a live session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: AccessClaims,
    pub via: Via,
}

/// The access token: a `Bearer` authorization, else the access cookie. Another
/// authorization scheme (an app's own Basic auth, passed through a proxy) does not hide
/// the cookie.
pub fn access_token(headers: &HeaderMap) -> Option<(&str, Via)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    match bearer {
        Some(token) => Some((token, Via::Bearer)),
        None => cookies::get(headers, cookies::ACCESS)
            .filter(|t| !t.is_empty())
            .map(|t| (t, Via::Cookie)),
    }
}

/// The caller, if a valid token of a live session came with the request; `None` for no
/// token or a bad one. Fails only when the store could not say (fail closed: 503).
pub async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some((token, via)) = access_token(headers) else {
        return Ok(None);
    };
    match app.auth.authenticate(token).await {
        Ok(claims) => Ok(Some(Caller { claims, via })),
        Err(AuthError::Store(e)) => Err(AuthError::Store(e).into()),
        Err(_) => Ok(None),
    }
}

/// The caller of an endpoint that needs one: 401 without a valid token of a live session;
/// a browser's state-changing request must also pass the CSRF check (403); a session limited
/// to enrolling a second factor (`mfa.required`) gets 403 `second-factor-enrolment-required`.
pub async fn requires(app: &App, req: &HttpRequest) -> Result<Caller, ApiError> {
    let caller = requires_enrolling(app, req).await?;
    if caller.claims.enrolment_only {
        return Err(ApiError::EnrolmentRequired);
    }
    Ok(caller)
}

/// Like [`requires`], for the endpoints a session limited to enrolling a second factor may
/// use (`/auth/mfa/*`, logout).
pub async fn requires_enrolling(app: &App, req: &HttpRequest) -> Result<Caller, ApiError> {
    let (token, via) = access_token(req.headers()).ok_or(ApiError::MissingToken)?;
    if via == Via::Cookie {
        check_same_origin(req.method(), req.headers(), &app.config)?;
    }
    let claims = app.auth.authenticate(token).await?;
    Ok(Caller { claims, via })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_and_other_schemes_leave_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(access_token(&h), None);
        h.insert(header::COOKIE, "a=b; gatehouse_access=tok".parse().unwrap());
        assert_eq!(access_token(&h), Some(("tok", Via::Cookie)));
        h.insert(header::AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(access_token(&h), Some(("tok", Via::Cookie)));
        h.insert(header::AUTHORIZATION, "bearer  jwt ".parse().unwrap());
        assert_eq!(access_token(&h), Some(("jwt", Via::Bearer)));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(access_token(&h), Some(("tok", Via::Cookie)));
        h.remove(header::COOKIE);
        assert_eq!(access_token(&h), None);
    }
}
