//! The mechanics of second factors (GD-0010), without storage: TOTP codes (RFC 6238 through
//! `totp-rs`), recovery codes, the key that seals TOTP secrets at rest (`sealing`), and the WebAuthn
//! relying party (`webauthn-rs`). The rules that use them (who may enrol, what a login needs)
//! are `service::factors`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::auth::sealing::Sealer;
use crate::config::Config;

/// TOTP per the contract: SHA-1, 6 digits, 30 s steps, one step of drift either way.
const TOTP_DIGITS: usize = 6;
const TOTP_STEP: u64 = 30;
const TOTP_SKEW: u16 = 1;
/// 160 bits, RFC 4226's recommendation (and the length of an HMAC-SHA-1 key block's digest).
const TOTP_SECRET_BYTES: usize = 20;

/// Recovery codes per set, and their shape: `xxxxx-xxxxx` from an alphabet without look-alikes
/// (no 0/o, 1/l/i): 10 characters of 5 bits, 50 bits each.
pub(crate) const RECOVERY_CODES: usize = 10;
const RECOVERY_ALPHABET: &[u8; 32] = b"23456789abcdefghjkmnpqrstuvwxyz+";
const RECOVERY_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum FactorKeyError {
    #[error("cannot read or write the second-factor key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the second-factor key file {0} must hold keys of 64 hex digits (256 bits), one per line"
    )]
    Malformed(PathBuf),
    #[error("cannot gather randomness: {0}")]
    Random(String),
    #[error("invalid WebAuthn settings: {0}")]
    Webauthn(String),
}

/// What the service needs of second factors, built once at start-up.
pub struct FactorRules {
    pub sealer: Sealer,
    /// `None` without `public_url`: passkeys are off.
    pub webauthn: Option<Webauthn>,
    /// `mfa.required`
    pub required: bool,
    /// The issuer named in `otpauth://` URIs (`webauthn.rp_name`).
    pub issuer: String,
}

impl FactorRules {
    /// From the configuration and the loaded sealing key.
    pub fn new(config: &Config, sealer: Sealer) -> Result<FactorRules, FactorKeyError> {
        Ok(FactorRules {
            sealer,
            webauthn: relying_party(config)?,
            required: config.mfa.required,
            issuer: config.webauthn.rp_name.clone(),
        })
    }
}

/// Where the sealing key came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FactorKeySource {
    Configured(PathBuf),
    DataDir(PathBuf),
    Generated(PathBuf),
}

const KEY_FILE: &str = "mfa_key";

/// The key that seals TOTP secrets at rest ([`Sealer`], the user id as associated data, so
/// that a sealed secret copied into another account does not open there). It is kept outside
/// the database, so a copy of the database (a backup, a Redis dump) alone does not reveal
/// them: `mfa.key_file`, else `$CREDENTIALS_DIRECTORY/mfa_key`, else `<data_dir>/mfa_key`,
/// generated (mode 0600) when absent.
pub(crate) fn load_factor_key(
    key_file: Option<&Path>,
    credentials_dir: Option<&Path>,
    data_dir: &Path,
) -> Result<(Sealer, FactorKeySource), FactorKeyError> {
    let credential = credentials_dir
        .map(|dir| dir.join(KEY_FILE))
        .filter(|p| p.is_file());
    if let Some(path) = key_file.map(Path::to_owned).or(credential) {
        return Ok((read_factor_key(&path)?, FactorKeySource::Configured(path)));
    }
    let path = data_dir.join(KEY_FILE);
    match read_factor_key(&path) {
        Ok(sealer) => Ok((sealer, FactorKeySource::DataDir(path))),
        Err(FactorKeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| FactorKeyError::Random(e.to_string()))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            crate::files::write_private(&path, format!("{hex}\n").as_bytes()).map_err(
                |source| FactorKeyError::Io {
                    path: path.clone(),
                    source,
                },
            )?;
            Ok((Sealer::from_keys(&[raw]), FactorKeySource::Generated(path)))
        }
        Err(e) => Err(e),
    }
}

fn read_factor_key(path: &Path) -> Result<Sealer, FactorKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactorKeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let malformed = || FactorKeyError::Malformed(path.to_owned());
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let bytes = (0..line.len())
                .step_by(2)
                .map(|i| {
                    line.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(malformed)?;
            <[u8; 32]>::try_from(bytes).map_err(|_| malformed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(malformed());
    }
    Ok(Sealer::from_keys(&keys))
}

/// A new TOTP secret.
pub(crate) fn new_totp_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut secret = vec![0u8; TOTP_SECRET_BYTES];
    getrandom::fill(&mut secret)?;
    Ok(secret)
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS as u8)
        .with_skew(TOTP_SKEW)
        .with_step_duration(TOTP_STEP)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .ok()
}

/// The secret in base32 (what people type) and the `otpauth://` URI (what the QR code holds).
pub(crate) fn totp_enrolment(
    secret: &[u8],
    issuer: &str,
    account: &str,
) -> Option<(String, String)> {
    let totp = totp(secret, issuer, account)?;
    Some((totp.secret().to_base32(), totp.to_url().ok()?))
}

/// A TOTP code as typed: six digits, spaces allowed between them.
pub(crate) fn totp_code(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| *c != ' ').collect();
    (digits.len() == TOTP_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The time step a code is valid for at `now` (the step before, the current or the next), in
/// constant time per step (`totp-rs`); `None` when it is not.
pub(crate) fn check_totp(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code = totp_code(code)?;
    totp(secret, "gatehouse", "user")?.check(&code, now)
}

/// A recovery code as typed, normalised: lower case, without the dash and spaces; `None`
/// when its length or alphabet can never be one of ours.
pub(crate) fn recovery_code(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_CHARS && code.bytes().all(|b| RECOVERY_ALPHABET[..31].contains(&b)))
        .then_some(code)
}

