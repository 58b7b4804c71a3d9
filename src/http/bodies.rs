//! The JSON request bodies of the API, as typed structs: parsing them is the only way a body
//! reaches a handler. Public so the fuzz targets exercise exactly these.

use serde::Deserialize;

/// `POST /auth/register`, `POST /auth/login`
#[derive(Debug, Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// `POST /auth/refresh`
#[derive(Debug, Deserialize)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// `POST /auth/password`
#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /auth/password/forgot`, `POST /auth/verify/resend`
#[derive(Debug, Deserialize)]
pub struct EmailAddress {
    pub email: String,
}

/// `POST /auth/password/reset`
#[derive(Debug, Deserialize)]
pub struct PasswordReset {
    pub token: String,
    pub new_password: String,
}

/// `POST /auth/verify`, `POST /auth/email/confirm`
#[derive(Debug, Deserialize)]
pub struct LinkToken {
    pub token: String,
}

/// `POST /auth/email`
#[derive(Debug, Deserialize)]
pub struct EmailChange {
    pub new_email: String,
    pub password: String,
}
