//! Second factors (GD-0010): enrolment and removal (TOTP, passkeys, recovery codes), the
//! second step of a login, signing in with a passkey, the step-up of a session, and the
//! administrator's reset.
//!
//! Every change to an account's factors is one compare-and-set write of its user record
//! ([`Service::modify_user`]): an accepted TOTP step, a used recovery code and a passkey's
//! counter are decided against the freshest record, so a code accepted on one node is refused
//! on every other. State between two requests (a login waiting for its second factor, a
//! WebAuthn ceremony, a TOTP secret awaiting confirmation) lives in the session store with a
//! short TTL and is taken once ([`Service::take`]). Enrolment changes end no session; each
//! is an audit event.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential,
};

use super::stats::LoginResult;
use super::{AuthError, ClientInfo, Issued, MAX_WRITE_ATTEMPTS, Service, decode};
use crate::audit::{self, Actor, Event, Kind};
use crate::auth::factors::{self as mechanics};
use crate::auth::regulation;
use crate::auth::tokens::AccessClaims;
use crate::clock::now_secs;
use crate::domain::User;
use crate::domain::factors::{Amr, Factors, PasskeyFactor, TotpFactor};
use crate::domain::session::{self, SessionRecord, encode};
use crate::mail::Notice;
use crate::store::{Op, StoreError, Swap, keys};

/// Seconds an `mfa_token` (a login waiting for its second factor) lives.
pub(crate) const MFA_TOKEN_TTL: u64 = 300;
/// Seconds between a WebAuthn ceremony's options and its answer.
const CEREMONY_TTL: u64 = 300;
/// Seconds a new TOTP secret waits for its confirming code.
const TOTP_PENDING_TTL: u64 = 600;
/// Passkeys one account may hold (each is a few hundred bytes of its user record).
pub(crate) const MAX_PASSKEYS: usize = 20;
/// Longest passkey name, in characters.
pub(crate) const MAX_PASSKEY_NAME: usize = 64;

/// What a right password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session: the account has no second factor.
    Signed(Box<User>, Issued),
    /// The account has a second factor: the login goes on with [`Service::login_second_factor`]
    /// or a passkey.
    SecondFactor(SecondStep),
}

/// The second step of a login: a single-use token, and the methods that may complete it.
#[derive(Debug, Clone)]
pub struct SecondStep {
    pub mfa_token: String,
    pub methods: Vec<&'static str>,
}

/// A code that completes a login's second step or a step-up.
#[derive(Debug, Clone, Copy)]
pub enum Code<'a> {
    Totp(&'a str),
    Recovery(&'a str),
}

impl<'a> Code<'a> {
    /// The method named in the API (`totp`, `recovery`) with its code; `None` for any other.
    pub fn named(method: &str, code: &'a str) -> Option<Code<'a>> {
        match method {
            "totp" => Some(Code::Totp(code)),
            "recovery" => Some(Code::Recovery(code)),
            _ => None,
        }
    }

    /// What a person typed into one `code` field: six digits are a TOTP code, anything else
    /// is taken for a recovery code.
    pub fn typed(code: &'a str) -> Code<'a> {
        match mechanics::totp_code(code) {
            Some(_) => Code::Totp(code),
            None => Code::Recovery(code),
        }
    }
}

/// `GET /auth/mfa`
#[derive(Debug, Clone)]
pub struct MfaStatus {
    pub totp: bool,
    pub passkeys: Vec<PasskeyInfo>,
    pub recovery_codes_left: usize,
}

/// A passkey as listed.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: u64,
}

/// A WebAuthn ceremony handed to the browser: its id, and the options for
/// `navigator.credentials.create()`/`get()` (`{"publicKey": …}`).
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub id: String,
    pub options: serde_json::Value,
}

/// A new TOTP secret, pending until a code confirms it.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// Base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, for the QR code.
    pub otpauth_uri: String,
}

/// `mfa_login:<hash>`: whose login waits, under which credentials.
#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    uid: Uuid,
    /// The user's `credential_version` when the password was checked: a reset or password
    /// change in between ends the login (GD-0006).
    cv: u64,
}

