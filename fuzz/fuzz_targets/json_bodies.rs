//! The JSON request bodies of every endpoint (`gatehouse::http::bodies`), then the
//! email and password policy (length bounds and the zxcvbn estimate) on whatever parsed.
#![no_main]

use std::sync::OnceLock;

use gatehouse::auth::policy::check_password;
use gatehouse::domain::check_email;
use gatehouse::config::Passwords;
use gatehouse::http::bodies::{Credentials, PasswordChange, RefreshBody};
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
});
