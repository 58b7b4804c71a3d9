//! The OpenID Connect flows (GD-0009): authorization requests and their codes, the token
//! endpoint (code exchange and refresh), userinfo, revocation, introspection and the grant
//! side of RP-initiated logout.
//!
//! A grant is a gatehouse session whose record names the client ([`Grant`]): it is listed
//! with the user's sessions, ended by everything that ends sessions, and its refresh token
//! rotates with the same reuse detection as gatehouse's own (`rotation`). A code carries what
//! it stands for, sealed ([`CodeGrant`], GD-0015), so issuing one writes nothing. It is single
//! use: its first use creates the record of that use (create-only) together with the grant
//! session it made, so a second use finds that session and ends it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{AuthError, ClientInfo, Service, decode};
use crate::auth::oidc::{
    self, CodeGrant, GrantAccessClaims, IdTokenClaims, Provider, SecretCheck, parse_scope,
};
use crate::auth::regulation;
use crate::auth::tokens::AccessClaims;
use crate::clock::{now_ms, now_secs};
use crate::config::oidc::{Client, Consent, KNOWN_SCOPES};
use crate::domain::factors::Amr;
use crate::domain::session::{self, Grant, SessionRecord, encode};
use crate::domain::{self, User};
use crate::store::{Op, StoreError, Swap, keys};

/// How long a redeemed code's record stays, so that a late second use still ends the grant.
const REDEEMED_TTL: Duration = Duration::from_secs(600);

/// What a code that is unknown, expired or used before gets.
const CODE_INVALID: &str = "the code is invalid, expired or already used";

/// Longest `state` and `nonce` accepted (they come back in URLs and tokens).
const MAX_PARAM_LEN: usize = 1024;

/// An OAuth 2.0 error (RFC 6749 §5.2 and §4.1.2.1): `error` and its description.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("the grant type is not supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    #[error("too many failed attempts; retry in {retry_after} s")]
    Regulated { retry_after: u64 },
    #[error(transparent)]
    Other(AuthError),
}

impl OAuthError {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::Regulated { .. } => "slow_down",
            OAuthError::Other(_) => "server_error",
        }
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Regulated { retry_after } => OAuthError::Regulated { retry_after },
            AuthError::WrongClientSecret => OAuthError::InvalidClient,
            AuthError::InvalidRefreshToken => {
                OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into())
            }
            other => OAuthError::Other(other),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Other(AuthError::Store(e))
    }
}

/// The parameters of an authorization request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// gatehouse's own: when a fresh sign-in was asked for (`prompt=login`, `max_age`), a
    /// signed marker of the time it was asked ([`FreshLogin`]); a sign-in at or after that
    /// time satisfies the request. Signed, so that no one can write a marker that an old
    /// sign-in meets.
    pub login_after: Option<String>,
}

/// What an authorization request comes to.
#[derive(Debug)]
pub enum Authorized {
    /// An unknown client or a redirect URI that is not registered: an error page, never a
    /// redirect (the URI could be anyone's).
    Refused(String),
    /// Back to the client (a code, or an error), with `state` and `iss`.
    Redirect(String),
    /// The browser must sign in; with `fresh` (the marker to carry back as `login_after`)
    /// even if it is signed in (`prompt=login`, `max_age`).
    Login { fresh: Option<String> },
    /// Ask the user to allow the client these scopes.
    Consent { client: String, scopes: Vec<String> },
}

/// The browser behind an authorization request: its gatehouse session.
#[derive(Debug, Clone)]
pub struct Browser {
    pub claims: AccessClaims,
    /// Unix second it signed in.
    pub auth_time: u64,
    /// How it signed in (raised by a step-up).
    pub amr: Amr,
}

/// The `login_after` marker of a forced sign-in: the time it was asked for (`iat`), signed
/// by the access-token signer (whose keys every node shares). It parses as no token of
/// another kind (no `email`, `role`, `aud` or `client_id`).
#[derive(Debug, Serialize, Deserialize)]
struct FreshLogin {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
}

