//! The JSON request bodies of every endpoint (`gatehouse::http::bodies`), then the
//! email and password policy (length bounds and the zxcvbn estimate) and the mailed links'
//! token format (`gatehouse::domain::link::token_user`) on whatever parsed.
#![no_main]

use std::sync::OnceLock;

use gatehouse::auth::policy::check_password;
use gatehouse::domain::check_email;
use gatehouse::config::Passwords;
use gatehouse::domain::link::token_user;
use gatehouse::http::bodies::{
    Credentials, EmailAddress, EmailChange, LinkToken, PasswordChange, PasswordReset,
    RefreshBody,
};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static Passwords {
    static RULES: OnceLock<Passwords> = OnceLock::new();
    RULES.get_or_init(Passwords::default)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<Credentials>(data) {
        let _ = check_email(&body.email);
        let _ = check_password(&body.password, &body.email, rules());
    }
    if let Ok(body) = serde_json::from_slice::<RefreshBody>(data) {
        let _ = gatehouse::domain::session::refresh_token_session(&body.refresh_token);
    }
    if let Ok(body) = serde_json::from_slice::<PasswordChange>(data) {
        let _ = check_password(&body.new_password, &body.current_password, rules());
    }
    if let Ok(body) = serde_json::from_slice::<EmailAddress>(data) {
        let _ = check_email(&body.email);
    }
    if let Ok(body) = serde_json::from_slice::<PasswordReset>(data) {
        let _ = token_user(&body.token);
        let _ = check_password(&body.new_password, "", rules());
    }
    if let Ok(body) = serde_json::from_slice::<LinkToken>(data) {
        let _ = token_user(&body.token);
    }
    if let Ok(body) = serde_json::from_slice::<EmailChange>(data) {
        let _ = check_email(&body.new_email);
    }
    // The token as it arrives in a page's query or form, raw.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = token_user(text);
    }
});
