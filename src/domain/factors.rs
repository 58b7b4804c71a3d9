//! Second factors (GD-0010): what an account holds (TOTP, passkeys, recovery codes) and how a
//! session was signed in ([`Amr`], RFC 8176). Nothing here checks a code: that is
//! `auth::factors`; this is the shape that is stored.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use webauthn_rs::prelude::Passkey;

/// The authentication methods of a sign-in (RFC 8176 `amr`): a set of four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amr(u8);

impl Amr {
    /// A password.
    pub const PWD: Amr = Amr(1);
    /// A one-time code: TOTP or a recovery code.
    pub const OTP: Amr = Amr(2);
    /// Proof of a hardware-bound (or synced) key: a passkey.
    pub const HWK: Amr = Amr(4);
    /// User verification on the authenticator (PIN or biometrics).
    pub const USER: Amr = Amr(8);
    /// A passkey with user verification.
    pub const PASSKEY: Amr = Amr(4 | 8);

    const NAMES: [(Amr, &'static str); 4] = [
        (Amr::PWD, "pwd"),
        (Amr::OTP, "otp"),
        (Amr::HWK, "hwk"),
        (Amr::USER, "user"),
    ];

    /// Both sets.
    pub fn with(self, other: Amr) -> Amr {
        Amr(self.0 | other.0)
    }

    pub fn contains(self, other: Amr) -> bool {
        self.0 & other.0 == other.0
    }

    /// The RFC 8176 values, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Amr::NAMES
            .iter()
            .filter(|(m, _)| self.contains(*m))
            .map(|(_, name)| *name)
            .collect()
    }

    /// Independent factors proven: something known (the password), something held (a TOTP
    /// device or a passkey; a recovery code stands in for the device), and the user
    /// verification that unlocks a passkey (a PIN or a biometric). A passkey with user
    /// verification is two factors by itself, as NIST SP 800-63B counts a multi-factor
    /// cryptographic authenticator.
    pub fn factors(self) -> u8 {
        u8::from(self.contains(Amr::PWD))
            + u8::from(self.contains(Amr::OTP) || self.contains(Amr::HWK))
            + u8::from(self.contains(Amr::USER))
    }

    /// What `policy = "two_factor"` asks for.
    pub fn is_two_factor(self) -> bool {
        self.factors() >= 2
    }

    /// The set as bits, for compact stored forms (the embedded store's session records).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set of `bits`; `None` when a bit names no method this version knows.
    pub fn from_bits(bits: u8) -> Option<Amr> {
        let known = Amr::NAMES.iter().fold(0, |all, (m, _)| all | m.0);
        (bits & !known == 0).then_some(Amr(bits))
    }

    /// A password alone: what sessions begun before second factors existed stand for.
    pub fn is_password_only(&self) -> bool {
        *self == Amr::PWD
    }
}

impl Default for Amr {
    /// Records and tokens without `amr` were signed in with a password.
    fn default() -> Self {
        Amr::PWD
    }
}

impl Serialize for Amr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amr {
    /// Unknown values are left out: a value this version does not know never counts as a
    /// factor it would accept.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Ok(Amr(Amr::NAMES
            .iter()
            .filter(|(_, name)| names.iter().any(|n| n == name))
            .fold(0, |bits, (m, _)| bits | m.0)))
    }
}

/// The second factors of an account, stored in its user record so that every change is one
/// compare-and-set write with the rest of the account (GD-0006): an accepted TOTP step, a used
/// recovery code or a passkey's counter can never be accepted twice, on any node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Factors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpFactor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passkeys: Vec<PasskeyFactor>,
    /// Hashes of the unused recovery codes (`auth::factors::recovery_hash`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
}

/// A confirmed TOTP authenticator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The secret, sealed under the factor key (`auth::factors::Sealer`): a copy of the
    /// database alone does not reveal it.
    pub secret: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The last time step accepted; every step at or before it is refused (no replay).
    pub last_step: u64,
}

/// A registered passkey.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeyFactor {
    /// The credential id, base64url: the id of `GET /auth/mfa` and of its removal.
    pub id: String,
    /// Named by the user ("laptop", "phone").
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The public key, counter and backup flags (webauthn-rs).
    pub passkey: Passkey,
}

impl Factors {
    /// Whether the account has a second factor (recovery codes alone are none: they come
    /// with the first factor and go with the last).
    pub fn any(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }

    /// Nothing stored at all (then the user record leaves the field out).
    pub fn is_unset(&self) -> bool {
        !self.any() && self.recovery.is_empty()
    }

    /// The `methods` of a login's second step, as the API names them.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push("totp");
        }
        if !self.passkeys.is_empty() {
            methods.push("passkey");
        }
        if !self.recovery.is_empty() {
            methods.push("recovery");
        }
        methods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_names_factors_and_old_records() {
        let pwd_otp = Amr::PWD.with(Amr::OTP);
        assert_eq!(pwd_otp.names(), ["pwd", "otp"]);
        assert_eq!(Amr::PASSKEY.names(), ["hwk", "user"]);
        assert!(pwd_otp.is_two_factor());
        assert!(Amr::PASSKEY.is_two_factor());
        assert!(!Amr::PWD.is_two_factor());
        assert!(
            !Amr::HWK.is_two_factor(),
            "a passkey without user verification"
        );
        assert!(!Amr::OTP.is_two_factor());
        assert_eq!(serde_json::to_string(&pwd_otp).unwrap(), r#"["pwd","otp"]"#);
        let read: Amr = serde_json::from_str(r#"["user","hwk","mfa","x"]"#).unwrap();
        assert_eq!(read, Amr::PASSKEY);
        assert_eq!(Amr::default(), Amr::PWD);
        assert!(serde_json::from_str::<Amr>("3").is_err());
    }

    #[test]
    fn recovery_codes_alone_are_no_factor() {
        let mut f = Factors::default();
        assert!(f.is_unset() && !f.any());
        f.recovery.push("h".into());
        assert!(!f.any() && !f.is_unset());
        assert_eq!(f.methods(), ["recovery"]);
    }
}