impl FreshLogin {
    const SUBJECT: &'static str = "fresh-login";
    /// Time to sign in before the request must start again.
    const LIFETIME: u64 = 900;
}

/// The use of a code, recorded at its first use (for `REDEEMED_TTL`, longer than a code
/// lives).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeUse {
    client: String,
    uid: Uuid,
    /// The grant session the first use made (or would have made, when it failed a check).
    redeemed: String,
    /// Set when a second use ended that session.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// The grant session tokens are issued for.
struct GrantSession<'a> {
    sid: &'a str,
    grant: &'a Grant,
    amr: Amr,
}

/// A token response (RFC 6749 §5.1 plus `id_token`).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// How a client presented its credentials at a token-side endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// From HTTP Basic (`client_secret_basic`).
    pub basic: Option<(String, String)>,
    /// From the form (`client_secret_post`, or `none` with only `client_id`).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

fn redirect_with(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str(&query.finish());
    url
}

impl Service {
    fn oidc(&self) -> Result<&Provider, AuthError> {
        self.provider
            .as_ref()
            .ok_or_else(|| AuthError::Internal("the OpenID Connect provider is off".into()))
    }

    /// The browser session behind an access cookie, with when it signed in.
    pub async fn browser(&self, token: &str) -> Result<Option<Browser>, AuthError> {
        let claims = match self.authenticate(token).await {
            Ok(claims) => claims,
            Err(AuthError::Store(e)) => return Err(AuthError::Store(e)),
            Err(_) => return Ok(None),
        };
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Ok(None);
        };
        let record: SessionRecord = decode(&bytes)?;
        Ok(Some(Browser {
            claims,
            auth_time: record.created_at,
            amr: record.amr,
        }))
    }

    /// Judges an authorization request (and, with `decision`, the consent form's answer).
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        browser: Option<&Browser>,
        decision: Option<bool>,
    ) -> Result<Authorized, AuthError> {
        let provider = self.oidc()?;
        let Some(client) = params
            .client_id
            .as_deref()
            .and_then(|id| provider.client(id))
        else {
            return Ok(Authorized::Refused(
                "The application that sent you here is not registered with this sign-in service (unknown client_id).".into(),
            ));
        };
        let Some(redirect_uri) = params
            .redirect_uri
            .as_deref()
            .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        else {
            return Ok(Authorized::Refused(format!(
                "The address {} asked to be sent back to is not registered for it (redirect_uri).",
                client.name
            )));
        };
        let state = params.state.as_deref();
        let fail = |error: &str, description: &str| {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if let Some(state) = state {
                pairs.push(("state", state));
            }
            pairs.push(("iss", provider.issuer()));
            Ok(Authorized::Redirect(redirect_with(redirect_uri, &pairs)))
        };
        if params.request.is_some() {
            return fail("request_not_supported", "request objects are not supported");
        }
        if params.request_uri.is_some() {
            return fail("request_uri_not_supported", "request_uri is not supported");
        }
        match params.response_type.as_deref() {
            Some("code") => {}
            None => return fail("invalid_request", "response_type is missing"),
            Some(_) => {
                return fail(
                    "unsupported_response_type",
                    "only the authorization code flow (response_type=code) is supported",
                );
            }
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|m| m != "query")
        {
            return fail("invalid_request", "only response_mode=query is supported");
        }
        if state.is_some_and(|s| s.len() > MAX_PARAM_LEN)
            || params
                .nonce
                .as_deref()
                .is_some_and(|n| n.len() > MAX_PARAM_LEN)
        {
            return fail("invalid_request", "state or nonce is too long");
        }
        let Some(mut scopes) = params.scope.as_deref().and_then(parse_scope) else {
            return fail("invalid_scope", "scope is missing or malformed");
        };
        // Scopes gatehouse does not know (`phone`, an app's own) are ignored, as OpenID
        // Connect Core asks; a known scope the client may not have is refused below.
        scopes.retain(|s| KNOWN_SCOPES.contains(&s.as_str()));
        if !scopes.iter().any(|s| s == "openid") {
            return fail("invalid_scope", "the openid scope is required");
        }
        if let Some(denied) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            return fail(
                "invalid_scope",
                &format!("the scope {denied} is not allowed for this client"),
            );
        }
        let challenge = match (
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            (None, None) if client.is_public() => {
                return fail(
                    "invalid_request",
                    "a public client must use PKCE (code_challenge with S256)",
                );
            }
            (None, None) => None,
            (Some(c), Some("S256")) if oidc::pkce_well_formed(c) => Some(c.to_owned()),
            (Some(_), Some("S256")) => {
                return fail("invalid_request", "code_challenge is malformed");
            }
            (Some(_), None | Some("plain")) | (None, Some(_)) => {
                return fail(
                    "invalid_request",
                    "code_challenge_method must be S256 with a code_challenge",
                );
            }
            (Some(_), Some(_)) => {
                return fail("invalid_request", "code_challenge_method must be S256");
            }
        };
        let prompts: Vec<&str> = params
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        if prompts
            .iter()
            .any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account"))
            || (prompts.contains(&"none") && prompts.len() > 1)
        {
            return fail(
                "invalid_request",
                "prompt has an unknown or conflicting value",
            );
        }
        let silent = prompts.contains(&"none");
        let max_age = match params.max_age.as_deref().map(str::parse::<u64>) {
            None => None,
            Some(Ok(age)) => Some(age),
            Some(Err(_)) => return fail("invalid_request", "max_age must be a number of seconds"),
        };
        let now = now_secs();
        let Some(browser) = browser else {
            if silent {
                return fail("login_required", "the user is not signed in");
            }
            return Ok(Authorized::Login { fresh: None });
        };
        // A fresh sign-in was asked for: met by one at or after the time it was asked.
        let fresh_after = params
            .login_after
            .as_deref()
            .and_then(|marker| {
                self.signer
                    .verify_as::<FreshLogin>(marker, provider.issuer(), true)
                    .ok()
            })
            .filter(|m| m.sub == FreshLogin::SUBJECT)
            .map(|m| m.iat);
        let fresh_enough = fresh_after.is_some_and(|t| browser.auth_time >= t);
        // `max_age=0` is `prompt=login` (OpenID Connect Core §3.1.2.1): whole seconds would
        // let a sign-in of this very second pass.
        let too_old =
            max_age.is_some_and(|age| age == 0 || now.saturating_sub(browser.auth_time) > age);
        if !fresh_enough && (prompts.contains(&"login") || too_old) {
            if silent {
                return fail("login_required", "a fresh sign-in is required");
            }
            let marker = FreshLogin {
                iss: provider.issuer().to_owned(),
                sub: FreshLogin::SUBJECT.to_owned(),
                iat: now,
                exp: now + FreshLogin::LIFETIME,
            };
            let marker = self.signer.sign(&marker).map_err(AuthError::InvalidToken)?;
            return Ok(Authorized::Login {
                fresh: Some(marker),
            });
        }
        let user = match self.users.by_id(browser.claims.sub).await? {
            Some(user) if !user.disabled => user,
            _ => {
                return Ok(Authorized::Login { fresh: None });
            }
        };
        if !client.groups.is_empty() && !client.groups.iter().any(|g| user.groups.contains(g)) {
            tracing::info!(event = "oidc_denied", client = %client.id, user_id = %user.id, reason = "groups");
            return fail(
                "access_denied",
                "your account is not in a group allowed to use this application",
            );
        }
        let user = match client.consent {
            Consent::Implicit => user,
            Consent::Explicit => match decision {
                Some(false) => {
                    tracing::info!(event = "oidc_consent_denied", client = %client.id, user_id = %user.id);
                    return fail("access_denied", "the user did not allow the request");
                }
                Some(true) => self.remember_consent(&user, client, &scopes).await?,
                None if prompts.contains(&"consent")
                    || !user.has_consented(&client.id, &scopes) =>
                {
                    if silent {
                        return fail("consent_required", "the user has not allowed this request");
                    }
                    return Ok(Authorized::Consent {
                        client: client.name.clone(),
                        scopes,
                    });
                }
                None => user,
            },
        };
        let grant = CodeGrant {
            id: CodeGrant::new_id().map_err(|e| AuthError::Internal(e.to_string()))?,
            exp_ms: now_ms() + provider.code_ttl() * 1000,
            client: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            uid: user.id,
            scope: scopes.join(" "),
            nonce: params.nonce.clone(),
            challenge,
            auth_time: browser.auth_time,
            amr: browser.amr,
            cv: user.credential_version,
        };
        let code = grant
            .seal(provider.codes())
            .ok_or_else(|| AuthError::Internal("cannot seal an authorization code".into()))?;
        tracing::info!(event = "oidc_code_issued", client = %client.id, user_id = %user.id);
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", provider.issuer()));
        Ok(Authorized::Redirect(redirect_with(redirect_uri, &pairs)))
    }

    async fn remember_consent(
        &self,
        user: &User,
        client: &Client,
        scopes: &[String],
    ) -> Result<User, AuthError> {
        let user = self
            .modify_user(user.id, |u| {
                match u.consents.iter_mut().find(|c| c.client == client.id) {
                    Some(consent) => {
                        for scope in scopes {
                            if !consent.scopes.contains(scope) {
                                consent.scopes.push(scope.clone());
                            }
                        }
                        consent.scopes.sort();
                    }
                    None => u.consents.push(domain::Consent {
                        client: client.id.clone(),
                        scopes: scopes.to_vec(),
                    }),
                }
                Ok(())
            })
            .await?;
        tracing::info!(event = "oidc_consent_given", client = %client.id, user_id = %user.id, scope = %scopes.join(" "));
        Ok(user)
    }

    /// Revokes an application: ends every grant session of `client` for the user and forgets
    /// the consent (the account page's "Revoke").
    pub async fn revoke_app(&self, user_id: Uuid, client: &str) -> Result<(), AuthError> {
        let set = keys::user_sessions(&user_id.to_string());
        let members = self.store.set_members(&set).await?;
        for info in self.live_sessions(user_id, &members).await? {
            if info
                .record
                .grant
                .as_ref()
                .is_some_and(|g| g.client == client)
            {
                self.revoke_session(&info.id, user_id).await?;
            }
        }
        self.forget_consent(user_id, client).await?;
        tracing::info!(event = "oidc_app_revoked", client = %client, user_id = %user_id);
        Ok(())
    }

    /// Forgets the user's consent to `client` (revoking its grant from the session list).
    pub(super) async fn forget_consent(
        &self,
        user_id: Uuid,
        client: &str,
    ) -> Result<(), AuthError> {
        self.modify_user(user_id, |u| {
            u.consents.retain(|c| c.client != client);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Authenticates the client at the token, revocation or introspection endpoint.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
        ip: Option<&str>,
    ) -> Result<&Client, OAuthError> {
        let provider = self.oidc().map_err(OAuthError::Other)?;
        let (id, secret) = match (&credentials.basic, &credentials.client_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not several".into(),
                ));
            }
            (Some((id, secret)), None) => {
                if credentials.client_id.as_deref().is_some_and(|c| c != id) {
                    return Err(OAuthError::InvalidRequest(
                        "client_id differs from the authenticated client".into(),
                    ));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            (None, secret) => (
                credentials
                    .client_id
                    .as_deref()
                    .ok_or(OAuthError::InvalidClient)?,
                secret.as_deref(),
            ),
        };
        let Some(client) = provider.client(id) else {
            return Err(OAuthError::InvalidClient);
        };
        match provider.check_secret(client, secret) {
            SecretCheck::Public if secret.is_none() => Ok(client),
            SecretCheck::Matched => Ok(client),
            SecretCheck::Public | SecretCheck::Wrong => {
                let attempt = self
                    .reserve(regulation::subjects(None, ip), "client_secret")
                    .await?;
                self.regulation.failed(attempt).await?;
                tracing::info!(event = "oidc_client_auth_failed", client = %client.id, ip = ip.unwrap_or("-"));
                Err(OAuthError::InvalidClient)
            }
            SecretCheck::NeedsHash => {
                let attempt = self
                    .reserve(regulation::subjects(None, ip), "client_secret")
                    .await?;
                let (Some(presented), Some(crate::config::oidc::ClientSecret::Argon2(phc))) =
                    (secret, &client.secret)
                else {
                    self.regulation.failed(attempt).await?;
                    return Err(OAuthError::InvalidClient);
                };
                let check = match self.hasher.verify(presented, Some(phc)).await {
                    Ok(check) => check,
                    Err(e) => {
                        self.regulation.withdraw(attempt).await?;
                        return Err(AuthError::from(e).into());
                    }
                };
                if check.matches {
                    self.regulation.succeeded(attempt).await?;
                    provider.remember_secret(client, presented);
                    Ok(client)
                } else {
                    self.regulation.failed(attempt).await?;
                    tracing::info!(event = "oidc_client_auth_failed", client = %client.id, ip = ip.unwrap_or("-"));
                    Err(OAuthError::InvalidClient)
                }
            }
        }
    }

    /// `grant_type=authorization_code`. The code's first use is recorded (create-only)
    /// in the same commit as the grant session it makes: a used code always names a session
    /// that exists, so a second use finds it and ends it. A request that fails a check still
    /// uses the code up, so that a stolen code cannot be tried again.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        info: &ClientInfo,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid = |why: &str| OAuthError::InvalidGrant(why.to_owned());
        let Some(code) = CodeGrant::open(self.oidc()?.codes(), code, now_ms()) else {
            return Err(invalid(CODE_INVALID));
        };
        let key = keys::oidc_code(&code.id);
        let sid = session::new_id();
        let claim = Swap {
            key: key.clone(),
            expected: None,
            value: encode(&CodeUse {
                client: code.client.clone(),
                uid: code.uid,
                redeemed: sid.clone(),
                replayed: false,
            }),
            ttl: REDEEMED_TTL,
        };
        let user = match self
            .redeemable(&code, client, redirect_uri, verifier)
            .await?
        {
            Ok(user) => user,
            Err(why) => {
                if !self.store.swap_then_apply(claim, Vec::new()).await? {
                    self.code_replayed(&key).await?;
                    return Err(invalid(CODE_INVALID));
                }
                return Err(invalid(why));
            }
        };
        let grant = Grant {
            client: client.id.clone(),
            scope: code.scope.clone(),
            auth_time: code.auth_time,
        };
        let offline = code.scope.split(' ').any(|s| s == "offline_access");
        let refresh =
            session::new_refresh_token(&sid).map_err(|e| AuthError::Internal(e.to_string()))?;
        let now = now_secs();
        let session_record = SessionRecord {
            uid: user.id,
            created_at: now,
            last_seen_at: now,
            user_agent: info.user_agent.clone(),
            ip: info.ip.clone(),
            refresh: session::token_hash(&refresh),
            cv: user.credential_version,
            rotated: None,
            grant: Some(grant.clone()),
            amr: code.amr,
        };
        // Without offline_access the grant lives as long as its access token.
        let ttl = Duration::from_secs(if offline {
            self.refresh_ttl
        } else {
            self.access_ttl
        });
        let write = vec![
            Op::set(keys::session(&sid), encode(&session_record), ttl),
            Op::SetAdd {
                set: keys::user_sessions(&user.id.to_string()),
                member: sid.clone(),
                ttl: Duration::from_secs(self.refresh_ttl),
            },
        ];
        if !self.store.swap_then_apply(claim, write).await? {
            self.code_replayed(&key).await?;
            return Err(invalid(CODE_INVALID));
        }
        // A second use of the code that came right after this one (it has ended the session
        // already; answering with its tokens would hand out dead ones), or a credential
        // change that raced this exchange (its logout-all may have read the user's sessions
        // before this one was written).
        let replayed = match self.store.get(&key).await? {
            Some(bytes) => decode::<CodeUse>(&bytes)?.replayed,
            None => false,
        };
        let current = self.users.by_id(user.id).await?;
        let still =
            current.is_some_and(|u| !u.disabled && u.credential_version == user.credential_version);
        if replayed || !still {
            self.revoke_session(&sid, user.id).await?;
            return Err(invalid("the code was used twice or the account changed"));
        }
        self.enforce_session_cap(user.id).await?;
        tracing::info!(event = "oidc_grant", client = %client.id, user_id = %user.id, session_id = %sid);
        let session = GrantSession {
            sid: &sid,
            grant: &grant,
            amr: code.amr,
        };
        self.grant_tokens(
            &user,
            session,
            client,
            offline.then_some(refresh),
            code.nonce,
        )
        .map_err(Into::into)
    }

    /// Whether `code` may be redeemed by this request: the user it names (as now), or why
    /// not.
    async fn redeemable(
        &self,
        code: &CodeGrant,
        client: &Client,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<Result<User, &'static str>, AuthError> {
        if code.client != client.id {
            return Ok(Err("the code was issued to another client"));
        }
        if redirect_uri != Some(code.redirect_uri.as_str()) {
            return Ok(Err("redirect_uri differs from the authorization request's"));
        }
        match (&code.challenge, verifier) {
            (Some(challenge), Some(verifier))
                if oidc::pkce_well_formed(verifier)
                    && bool::from(subtle::ConstantTimeEq::ct_eq(
                        oidc::pkce_s256(verifier).as_bytes(),
                        challenge.as_bytes(),
                    )) => {}
            (Some(_), _) => return Ok(Err("the PKCE code_verifier is missing or wrong")),
            (None, Some(_)) => {
                return Ok(Err("a code_verifier was sent but no code_challenge was"));
            }
            (None, None) => {}
        }
        Ok(match self.users.by_id(code.uid).await? {
            Some(user) if !user.disabled && user.credential_version == code.cv => Ok(user),
            _ => Err("the account changed since the code was issued"),
        })
    }

    /// A second use of a code: ends the session its first use made and marks the use
    /// replayed (one write), so that a first exchange still under way answers with an error.
    async fn code_replayed(&self, key: &str) -> Result<(), AuthError> {
        // The use record outlives the code, so it is there unless the store lost it.
        let Some(stored) = self.store.get(key).await? else {
            return Ok(());
        };
        let used: CodeUse = decode(&stored)?;
        let uid = used.uid;
        let client = used.client.clone();
        let first = used.redeemed.clone();
        let marked = CodeUse {
            replayed: true,
            ..used
        };
        self.store
            .apply(vec![
                Op::Delete {
                    key: keys::session(&first),
                },
                Op::SetRemove {
                    set: keys::user_sessions(&uid.to_string()),
                    member: first,
                },
                Op::set(key.to_owned(), encode(&marked), REDEEMED_TTL),
            ])
            .await?;
        tracing::warn!(event = "oidc_code_replayed", client = %client, user_id = %uid,
            "an authorization code was used twice; the grant it made is revoked");
        Ok(())
    }

    /// `grant_type=refresh_token`: rotates the grant's refresh token (reuse detection and
    /// grace as `/auth/refresh`), then issues new tokens for the same grant.
    pub async fn refresh_grant(
        &self,
        client: &Client,
        token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let rotated = self.rotate_refresh_token(token, Some(&client.id)).await?;
        let Some(grant) = rotated.record.grant.clone() else {
            return Err(OAuthError::InvalidGrant("not a grant".into()));
        };
        if let Some(asked) = scope {
            let granted: Vec<&str> = grant.scope.split(' ').collect();
            let asked = parse_scope(asked)
                .ok_or_else(|| OAuthError::InvalidScope("scope is malformed".into()))?;
            if asked.iter().any(|s| !granted.contains(&s.as_str())) {
                return Err(OAuthError::InvalidScope(
                    "a refresh cannot ask for more than was granted".into(),
                ));
            }
        }
        let user = rotated.user;
        if !client.groups.is_empty() && !client.groups.iter().any(|g| user.groups.contains(g)) {
            self.revoke_session(&rotated.sid, user.id).await?;
            return Err(OAuthError::InvalidGrant(
                "the account is no longer in a group allowed to use this client".into(),
            ));
        }
        let session = GrantSession {
            sid: &rotated.sid,
            grant: &grant,
            amr: rotated.record.amr,
        };
        self.grant_tokens(&user, session, client, Some(rotated.refresh_token), None)
            .map_err(Into::into)
    }

    fn grant_tokens(
        &self,
        user: &User,
        session: GrantSession<'_>,
        client: &Client,
        refresh_token: Option<String>,
        nonce: Option<String>,
    ) -> Result<TokenResponse, AuthError> {
        let GrantSession { sid, grant, amr } = session;
        let provider = self.oidc()?;
        let now = now_secs();
        let access = GrantAccessClaims {
            iss: provider.issuer().to_owned(),
            sub: user.id,
            aud: client.id.clone(),
            client_id: client.id.clone(),
            scope: grant.scope.clone(),
            iat: now,
            exp: now + self.access_ttl,
            jti: session::new_id(),
            sid: sid.to_owned(),
        };
        let access_token = self.signer.sign(&access).map_err(AuthError::InvalidToken)?;
        let id = IdTokenClaims {
            iss: provider.issuer().to_owned(),
            sub: user.id,
            aud: client.id.clone(),
            exp: now + self.access_ttl,
            iat: now,
            auth_time: grant.auth_time,
            nonce,
            amr: amr.names().into_iter().map(str::to_owned).collect(),
            sid: sid.to_owned(),
            azp: Some(client.id.clone()),
            profile: scope_claims(user, &grant.scope),
        };
        let id_token = provider
            .id_signer(client)
            .and_then(|signer| signer.sign(&id))
            .map_err(AuthError::InvalidToken)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_ttl,
            id_token,
            refresh_token,
            scope: grant.scope.clone(),
        })
    }

    /// Verifies an access token issued to a relying party and that its grant lives.
    async fn grant_of_access_token(
        &self,
        token: &str,
    ) -> Result<Option<(GrantAccessClaims, SessionRecord)>, AuthError> {
        let provider = self.oidc()?;
        let Ok(claims) = self
            .signer
            .verify_as::<GrantAccessClaims>(token, provider.issuer(), true)
        else {
            return Ok(None);
        };
        let Some(bytes) = self.store.get(&keys::session(&claims.sid)).await? else {
            return Ok(None);
        };
        let record: SessionRecord = decode(&bytes)?;
        let ours = record.uid == claims.sub
            && record
                .grant
                .as_ref()
                .is_some_and(|g| g.client == claims.client_id);
        Ok(ours.then_some((claims, record)))
    }

    /// `userinfo`: the claims of the granted scopes.
    pub async fn userinfo(&self, token: &str) -> Result<Value, OAuthError> {
        let Some((claims, record)) = self.grant_of_access_token(token).await? else {
            return Err(OAuthError::InvalidToken);
        };
        let user = match self.profile(claims.sub).await? {
            Some(user) if !user.disabled => user,
            _ => return Err(OAuthError::InvalidToken),
        };
        let scope = record.grant.map(|g| g.scope).unwrap_or_default();
        let mut body = scope_claims(&user, &scope);
        body.insert("sub".into(), Value::String(claims.sub.to_string()));
        Ok(Value::Object(body))
    }

    /// RFC 7009: ends the grant a refresh or access token of this client belongs to. A token
    /// that is unknown, dead or another client's changes nothing (and says nothing).
    pub async fn revoke_grant_token(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        if let Some(sid) = session::refresh_token_session(token) {
            if let Some(bytes) = self.store.get(&keys::session(sid)).await? {
                let record: SessionRecord = decode(&bytes)?;
                let mine = record.grant.as_ref().is_some_and(|g| g.client == client.id);
                if mine
                    && !matches!(
                        record.classify(token, now_secs(), 0),
                        session::Presented::Reuse
                    )
                {
                    self.revoke_session(sid, record.uid).await?;
                    tracing::info!(event = "oidc_revoked", client = %client.id, user_id = %record.uid);
                }
            }
            return Ok(());
        }
        if let Some((claims, record)) = self.grant_of_access_token(token).await? {
            if claims.client_id == client.id {
                self.revoke_session(&claims.sid, record.uid).await?;
                tracing::info!(event = "oidc_revoked", client = %client.id, user_id = %record.uid);
            }
        }
        Ok(())
    }

    /// RFC 7662 for the provider's tokens: active only while the grant lives, and only for
    /// the client it was issued to.
    pub async fn introspect_grant_token(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Value, OAuthError> {
        let inactive = json!({"active": false});
        if let Some(sid) = session::refresh_token_session(token) {
            let Some(bytes) = self.store.get(&keys::session(sid)).await? else {
                return Ok(inactive);
            };
            let record: SessionRecord = decode(&bytes)?;
            let Some(grant) = record.grant.as_ref().filter(|g| g.client == client.id) else {
                return Ok(inactive);
            };
            if record.classify(token, now_secs(), 0) != session::Presented::Current {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": grant.scope,
                "client_id": grant.client,
                "sub": record.uid,
                "iss": self.oidc()?.issuer(),
                "exp": record.last_seen_at + self.refresh_ttl,
                "iat": record.last_seen_at,
            }));
        }
        match self.grant_of_access_token(token).await? {
            Some((claims, _)) if claims.client_id == client.id => Ok(json!({
                "active": true,
                "token_type": "access_token",
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
            })),
            _ => Ok(inactive),
        }
    }

    /// RP-initiated logout: ends the grant an `id_token_hint` names, if it still belongs to
    /// that user and client.
    pub async fn end_grant(&self, hint: &IdTokenClaims) -> Result<(), AuthError> {
        if let Some(bytes) = self.store.get(&keys::session(&hint.sid)).await? {
            let record: SessionRecord = decode(&bytes)?;
            if record.uid == hint.sub && record.grant.as_ref().is_some_and(|g| g.client == hint.aud)
            {
                self.revoke_session(&hint.sid, record.uid).await?;
            }
        }
        Ok(())
    }
}

/// The claims of the granted scopes: `email` → `email`, `email_verified`; `profile` →
/// `name`, `preferred_username`; `groups` → `groups`.
fn scope_claims(user: &User, scope: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    for s in scope.split(' ') {
        match s {
            "email" => {
                claims.insert("email".into(), Value::String(user.email.clone()));
                claims.insert("email_verified".into(), Value::Bool(user.email_verified));
            }
            "profile" => {
                let name = user.email.split('@').next().unwrap_or(&user.email);
                claims.insert("name".into(), Value::String(name.to_owned()));
                claims.insert(
                    "preferred_username".into(),
                    Value::String(user.email.clone()),
                );
            }
            "groups" => {
                claims.insert("groups".into(), json!(user.groups));
            }
            _ => {}
        }
    }
    claims
}
