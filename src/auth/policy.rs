//! What counts as a valid email and an acceptable password. Violations are answered with
//! 422 and a sentence a person can act on.

/// Fewest characters in a password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most bytes in a password: bounds the work an attacker can make argon2 do.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest email (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

pub fn check_email(email: &str) -> Result<(), String> {
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!(
            "the email is longer than {MAX_EMAIL_BYTES} characters"
        ));
    }
    if email != email.trim()
        || !email.contains('@')
        || !email_address::EmailAddress::is_valid(email)
    {
        return Err("the email is not a valid address like name@example.org".into());
    }
    let domain = email.rsplit('@').next().unwrap_or_default();
    if !domain.contains('.') && !domain.starts_with('[') {
        return Err("the email's domain must be a full domain like example.org".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(check_email("ada@example.org").is_ok());
        assert!(check_email("Ada.Lovelace+x@sub.example.org").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.org",
            "ada@localhost",
            " ada@x.org",
            "a b@x.org",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