/// The stored form of a recovery code. A fast hash is enough: each code has 50 random bits
/// and is tried under regulation, so there is nothing for a slow hash to protect against (a
/// password's hash slows the guessing of low-entropy secrets); the user id salts it.
pub(crate) fn recovery_hash(user: Uuid, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"gatehouse recovery code\0");
    h.update(user.as_bytes());
    h.update(code.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether `hash` is one of `hashes`, comparing every one in constant time.
pub(crate) fn position_of(hashes: &[String], hash: &str) -> Option<usize> {
    let mut found = None;
    for (i, h) in hashes.iter().enumerate() {
        if bool::from(h.as_bytes().ct_eq(hash.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

/// A new set of recovery codes for `user`: the codes to show once, and their hashes to store.
pub(crate) fn new_recovery_codes(
    user: Uuid,
) -> Result<(Vec<String>, Vec<String>), getrandom::Error> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; RECOVERY_CHARS];
        getrandom::fill(&mut raw)?;
        // 31 symbols (the alphabet less '+'): rejection keeps every symbol equally likely.
        let mut code = String::with_capacity(RECOVERY_CHARS);
        let mut i = 0;
        while code.len() < RECOVERY_CHARS {
            if i == raw.len() {
                getrandom::fill(&mut raw)?;
                i = 0;
            }
            let b = raw[i] & 31;
            i += 1;
            if b < 31 {
                code.push(RECOVERY_ALPHABET[usize::from(b)] as char);
            }
        }
        hashes.push(recovery_hash(user, &code));
        codes.push(format!("{}-{}", &code[..5], &code[5..]));
    }
    Ok((codes, hashes))
}

/// The WebAuthn relying party: id from `webauthn.rp_id` (default: the host of `public_url`),
/// origin from `public_url`, name from `webauthn.rp_name`. `None` without `public_url`: a
/// ceremony is bound to one origin, and gatehouse only knows its own from `public_url`.
fn relying_party(config: &Config) -> Result<Option<Webauthn>, FactorKeyError> {
    let Some(public_url) = &config.public_url else {
        return Ok(None);
    };
    let Some(rp_id) = config.webauthn.effective_rp_id(Some(public_url)) else {
        return Ok(None);
    };
    // Browsers take only a domain as a relying party id: under a `public_url` that names an
    // IP address (a lab, a test) passkeys are off, and TOTP still works.
    if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') && rp_id.ends_with(']') {
        tracing::warn!(
            rp_id = %rp_id,
            "public_url names an IP address, which cannot be a WebAuthn relying party id: passkeys are off (use a host name)"
        );
        return Ok(None);
    }
    let mut origin = public_url.clone();
    origin.set_path("");
    origin.set_query(None);
    let webauthn = WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&config.webauthn.rp_name).build())
        .map_err(|e| FactorKeyError::Webauthn(e.to_string()))?;
    Ok(Some(webauthn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_generated_once_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let (a, source) = load_factor_key(None, None, dir.path()).unwrap();
        assert!(matches!(source, FactorKeySource::Generated(_)));
        let (b, source) = load_factor_key(None, None, dir.path()).unwrap();
        assert!(matches!(source, FactorKeySource::DataDir(_)));
        let user = Uuid::now_v7();
        let sealed = a.seal(user.as_bytes(), b"s").unwrap();
        assert_eq!(b.open(user.as_bytes(), &sealed).unwrap(), b"s");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "abcd\n").unwrap();
        assert!(matches!(
            load_factor_key(Some(&bad), None, dir.path()),
            Err(FactorKeyError::Malformed(_))
        ));
    }

    #[test]
    fn totp_codes_of_the_rfc_and_their_window() {
        // RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 are the 6-digit code).
        let secret = b"12345678901234567890";
        assert_eq!(check_totp(secret, "287082", 59), Some(1));
        assert_eq!(
            check_totp(secret, "287082", 59 + 30),
            Some(1),
            "one step late"
        );
        assert_eq!(
            check_totp(secret, "287082", 59 + 60),
            None,
            "two steps late"
        );
        assert_eq!(check_totp(secret, "081804", 1111111109), Some(37037036));
        assert_eq!(check_totp(secret, "081 804", 1111111109), Some(37037036));
        for bad in ["", "08180", "0818044", "08180a", "０８１８０４", "-81804"] {
            assert_eq!(check_totp(secret, bad, 1111111109), None, "{bad}");
        }
        let (b32, uri) = totp_enrolment(secret, "My: Site", "ada@x.org").unwrap();
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
    }

    #[test]
    fn recovery_codes_are_random_well_formed_and_hashed() {
        let user = Uuid::now_v7();
        let (codes, hashes) = new_recovery_codes(user).unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for (code, hash) in codes.iter().zip(&hashes) {
            let normal = recovery_code(code).unwrap();
            assert_eq!(&recovery_hash(user, &normal), hash);
            assert_eq!(recovery_code(&code.to_uppercase()).unwrap(), normal);
        }
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert_eq!(position_of(&hashes, &hashes[3]), Some(3));
        assert_eq!(position_of(&hashes, "nope"), None);
        for bad in [
            "",
            "abcde-fghj",
            "abcde-fghjkm",
            "0bcde-fghjk",
            "abcde_fghjk",
            "ébcde-fghjk",
        ] {
            assert!(recovery_code(bad).is_none(), "{bad}");
        }
    }
}
