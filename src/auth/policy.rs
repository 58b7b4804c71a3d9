//! What counts as an acceptable password. Violations are answered with 422 and a sentence
//! a person can act on. (Emails: [`crate::domain::email`].)

use crate::config::Passwords;

/// Most bytes in a password: bounds the work an attacker can make argon2 do.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Length bounds, then a zxcvbn strength estimate that also counts the email and its parts
/// as guessable words, so a password built from the email scores low.
pub fn check_password(password: &str, email: &str, rules: &Passwords) -> Result<(), String> {
    if password.chars().count() < rules.min_length {
        return Err(format!(
            "the password must be at least {} characters long",
            rules.min_length
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
        ));
    }
    if rules.min_score == 0 {
        return Ok(());
    }
    let email = email.to_lowercase();
    let mut inputs: Vec<&str> = vec![email.as_str()];
    if let Some((local, domain)) = email.split_once('@') {
        inputs.push(local);
        inputs.extend(
            local
                .split(|c: char| !c.is_alphanumeric())
                .filter(|p| p.len() > 2),
        );
        inputs.extend(domain.split('.').filter(|p| p.len() > 2));
    }
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    let score = u8::from(estimate.score());
    if score >= rules.min_score {
        return Ok(());
    }
    let mut why = format!(
        "the password is too easy to guess (strength {score} of 4, at least {} needed)",
        rules.min_score
    );
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            why.push_str(&format!(": {warning}"));
        }
        for suggestion in feedback.suggestions() {
            why.push_str(&format!(" {suggestion}"));
        }
    }
    if !why.ends_with('.') {
        why.push('.');
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let rules = Passwords::default();
        let email = "ada.lovelace@example.org";
        assert!(
            check_password("short", email, &rules)
                .unwrap_err()
                .contains("at least 8")
        );
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1), email, &rules).is_err());
        let weak = check_password("password123", email, &rules).unwrap_err();
        assert!(weak.contains("too easy to guess"), "{weak}");
        assert!(check_password("ada.lovelace@example.org", email, &rules).is_err());
        assert!(check_password("lovelace.ada!", email, &rules).is_err());
        assert!(check_password("correct horse battery staple", email, &rules).is_ok());
        assert!(check_password("tiny-plum-89-orbit", email, &rules).is_ok());
        let lax = Passwords {
            min_score: 0,
            ..Passwords::default()
        };
        assert!(check_password("password", email, &lax).is_ok());
    }
}