/// `webauthn:<id>`: the state of a ceremony (webauthn-rs' own, with its challenge).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CeremonyState {
    /// Adding a passkey to the account of session `sid`.
    Register {
        uid: Uuid,
        sid: String,
        name: String,
        state: PasskeyRegistration,
    },
    /// A passkey as the second step of the login whose `mfa_token` hashes to `ticket`.
    SecondStep {
        uid: Uuid,
        ticket: String,
        state: PasskeyAuthentication,
    },
    /// A discoverable passkey signing in alone.
    Discoverable { state: DiscoverableAuthentication },
}

impl Service {
    /// Whether passkeys are on (`public_url` is set).
    pub fn passkeys_enabled(&self) -> bool {
        self.factors.webauthn.is_some()
    }

    /// The WebAuthn relying party, or [`AuthError::PasskeysUnavailable`] without `public_url`.
    fn relying_party(&self) -> Result<&Webauthn, AuthError> {
        self.factors
            .webauthn
            .as_ref()
            .ok_or(AuthError::PasskeysUnavailable)
    }

    /// Takes the value at `key` once: of concurrent takers on any node exactly one gets it
    /// (a compare-and-set that deletes it).
    async fn take(&self, key: &str) -> Result<Option<bytes::Bytes>, AuthError> {
        let Some(value) = self.store.get(key).await? else {
            return Ok(None);
        };
        let swap = Swap {
            key: key.to_owned(),
            expected: Some(value.clone()),
            value: value.to_vec(),
            ttl: Duration::from_secs(1),
        };
        let delete = vec![Op::Delete {
            key: key.to_owned(),
        }];
        Ok(self
            .store
            .swap_then_apply(swap, delete)
            .await?
            .then_some(value))
    }

    /// `GET /auth/mfa`
    pub async fn mfa_status(&self, claims: &AccessClaims) -> Result<MfaStatus, AuthError> {
        let user = self.user(claims).await?;
        Ok(MfaStatus {
            totp: user.factors.totp.is_some(),
            passkeys: user.factors.passkeys.iter().map(info).collect(),
            recovery_codes_left: user.factors.recovery.len(),
        })
    }

    // --- TOTP ---

