//! The one error type of the HTTP API. Every variant renders as an RFC 9457
//! `application/problem+json` body with a stable `type`, so clients can branch on it.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::response::HttpResponse;
use crate::auth::AuthError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body must be {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unprocessable(String),
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error(
        "an access token is required: send `Authorization: Bearer <token>` or the access cookie"
    )]
    MissingToken,
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("the refresh token is invalid, expired or already used")]
    InvalidRefreshToken,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("client authentication failed: send the configured client id and secret by HTTP Basic")]
    InvalidClient,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the request took too long")]
    RequestTimeout,
    #[error("too many failed logins; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("the server is busy; retry in {} s", retry_after.as_secs())]
    Busy { retry_after: Duration },
    #[error("the store is unavailable; retry shortly")]
    StoreUnavailable,
    #[error("the store has no space left; writes are refused until space is freed")]
    StoreFull,
    #[error(
        "the password was right; this account also needs its second factor: POST /auth/login/second-factor with the mfa_token"
    )]
    SecondFactorRequired {
        mfa_token: String,
        methods: Vec<&'static str>,
    },
    #[error("the mfa_token is invalid, expired or already used; sign in again")]
    InvalidMfaToken,
    #[error("{0}")]
    InvalidSecondFactor(&'static str),
    #[error(
        "this resource needs a session signed in with two factors; sign in with your second factor"
    )]
    StepUpRequired,
    #[error(
        "this account must set up a second factor first (mfa.required): only the enrolment endpoints (/auth/mfa/*) and the account page are open"
    )]
    EnrolmentRequired,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    NotImplemented(&'static str),
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: String,
    /// `second-factor-required`: the token of the login's second step.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    /// `second-factor-required`: the methods that may complete it.
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<&'a [&'static str]>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
            ),
            MissingToken => (StatusCode::UNAUTHORIZED, "missing-token", "Missing token"),
            InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid-token", "Invalid token"),
            InvalidRefreshToken => (
                StatusCode::UNAUTHORIZED,
                "invalid-refresh-token",
                "Invalid refresh token",
            ),
            WrongPassword => (
                StatusCode::UNAUTHORIZED,
                "wrong-password",
                "Wrong current password",
            ),
            InvalidClient => (StatusCode::UNAUTHORIZED, "invalid-client", "Invalid client"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            EmailTaken => (StatusCode::CONFLICT, "email-taken", "Email taken"),
            RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Server busy"),
            StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Store unavailable",
            ),
            StoreFull => (
                StatusCode::INSUFFICIENT_STORAGE,
                "store-full",
                "Insufficient storage",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            SecondFactorRequired { .. } => (
                StatusCode::UNAUTHORIZED,
                "second-factor-required",
                "Second factor required",
            ),
            InvalidMfaToken => (
                StatusCode::UNAUTHORIZED,
                "invalid-mfa-token",
                "Invalid mfa_token",
            ),
            InvalidSecondFactor(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid-second-factor",
                "Invalid second factor",
            ),
            StepUpRequired => (
                StatusCode::UNAUTHORIZED,
                "step-up-required",
                "Second factor required in this session",
            ),
            EnrolmentRequired => (
                StatusCode::FORBIDDEN,
                "second-factor-enrolment-required",
                "Second factor enrolment required",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            NotImplemented(_) => (
                StatusCode::NOT_IMPLEMENTED,
                "not-implemented",
                "Not implemented",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Renders the problem document with the headers its status calls for.
    pub fn into_response(self) -> HttpResponse {
        let (status, slug, title) = self.parts();
        let (mfa_token, methods) = match &self {
            ApiError::SecondFactorRequired { mfa_token, methods } => {
                (Some(mfa_token.as_str()), Some(methods.as_slice()))
            }
            _ => (None, None),
        };
        let problem = Problem {
            r#type: format!("urn:gatehouse:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            mfa_token,
            methods,
        };
        let mut response = super::response::problem(status, &problem);
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                ApiError::InvalidToken(_) => "Bearer error=\"invalid_token\"",
                ApiError::InvalidClient => "Basic realm=\"gatehouse introspection\"",
                _ => "Bearer",
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        let retry_after = match self {
            ApiError::Busy { retry_after } => Some(retry_after.as_secs().max(1)),
            ApiError::TooManyRequests { retry_after } => Some(retry_after.max(1)),
            ApiError::StoreUnavailable => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        // Counted where it happened, by store, backend and operation (store::metered).
        match err {
            StoreError::Full(_) | StoreError::Poisoned(_) => ApiError::StoreFull,
            StoreError::Unavailable(_) => ApiError::StoreUnavailable,
            StoreError::Corrupt(_) => ApiError::Internal,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidEmail(why) | AuthError::WeakPassword(why) => {
                ApiError::Unprocessable(why)
            }
            AuthError::EmailTaken => ApiError::EmailTaken,
            AuthError::RegistrationClosed => ApiError::Forbidden("registration is closed"),
            AuthError::InvalidCredentials => ApiError::InvalidCredentials,
            AuthError::InvalidToken(e) => ApiError::InvalidToken(e.message()),
            AuthError::SessionEnded => ApiError::InvalidToken("the session has ended"),
            AuthError::InvalidRefreshToken => ApiError::InvalidRefreshToken,
            AuthError::WrongPassword => ApiError::WrongPassword,
            AuthError::WrongClientSecret => ApiError::InvalidClient,
            AuthError::SessionNotFound
            | AuthError::UserNotFound(_)
            | AuthError::GroupNotFound(_) => ApiError::NotFound,
            AuthError::InvalidGroup(why) => ApiError::Unprocessable(why),
            AuthError::Regulated { retry_after } => ApiError::TooManyRequests { retry_after },
            AuthError::Busy => ApiError::Busy {
                retry_after: Duration::from_secs(1),
            },
            AuthError::Store(e) => {
                tracing::error!(error = %e, "store error");
                e.into()
            }
            AuthError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                ApiError::Internal
            }
            AuthError::InvalidMfaToken => ApiError::InvalidMfaToken,
            AuthError::InvalidSecondFactor(why) => ApiError::InvalidSecondFactor(why),
            e @ AuthError::WrongCode => ApiError::Unprocessable(e.to_string()),
            AuthError::NoPendingEnrolment => {
                ApiError::Conflict("no TOTP set-up is pending; POST /auth/mfa/totp first")
            }
            AuthError::NoSecondFactor => {
                ApiError::Conflict("the account has no second factor; set one up first")
            }
            AuthError::FactorNotFound => ApiError::NotFound,
            AuthError::PasskeysUnavailable => ApiError::NotImplemented(
                "passkeys are off: they need public_url to be set (it is the WebAuthn origin)",
            ),
            AuthError::PasskeyRefused(why) => ApiError::BadRequest(why),
            AuthError::InvalidInput(why) => ApiError::Unprocessable(why),
        }
    }
}
