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