    /// `POST /auth/mfa/totp`: a new secret, pending until [`Service::totp_confirm`]. A
    /// confirmed authenticator stays in force until then (confirming replaces it).
    pub async fn totp_begin(
        &self,
        claims: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TotpEnrolment, AuthError> {
        let user = self.user(claims).await?;
        self.check_current_password(&user, password, client).await?;
        let secret =
            mechanics::new_totp_secret().map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = self.seal(user.id, &secret)?;
        let (b32, uri) = mechanics::totp_enrolment(&secret, &self.factors.issuer, &user.email)
            .ok_or_else(|| AuthError::Internal("cannot build the TOTP URI".into()))?;
        self.store
            .apply(vec![Op::set(
                keys::totp_pending(&user.id.to_string()),
                sealed.into_bytes(),
                Duration::from_secs(TOTP_PENDING_TTL),
            )])
            .await?;
        Ok(TotpEnrolment {
            secret: b32,
            otpauth_uri: uri,
        })
    }

    /// The base32 secret and `otpauth://` URI of the pending enrolment (the account page shows
    /// them again until confirmed); `None` when none is pending.
    pub async fn totp_pending(&self, user: &User) -> Result<Option<TotpEnrolment>, AuthError> {
        let Some(sealed) = self
            .store
            .get(&keys::totp_pending(&user.id.to_string()))
            .await?
        else {
            return Ok(None);
        };
        let secret = self.open(user.id, &sealed)?;
        Ok(
            mechanics::totp_enrolment(&secret, &self.factors.issuer, &user.email).map(
                |(secret, otpauth_uri)| TotpEnrolment {
                    secret,
                    otpauth_uri,
                },
            ),
        )
    }

    /// `POST /auth/mfa/totp/confirm`: a code of the pending secret makes it the account's TOTP
    /// authenticator. Returns the recovery codes when this is the first second factor (empty
    /// when codes exist already). The code is used up like any other, and the caller's session
    /// now counts as signed in with it.
    pub async fn totp_confirm(
        &self,
        claims: &AccessClaims,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.user(claims).await?;
        let pending = keys::totp_pending(&user.id.to_string());
        let Some(sealed) = self.store.get(&pending).await? else {
            return Err(AuthError::NoPendingEnrolment);
        };
        let secret = self.open(user.id, &sealed)?;
        let step = mechanics::check_totp(&secret, code, now_secs()).ok_or(AuthError::WrongCode)?;
        let sealed = String::from_utf8_lossy(&sealed).into_owned();
        let mut codes = Vec::new();
        let (fresh, hashes) = mechanics::new_recovery_codes(user.id)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        self.modify_user(user.id, |u| {
            codes.clear();
            if u.factors.recovery.is_empty() {
                u.factors.recovery = hashes.clone();
                codes = fresh.clone();
            }
            u.factors.totp = Some(TotpFactor {
                secret: sealed.clone(),
                created_at: now_secs(),
                last_step: step,
            });
            Ok(())
        })
        .await?;
        self.store.apply(vec![Op::Delete { key: pending }]).await?;
        audit::record(Event::new(Kind::TotpEnabled, user.id, Actor::User));
        let method = "TOTP".to_owned();
        self.notify(&user, Notice::SecondFactorAdded { method })
            .await;
        if !codes.is_empty() {
            audit::record(Event::new(
                Kind::RecoveryCodesGenerated,
                user.id,
                Actor::User,
            ));
        }
        self.raise_session(&claims.sid, user.id, Amr::OTP).await?;
        Ok(codes)
    }

    /// `DELETE /auth/mfa/totp`
    pub async fn totp_remove(
        &self,
        claims: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.user(claims).await?;
        self.check_current_password(&user, password, client).await?;
        self.modify_user(user.id, |u| {
            if u.factors.totp.take().is_none() {
                return Err(AuthError::FactorNotFound);
            }
            forget_codes_without_factor(&mut u.factors);
            Ok(())
        })
        .await?;
        audit::record(Event::new(Kind::TotpRemoved, user.id, Actor::User));
        let method = "TOTP".to_owned();
        self.notify(&user, Notice::SecondFactorRemoved { method })
            .await;
        Ok(())
    }

    /// `POST /auth/mfa/recovery-codes`: a new set; the old codes are dead.
    pub async fn regenerate_recovery_codes(
        &self,
        claims: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let user = self.user(claims).await?;
        self.check_current_password(&user, password, client).await?;
        let (codes, hashes) = mechanics::new_recovery_codes(user.id)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        self.modify_user(user.id, |u| {
            if !u.factors.any() {
                return Err(AuthError::NoSecondFactor);
            }
            u.factors.recovery = hashes.clone();
            Ok(())
        })
        .await?;
        audit::record(Event::new(
            Kind::RecoveryCodesGenerated,
            user.id,
            Actor::User,
        ));
        Ok(codes)
    }

    // --- passkeys ---

    /// Starts adding a passkey named `name`: the options for `navigator.credentials.create()`.
    /// The passkey is discoverable (it can sign in alone) and verifies its user.
    pub async fn passkey_register_begin(
        &self,
        claims: &AccessClaims,
        name: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Ceremony, AuthError> {
        let webauthn = self.relying_party()?;
        let name = passkey_name(name)?;
        let user = self.user(claims).await?;
        self.check_current_password(&user, password, client).await?;
        if user.factors.passkeys.len() >= MAX_PASSKEYS {
            return Err(AuthError::InvalidInput(format!(
                "an account holds at most {MAX_PASSKEYS} passkeys; remove one first"
            )));
        }
        let exclude = user
            .factors
            .passkeys
            .iter()
            .map(|p| p.passkey.cred_id().clone())
            .collect();
        let (options, state) = webauthn
            .start_passkey_registration(user.id, &user.email, &user.email, Some(exclude))
            .map_err(|e| AuthError::Internal(format!("WebAuthn registration options: {e}")))?;
        let mut options =
            serde_json::to_value(&options).map_err(|e| AuthError::Internal(e.to_string()))?;
        // A passkey that signs in alone must be discoverable: ask for a resident credential
        // (webauthn-rs discourages one by default, leaving it to security-key flows).
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|v| v.as_object_mut())
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        let state = CeremonyState::Register {
            uid: user.id,
            sid: claims.sid.clone(),
            name,
            state,
        };
        self.ceremony(state, options).await
    }

    /// Finishes adding a passkey. Returns it, and the recovery codes when it is the first
    /// second factor.
    pub async fn passkey_register_finish(
        &self,
        claims: &AccessClaims,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<(PasskeyInfo, Vec<String>), AuthError> {
        let webauthn = self.relying_party()?;
        let (uid, sid, name, state) = match self.take_ceremony(ceremony).await? {
            Some(CeremonyState::Register {
                uid,
                sid,
                name,
                state,
            }) if uid == claims.sub && sid == claims.sid => (uid, sid, name, state),
            _ => {
                return Err(AuthError::PasskeyRefused(
                    "the passkey registration is unknown, expired or already finished; start again"
                        .into(),
                ));
            }
        };
        let passkey = webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(|e| AuthError::PasskeyRefused(format!("the passkey was refused: {e}")))?;
        let id = credential_id(passkey.cred_id());
        let (fresh, hashes) =
            mechanics::new_recovery_codes(uid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let mut codes = Vec::new();
        let added = PasskeyFactor {
            id: id.clone(),
            name: name.clone(),
            created_at: now_secs(),
            passkey,
        };
        let stored = self
            .modify_user(uid, |u| {
                codes.clear();
                if u.factors.passkeys.iter().any(|p| p.id == id) {
                    return Err(AuthError::PasskeyRefused(
                        "this passkey is registered already".into(),
                    ));
                }
                if u.factors.passkeys.len() >= MAX_PASSKEYS {
                    return Err(AuthError::InvalidInput(format!(
                        "an account holds at most {MAX_PASSKEYS} passkeys; remove one first"
                    )));
                }
                if u.factors.recovery.is_empty() && !u.factors.any() {
                    u.factors.recovery = hashes.clone();
                    codes = fresh.clone();
                }
                u.factors.passkeys.push(added.clone());
                Ok(())
            })
            .await?;
        audit::record(Event::new(Kind::PasskeyAdded, uid, Actor::User).detail(&name));
        let method = "passkey".to_owned();
        self.notify(&stored, Notice::SecondFactorAdded { method })
            .await;
        if !codes.is_empty() {
            audit::record(Event::new(Kind::RecoveryCodesGenerated, uid, Actor::User));
        }
        // Registering verified the user on the authenticator: the session holds a passkey now.
        self.raise_session(&sid, uid, Amr::PASSKEY).await?;
        Ok((info(&added), codes))
    }

    /// Removes the passkey with credential id `id`.
    pub async fn passkey_remove(
        &self,
        claims: &AccessClaims,
        id: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.user(claims).await?;
        if !user.factors.passkeys.iter().any(|p| p.id == id) {
            return Err(AuthError::FactorNotFound);
        }
        self.check_current_password(&user, password, client).await?;
        let mut name = String::new();
        self.modify_user(user.id, |u| {
            let Some(at) = u.factors.passkeys.iter().position(|p| p.id == id) else {
                return Err(AuthError::FactorNotFound);
            };
            name = u.factors.passkeys.remove(at).name;
            forget_codes_without_factor(&mut u.factors);
            Ok(())
        })
        .await?;
        audit::record(Event::new(Kind::PasskeyRemoved, user.id, Actor::User).detail(name));
        let method = "passkey".to_owned();
        self.notify(&user, Notice::SecondFactorRemoved { method })
            .await;
        Ok(())
    }

    /// The options to sign in with a passkey: with `mfa_token`, the second step of that login
    /// (the account's passkeys); without, a discoverable passkey alone.
    pub async fn passkey_login_begin(
        &self,
        mfa_token: Option<&str>,
    ) -> Result<Ceremony, AuthError> {
        let webauthn = self.relying_party()?;
        let (options, state) = match mfa_token {
            Some(token) => {
                let (ticket, user) = self.ticket(token).await?;
                let passkeys: Vec<_> = user
                    .factors
                    .passkeys
                    .iter()
                    .map(|p| p.passkey.clone())
                    .collect();
                if passkeys.is_empty() {
                    return Err(AuthError::InvalidSecondFactor(
                        "this account has no passkey; use another method",
                    ));
                }
                let (options, state) = webauthn
                    .start_passkey_authentication(&passkeys)
                    .map_err(|e| AuthError::Internal(format!("WebAuthn options: {e}")))?;
                let options = serde_json::to_value(&options)
                    .map_err(|e| AuthError::Internal(e.to_string()))?;
                let state = CeremonyState::SecondStep {
                    uid: user.id,
                    ticket,
                    state,
                };
                (options, state)
            }
            None => {
                let (options, state) = webauthn
                    .start_discoverable_authentication()
                    .map_err(|e| AuthError::Internal(format!("WebAuthn options: {e}")))?;
                let mut options = serde_json::to_value(&options)
                    .map_err(|e| AuthError::Internal(e.to_string()))?;
                // webauthn-rs asks for conditional mediation (autofill); the page asks at the
                // press of a button instead, which every browser supports.
                if let Some(o) = options.as_object_mut() {
                    o.remove("mediation");
                }
                (options, CeremonyState::Discoverable { state })
            }
        };
        self.ceremony(state, options).await
    }

    /// Signs in with a passkey's answer to ceremony `ceremony`: a new session whose `amr` is
    /// `hwk`+`user` (and `pwd` after a password, as the second step of `mfa_token`'s login).
    pub async fn passkey_login_finish(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        mfa_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(User, Issued), AuthError> {
        const REFUSED: &str = "the passkey was not accepted";
        let webauthn = self.relying_party()?;
        let state = self
            .take_ceremony(ceremony)
            .await?
            .ok_or(AuthError::InvalidSecondFactor(
                "the passkey sign-in is unknown, expired or already used; start again",
            ))?;
        let (user, result, amr, ticket) = match state {
            CeremonyState::Discoverable { state } => {
                let (uid, cred_id) = webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(|_| AuthError::InvalidSecondFactor(REFUSED))?;
                let user = match self.users.by_id(uid).await? {
                    Some(user) if !user.disabled => user,
                    _ => return Err(AuthError::InvalidSecondFactor(REFUSED)),
                };
                let id = credential_id(cred_id);
                let passkey = user
                    .factors
                    .passkeys
                    .iter()
                    .find(|p| p.id == id)
                    .ok_or(AuthError::InvalidSecondFactor(REFUSED))?;
                let result = webauthn
                    .finish_discoverable_authentication_v2(credential, state, &passkey.passkey)
                    .map_err(|e| refused(&e))?;
                (user, result, Amr::PASSKEY, None)
            }
            CeremonyState::SecondStep { uid, ticket, state } => {
                let token = mfa_token.ok_or(AuthError::InvalidMfaToken)?;
                if session::token_hash(token) != ticket {
                    return Err(AuthError::InvalidMfaToken);
                }
                let (_, user) = self.ticket(token).await?;
                if user.id != uid {
                    return Err(AuthError::InvalidMfaToken);
                }
                let result = webauthn
                    .finish_passkey_authentication(credential, &state)
                    .map_err(|e| refused(&e))?;
                (user, result, Amr::PWD.with(Amr::PASSKEY), Some(ticket))
            }
            CeremonyState::Register { .. } => return Err(AuthError::InvalidSecondFactor(REFUSED)),
        };
        if !result.user_verified() {
            return Err(AuthError::InvalidSecondFactor(
                "the passkey did not verify its user (PIN or biometrics)",
            ));
        }
        if let Some(ticket) = ticket {
            // The login's token is used up by its successful second step.
            if self.take(&keys::mfa_login(&ticket)).await?.is_none() {
                return Err(AuthError::InvalidMfaToken);
            }
        }
        let user = self.record_passkey_use(&user, &result).await?;
        self.signed_in(&user, client, amr).await
    }

    /// Stores a passkey's new counter and backup state. A counter that another node stored
    /// meanwhile at or above this one is a cloned authenticator: refused.
    async fn record_passkey_use(
        &self,
        user: &User,
        result: &AuthenticationResult,
    ) -> Result<User, AuthError> {
        if !result.needs_update() {
            return Ok(user.clone());
        }
        let id = credential_id(result.cred_id());
        self.modify_user(user.id, |u| {
            let passkey = u
                .factors
                .passkeys
                .iter_mut()
                .find(|p| p.id == id)
                .ok_or(AuthError::InvalidSecondFactor("the passkey was removed"))?;
            if result.counter() > 0 && result.counter() <= stored_counter(&passkey.passkey) {
                return Err(AuthError::InvalidSecondFactor(
                    "the passkey's signature counter did not move forward: it may have been cloned",
                ));
            }
            passkey.passkey.update_credential(result);
            Ok(())
        })
        .await
    }

    // --- logins and step-up ---

    /// A login whose password was right, for an account with a second factor: the ticket
    /// (`mfa_token`) for its second step.
    pub(super) async fn second_step(&self, user: &User) -> Result<SecondStep, AuthError> {
        let mfa_token = random_token()?;
        let ticket = Ticket {
            uid: user.id,
            cv: user.credential_version,
        };
        self.store
            .apply(vec![Op::set(
                keys::mfa_login(&session::token_hash(&mfa_token)),
                encode(&ticket),
                Duration::from_secs(MFA_TOKEN_TTL),
            )])
            .await?;
        tracing::info!(event = "login_second_factor_required", user_id = %user.id);
        Ok(SecondStep {
            mfa_token,
            methods: user.factors.methods(),
        })
    }

    /// The live ticket of `mfa_token` (its hash) and its user, who must still hold the
    /// credentials the password was checked under.
    async fn ticket(&self, mfa_token: &str) -> Result<(String, User), AuthError> {
        if mfa_token.len() != 43 {
            return Err(AuthError::InvalidMfaToken);
        }
        let hash = session::token_hash(mfa_token);
        let Some(bytes) = self.store.get(&keys::mfa_login(&hash)).await? else {
            return Err(AuthError::InvalidMfaToken);
        };
        let ticket: Ticket = decode(&bytes)?;
        match self.users.by_id(ticket.uid).await? {
            Some(user) if !user.disabled && user.credential_version == ticket.cv => {
                Ok((hash, user))
            }
            _ => Err(AuthError::InvalidMfaToken),
        }
    }

    /// `POST /auth/login/second-factor`: completes a login with a TOTP or recovery code.
    pub async fn login_second_factor(
        &self,
        mfa_token: &str,
        code: Code<'_>,
        client: &ClientInfo,
    ) -> Result<(User, Issued), AuthError> {
        let (ticket, user) = self.ticket(mfa_token).await?;
        let user = self.accept_code(&user, code, client).await?;
        if self.take(&keys::mfa_login(&ticket)).await?.is_none() {
            return Err(AuthError::InvalidMfaToken);
        }
        self.signed_in(&user, client, Amr::PWD.with(Amr::OTP)).await
    }

    /// A step-up: the caller's session, signed in with one factor, proves a second one with a
    /// code. Returns an access token that says so; every other token of the session counts
    /// as two-factor too from now on (the record holds `amr`).
    pub async fn step_up(
        &self,
        claims: &AccessClaims,
        code: Code<'_>,
        client: &ClientInfo,
    ) -> Result<String, AuthError> {
        let user = self.user(claims).await?;
        if !user.factors.any() {
            return Err(AuthError::NoSecondFactor);
        }
        let user = self.accept_code(&user, code, client).await?;
        let amr = self.raise_session(&claims.sid, user.id, Amr::OTP).await?;
        tracing::info!(event = "step_up", user_id = %user.id);
        self.sign_access(&user, &claims.sid, amr)
    }

    /// An access token for the caller's session as it is now (after an enrolment changed
    /// what the session may do).
    pub async fn reissue_access(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let user = self.user(claims).await?;
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Err(AuthError::SessionEnded);
        };
        let record: SessionRecord = decode(&bytes)?;
        self.sign_access(&user, &claims.sid, record.amr)
    }

    /// Checks a TOTP or recovery code of `user` under regulation and uses it up; returns the
    /// user as stored after. A wrong, replayed or malformed code counts as a failed attempt.
    async fn accept_code(
        &self,
        user: &User,
        code: Code<'_>,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        const WRONG: &str = "the code is wrong, expired or already used";
        // A code of the wrong length or alphabet can never be right: refused without counting
        // (it is no guess at a secret), so a typo costs no attempt.
        let well_formed = match code {
            Code::Totp(code) => mechanics::totp_code(code).is_some(),
            Code::Recovery(code) => mechanics::recovery_code(code).is_some(),
        };
        if !well_formed {
            return Err(AuthError::InvalidSecondFactor(
                "the code has the wrong length or characters: a TOTP code is 6 digits, a recovery code 10 letters and digits",
            ));
        }
        let attempt = self
            .reserve(
                regulation::subjects(Some(&user.email), client.ip.as_deref()),
                "second_factor",
            )
            .await?;
        let accepted = match code {
            Code::Totp(code) => match &user.factors.totp {
                Some(totp) => {
                    let secret = self.open(user.id, totp.secret.as_bytes());
                    let secret = match secret {
                        Ok(secret) => secret,
                        Err(e) => {
                            self.regulation.withdraw(attempt).await?;
                            return Err(e);
                        }
                    };
                    let sealed = totp.secret.clone();
                    match mechanics::check_totp(&secret, code, now_secs()) {
                        Some(step) => self
                            .modify_user(user.id, |u| match &mut u.factors.totp {
                                Some(t) if t.secret == sealed && step > t.last_step => {
                                    t.last_step = step;
                                    Ok(())
                                }
                                _ => Err(AuthError::InvalidSecondFactor(WRONG)),
                            })
                            .await
                            .map(Some),
                        None => Ok(None),
                    }
                }
                None => Ok(None),
            },
            Code::Recovery(code) => match mechanics::recovery_code(code) {
                Some(normal) => {
                    let hash = mechanics::recovery_hash(user.id, &normal);
                    self.modify_user(user.id, |u| {
                        match mechanics::position_of(&u.factors.recovery, &hash) {
                            Some(at) => {
                                u.factors.recovery.remove(at);
                                Ok(())
                            }
                            None => Err(AuthError::InvalidSecondFactor(WRONG)),
                        }
                    })
                    .await
                    .map(Some)
                }
                None => Ok(None),
            },
        };
        match accepted {
            Ok(Some(user)) => {
                self.regulation.succeeded(attempt).await?;
                Ok(user)
            }
            Ok(None) | Err(AuthError::InvalidSecondFactor(_)) => {
                tracing::info!(event = "second_factor_failed", user_id = %user.id, ip = client.ip.as_deref().unwrap_or("-"));
                self.regulation.failed(attempt).await?;
                Err(AuthError::InvalidSecondFactor(WRONG))
            }
            Err(e) => {
                self.regulation.withdraw(attempt).await?;
                Err(e)
            }
        }
    }

    /// A new session after a complete sign-in.
    async fn signed_in(
        &self,
        user: &User,
        client: &ClientInfo,
        amr: Amr,
    ) -> Result<(User, Issued), AuthError> {
        let issued = match self.start_session(user, client, amr).await {
            Err(AuthError::SessionEnded) => return Err(AuthError::InvalidMfaToken),
            other => other?,
        };
        tracing::info!(event = "login_ok", user_id = %user.id, amr = ?amr.names(), ip = client.ip.as_deref().unwrap_or("-"));
        self.count_login(LoginResult::Ok);
        Ok((user.clone(), issued))
    }

    /// Adds `factor` to session `sid`'s `amr` (a compare-and-set of its record); returns the
    /// new `amr`.
    async fn raise_session(&self, sid: &str, uid: Uuid, factor: Amr) -> Result<Amr, AuthError> {
        let key = keys::session(sid);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(stored) = self.store.get(&key).await? else {
                return Err(AuthError::SessionEnded);
            };
            let mut record: SessionRecord = decode(&stored)?;
            if record.uid != uid {
                return Err(AuthError::SessionEnded);
            }
            if record.amr.contains(factor) {
                return Ok(record.amr);
            }
            record.amr = record.amr.with(factor);
            let ttl = Duration::from_secs(self.refresh_ttl);
            let swap = Swap {
                key: key.clone(),
                expected: Some(stored),
                value: encode(&record),
                ttl,
            };
            let also = vec![Op::SetAdd {
                set: keys::user_sessions(&uid.to_string()),
                member: sid.to_owned(),
                ttl,
            }];
            if self.store.swap_then_apply(swap, also).await? {
                return Ok(record.amr);
            }
        }
        Err(AuthError::Store(StoreError::Unavailable(
            "the session is being changed by many requests at once; retry".into(),
        )))
    }

    // --- administration ---

    /// `gatehouse user reset-mfa`: removes every second factor and ends the user's sessions
    /// and logins in flight (a credential change, GD-0006).
    pub async fn reset_factors(&self, email: &str) -> Result<User, AuthError> {
        let user = self.find_user(email).await?;
        let user = self
            .change_credentials(user.id, |u| {
                u.factors = Factors::default();
                Ok(())
            })
            .await?;
        self.store
            .apply(vec![Op::Delete {
                key: keys::totp_pending(&user.id.to_string()),
            }])
            .await?;
        audit::record(Event::new(Kind::FactorsReset, user.id, Actor::Admin));
        let method = "every second factor (reset by an administrator)".to_owned();
        self.notify(&user, Notice::SecondFactorRemoved { method })
            .await;
        Ok(user)
    }

    // --- helpers ---

    fn seal(&self, user: Uuid, secret: &[u8]) -> Result<String, AuthError> {
        self.factors
            .sealer
            .seal(user.as_bytes(), secret)
            .ok_or_else(|| AuthError::Internal("cannot seal a TOTP secret".into()))
    }

    fn open(&self, user: Uuid, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        std::str::from_utf8(sealed)
            .ok()
            .and_then(|sealed| self.factors.sealer.open(user.as_bytes(), sealed))
            .ok_or_else(|| {
                AuthError::Internal(
                    "a TOTP secret does not open with the second-factor key (mfa.key_file): was the database restored without its key, or do the nodes use different keys?".into(),
                )
            })
    }

    async fn ceremony(
        &self,
        state: CeremonyState,
        options: serde_json::Value,
    ) -> Result<Ceremony, AuthError> {
        let id = random_token()?;
        self.store
            .apply(vec![Op::set(
                keys::webauthn_ceremony(&id),
                encode(&state),
                Duration::from_secs(CEREMONY_TTL),
            )])
            .await?;
        Ok(Ceremony { id, options })
    }

    async fn take_ceremony(&self, id: &str) -> Result<Option<CeremonyState>, AuthError> {
        if id.len() != 43
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        match self.take(&keys::webauthn_ceremony(id)).await? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

/// 256 random bits, base64url (43 characters): an `mfa_token` or a ceremony id.
fn random_token() -> Result<String, AuthError> {
    use base64::Engine;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// A credential id as the API names a passkey: base64url.
fn credential_id(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The signature counter stored with a passkey. webauthn-rs keeps it private (short of its
/// `danger-credential-internals` feature); its serialised form has it.
fn stored_counter(passkey: &webauthn_rs::prelude::Passkey) -> u32 {
    serde_json::to_value(passkey)
        .ok()
        .and_then(|v| {
            v.pointer("/cred/counter")
                .and_then(serde_json::Value::as_u64)
        })
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

fn info(p: &PasskeyFactor) -> PasskeyInfo {
    PasskeyInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        created_at: p.created_at,
    }
}

/// Recovery codes stand in for a lost factor; with the last factor gone they go too, and a
/// login is one step again.
fn forget_codes_without_factor(factors: &mut Factors) {
    if !factors.any() {
        factors.recovery.clear();
    }
}

/// A passkey's name: trimmed, 1 to [`MAX_PASSKEY_NAME`] characters, no control characters.
fn passkey_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_PASSKEY_NAME
        || name.chars().any(char::is_control)
    {
        return Err(AuthError::InvalidInput(format!(
            "name the passkey with 1 to {MAX_PASSKEY_NAME} characters (e.g. \"laptop\")"
        )));
    }
    Ok(name.to_owned())
}

fn refused(e: &webauthn_rs::prelude::WebauthnError) -> AuthError {
    tracing::info!(event = "passkey_refused", reason = %e);
    AuthError::InvalidSecondFactor("the passkey was not accepted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_method_and_as_typed() {
        assert!(matches!(Code::named("totp", "1"), Some(Code::Totp("1"))));
        assert!(matches!(
            Code::named("recovery", "1"),
            Some(Code::Recovery("1"))
        ));
        assert!(Code::named("sms", "1").is_none());
        assert!(matches!(Code::typed("123 456"), Code::Totp(_)));
        assert!(matches!(Code::typed("abcde-fghjk"), Code::Recovery(_)));
    }

    #[test]
    fn passkey_names() {
        assert_eq!(passkey_name("  laptop ").unwrap(), "laptop");
        assert!(passkey_name(" ").is_err());
        assert!(passkey_name("a\nb").is_err());
        assert!(passkey_name(&"x".repeat(MAX_PASSKEY_NAME + 1)).is_err());
    }
}
