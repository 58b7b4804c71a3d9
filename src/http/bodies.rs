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

/// `POST /auth/mfa/totp`, `DELETE /auth/mfa/totp`, `POST /auth/mfa/recovery-codes`,
/// `DELETE /auth/mfa/passkeys/{id}`: the current password.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    pub password: String,
}

/// `POST /auth/mfa/totp/confirm`
#[derive(Debug, Deserialize)]
pub struct CodeBody {
    pub code: String,
}

/// `POST /auth/login/second-factor`
#[derive(Debug, Deserialize)]
pub struct SecondFactorBody {
    pub mfa_token: String,
    /// `totp` or `recovery`.
    pub method: String,
    pub code: String,
}

/// `POST /auth/mfa/passkeys/options`: the new passkey's name and the current password.
#[derive(Debug, Deserialize)]
pub struct PasskeyRegisterOptions {
    pub name: String,
    pub password: String,
}

/// `POST /auth/mfa/passkeys`: the authenticator's answer to a registration ceremony.
#[derive(Debug, Deserialize)]
pub struct PasskeyRegistration {
    pub ceremony: String,
    pub credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
}

/// `POST /auth/passkey/options`: with `mfa_token`, a passkey as a login's second step;
/// without, a discoverable passkey alone.
#[derive(Debug, Default, Deserialize)]
pub struct PasskeyLoginOptions {
    #[serde(default)]
    pub mfa_token: Option<String>,
}

/// `POST /auth/passkey/login`: the authenticator's answer to a sign-in ceremony.
#[derive(Debug, Deserialize)]
pub struct PasskeyAssertion {
    pub ceremony: String,
    pub credential: webauthn_rs::prelude::PublicKeyCredential,
    #[serde(default)]
    pub mfa_token: Option<String>,
}
