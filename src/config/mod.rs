//! Configuration: built-in defaults < the TOML file (`--config` / `GATEHOUSE_CONFIG`) <
//! `GATEHOUSE_*` environment variables (`__` between levels, e.g. `GATEHOUSE_TOKENS__ACCESS_TTL`).
//!
//! Every key is documented, with its default, in the repository's top-level `config.toml`.
//! Unknown keys and bad values stop start-up with an error that names the key.
//!
//! Two forms: the configuration as written (`RawConfig`, key for key what figment layers and
//! deserializes) and the validated [`Config`] that the rest of gatehouse reads. Each section
//! validates itself into its typed form (roles as [`crate::domain::Role`], backends with the
//! URL they need, argon2 parameters), once, at load:
//!
//! - `tokens`: `[tokens]`; `stores`: `[sessions]`, `[users]`, `[redis]`; `passwords`:
//!   `[argon2]`, `[passwords]`, `[regulation]`; `server`: `[limits]`, `[metrics]`, `[log]`
//!   and `trusted_proxies`; `web`: `[cookies]`, `[login]`, `[introspection]` and
//!   `public_url`; [`access`]: `[access_control]`; [`oidc`]: `[oidc]` and its clients;
//!   `mfa`: `[mfa]` and `[webauthn]`; `mail`: `[smtp]`, `[email]` and `registration`;
//!   `resp`: `[resp]`.
//!
//! `config` depends on nothing in `auth`: `auth` reads these values and gives them meaning
//! (e.g. `auth::access` judges requests by the access rules).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

pub mod access;
mod mail;
mod mfa;
pub mod oidc;
mod passwords;
mod resp;
mod server;
mod stores;
mod tokens;
mod web;

pub use mail::{Email, Registration, RegistrationMode, Smtp, SmtpTls};
pub use mfa::{Mfa, Webauthn};
pub use passwords::{Argon2, Passwords, Regulation};
pub use resp::{RespListener, RespTls};
pub use server::{Limits, Log, LogFormat, Metrics};
pub use stores::{
    Redis, SessionBackend, SessionBackendKind, Sessions, UserBackend, UserBackendKind, Users,
};
pub use tokens::{TokenAlgorithm, Tokens};
pub use web::{Cookies, Introspection, Login};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The configuration, validated: what the rest of gatehouse reads. [`Config::load`] makes
/// it from the configuration as written: each section checks itself and turns into typed
/// values, so nothing downstream parses or checks a setting again.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// Where the redb database and the generated secret live.
    pub data_dir: PathBuf,
    /// External URL of gatehouse: the CSRF origin check compares against it.
    pub public_url: Option<Url>,
    pub registration: Registration,
    pub tokens: Tokens,
    pub sessions: Sessions,
    pub users: Users,
    pub cookies: Cookies,
    pub argon2: Argon2,
    pub passwords: Passwords,
    pub regulation: Regulation,
    /// Peers whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub redis: Redis,
    pub metrics: Metrics,
    pub log: Log,
    pub limits: Limits,
    /// Forward-auth rules (judged by `crate::auth::access`).
    pub access_control: access::AccessControl,
    pub introspection: Introspection,
    pub login: Login,
    /// The OpenID Connect provider (on when a client is configured).
    pub oidc: oidc::Oidc,
    pub mfa: Mfa,
    pub webauthn: Webauthn,
    /// The SMTP relay; `None` without `smtp.host` (the mail-sending endpoints answer 501).
    pub smtp: Option<Smtp>,
    pub email: Email,
    /// The read-only RESP listener, when `resp.listen` is set.
    pub resp: Option<RespListener>,
}

/// The configuration as written, key for key: what figment layers (defaults, file,
/// environment) and deserializes. Sections whose written form is already their typed form
/// are shared with [`Config`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    listen: SocketAddr,
    data_dir: PathBuf,
    public_url: Option<Url>,
    registration: mail::RawRegistration,
    tokens: Tokens,
    sessions: stores::RawSessions,
    users: stores::RawUsers,
    cookies: Cookies,
    argon2: passwords::RawArgon2,
    passwords: Passwords,
    regulation: Regulation,
    /// Addresses or CIDRs.
    trusted_proxies: Vec<String>,
    redis: Redis,
    metrics: Metrics,
    log: Log,
    limits: Limits,
    access_control: access::RawAccessControl,
    introspection: Introspection,
    login: Login,
    oidc: oidc::RawOidc,
    mfa: Mfa,
    webauthn: Webauthn,
    smtp: mail::RawSmtp,
    email: Email,
    resp: resp::RawResp,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            registration: Default::default(),
            tokens: Tokens::default(),
            sessions: Default::default(),
            users: Default::default(),
            cookies: Cookies::default(),
            argon2: Default::default(),
            passwords: Passwords::default(),
            regulation: Regulation::default(),
            trusted_proxies: Vec::new(),
            redis: Redis::default(),
            metrics: Metrics::default(),
            log: Log::default(),
            limits: Limits::default(),
            access_control: Default::default(),
            introspection: Introspection::default(),
            login: Login::default(),
            oidc: Default::default(),
            mfa: Mfa::default(),
            webauthn: Webauthn::default(),
            smtp: Default::default(),
            email: Email::default(),
            resp: Default::default(),
        }
    }
}

/// The built-in defaults, validated.
impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .validate()
            .expect("the built-in defaults are valid")
    }
}

impl Config {
    /// Parses and validates a config file's text alone (no environment): what `--config`
    /// feeds through [`Config::load`], exposed for the fuzz target.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        raw.validate()
    }

    /// Loads the layered configuration and validates it.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // GATEHOUSE_CONFIG names the file; it is not a key.
        figment = figment.merge(Env::prefixed("GATEHOUSE_").split("__").ignore(&["config"]));
        let raw: RawConfig = figment.extract().map_err(Box::new)?;
        raw.validate()
    }

    /// Path of the redb database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("gatehouse.redb")
    }
}

impl RawConfig {
    /// Checks every section, in the order of `config.toml`, into the typed [`Config`].
    fn validate(self) -> Result<Config, ConfigError> {
        web::check_public_url(self.public_url.as_ref())?;
        let trusted_networks = server::trusted_networks(&self.trusted_proxies)?;
        self.tokens.validate()?;
        let sessions = self.sessions.validate()?;
        let users = self.users.validate(&self.sessions)?;
        self.redis.validate()?;
        self.cookies.validate()?;
        let argon2 = self.argon2.validate()?;
        self.passwords.validate()?;
        self.regulation.validate()?;
        self.log.validate()?;
        self.limits.validate()?;
        self.login.validate()?;
        self.introspection.validate()?;
        let access_control = self.access_control.validate()?;
        let oidc = self.oidc.validate(self.public_url.as_ref())?;
        self.webauthn.validate(self.public_url.as_ref())?;
        let smtp = self.smtp.validate()?;
        if smtp.is_some() && self.public_url.is_none() {
            return Err(invalid(
                "public_url",
                "is required with smtp.host: the links in mails point at it",
            ));
        }
        self.email.validate()?;
        let registration = self.registration.validate(smtp.as_ref())?;
        let resp = self.resp.validate()?;
        Ok(Config {
            listen: self.listen,
            data_dir: self.data_dir,
            public_url: self.public_url,
            registration,
            tokens: self.tokens,
            sessions,
            users,
            cookies: self.cookies,
            argon2,
            passwords: self.passwords,
            regulation: self.regulation,
            trusted_networks,
            redis: self.redis,
            metrics: self.metrics,
            log: self.log,
            limits: self.limits,
            access_control,
            introspection: self.introspection,
            login: self.login,
            oidc,
            mfa: self.mfa,
            webauthn: self.webauthn,
            smtp,
            email: self.email,
            resp,
        })
    }
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    }
}

/// A duration in seconds that must not be zero.
fn positive_secs(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be a positive number of seconds"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented `config.toml` must load and state exactly the built-in defaults.
    #[test]
    fn documented_config_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let from_file = Figment::new()
            .merge(Toml::file_exact(&path))
            .extract::<RawConfig>()
            .expect("config.toml loads");
        let defaults = serde_json::to_value(RawConfig::default()).unwrap();
        assert_eq!(serde_json::to_value(from_file).unwrap(), defaults);

        // Every key is documented, optional ones as a commented-out example.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut missing = Vec::new();
        for (name, value) in defaults.as_object().unwrap() {
            let leaves = match value.as_object() {
                Some(table) => table.keys().cloned().collect(),
                None => vec![name.clone()],
            };
            for leaf in leaves {
                if !text.contains(&format!("\n{leaf} = "))
                    && !text.contains(&format!("# {leaf} = "))
                {
                    missing.push(leaf);
                }
            }
        }
        assert!(missing.is_empty(), "config.toml lacks {missing:?}");
    }

    /// The key an invalid file is refused for.
    fn refused_key(text: &str) -> &'static str {
        match Config::from_toml_str(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{text:?} gave {other:?}, not an invalid value"),
        }
    }

    /// Every section checks its own values, and the error names the key.
    #[test]
    fn each_section_names_its_bad_key() {
        for (text, key) in [
            ("public_url = \"ftp://example.org\"", "public_url"),
            ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"),
            ("[tokens]\naccess_ttl = 0", "tokens.access_ttl"),
            ("[tokens]\nrefresh_ttl = 0", "tokens.refresh_ttl"),
            (
                "[tokens]\nrefresh_reuse_grace = 604800",
                "tokens.refresh_reuse_grace",
            ),
            ("[sessions]\npurge_interval = 0", "sessions.purge_interval"),
            ("[sessions]\nmax_per_user = 0", "sessions.max_per_user"),
            ("[sessions]\nbackend = \"redis\"", "sessions.redis_url"),
            ("[sessions]\nredis_url = \"http://x\"", "sessions.redis_url"),
            ("[users]\nbackend = \"redis\"", "users.redis_url"),
            ("[users]\nredis_url = \"http://x\"", "users.redis_url"),
            (
                "[redis]\ncommand_timeout_ms = 0",
                "redis.connect_timeout_ms / redis.command_timeout_ms",
            ),
            ("[cookies]\ndomain = \"org\"", "cookies.domain"),
            ("[argon2]\nmax_concurrent = 0", "argon2.max_concurrent"),
            ("[argon2]\nmemory_kib = 1", "argon2"),
            ("[passwords]\nmin_score = 5", "passwords.min_score"),
            ("[passwords]\nmin_length = 0", "passwords.min_length"),
            (
                "[regulation]\nban_time = 0",
                "regulation.find_time / regulation.ban_time",
            ),
            ("[log]\nlevel = \"gatehouse=loud\"", "log.level"),
            (
                "[limits]\nheader_read_timeout = 0",
                "limits.header_read_timeout",
            ),
            ("[limits]\nrequest_timeout = 0", "limits.request_timeout"),
            ("[limits]\nmax_body = 1023", "limits.max_body"),
            (
                "[limits]\nmax_header_bytes = 8191",
                "limits.max_header_bytes",
            ),
            ("[limits]\nmax_headers = 0", "limits.max_headers"),
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            ("[login]\ntitle = \" \"", "login.title"),
            (
                "[introspection]\nclient_id = \"api\"",
                "introspection.client_id / introspection.client_secret",
            ),
            (
                "[introspection]\nclient_id = \"api\"\nclient_secret = \"short\"",
                "introspection.client_secret",
            ),
            (
                "[[access_control.rules]]\ndomain = \"a.org\"\nroles = [\"root\"]",
                "access_control.rules",
            ),
            ("[webauthn]\nrp_name = \"\"", "webauthn.rp_name"),
            ("[webauthn]\nrp_id = \"example.org\"", "webauthn.rp_id"),
            ("[smtp]\nhost = \"smtp://x\"", "smtp.host"),
            ("[smtp]\nhost = \"x.org:25\"", "smtp.host"),
            (
                "public_url = \"https://a.org\"\n[smtp]\nhost = \"x.org\"\nport = 0\nfrom = \"a@a.org\"",
                "smtp.port",
            ),
            (
                "public_url = \"https://a.org\"\n[smtp]\nhost = \"x.org\"\ntls = \"none\"\nfrom = \"a@a.org\"",
                "smtp.tls",
            ),
            (
                "public_url = \"https://a.org\"\n[smtp]\nhost = \"x.org\"",
                "smtp.from",
            ),
            (
                "public_url = \"https://a.org\"\n[smtp]\nhost = \"x.org\"\nfrom = \"a@b, c@d\"",
                "smtp.from",
            ),
            (
                "public_url = \"https://a.org\"\n[smtp]\nhost = \"x.org\"\nfrom = \"a@a.org\"\nusername = \"u\"",
                "smtp.username / smtp.password",
            ),
            ("[smtp]\nhost = \"x.org\"\nfrom = \"a@a.org\"", "public_url"),
            ("[smtp]\ntimeout = 0", "smtp.timeout"),
            ("[email]\nretry_delay = 0", "email.retry_delay"),
            ("[email]\nsite_name = \"\"", "email.site_name"),
            (
                "[registration]\nverify_email = true",
                "registration.verify_email",
            ),
            ("[resp]\nlisten = \"127.0.0.1:6380\"", "resp.password"),
            (
                "[resp]\nlisten = \"127.0.0.1:6380\"\npassword = \"short\"",
                "resp.password",
            ),
            ("[resp]\nmax_connections = 0", "resp.max_connections"),
            ("[resp]\nidle_timeout = 0", "resp.idle_timeout"),
            (
                "[resp]\ntls_cert = \"/c.pem\"",
                "resp.tls_cert / resp.tls_key",
            ),
        ] {
            assert_eq!(refused_key(text), key, "{text:?}");
        }
    }

    /// `users.redis_url` defaults to `sessions.redis_url`; regulation off needs no times.
    #[test]
    fn sections_accept_what_they_should() {
        let ok = |text: &str| Config::from_toml_str(text).unwrap_or_else(|e| panic!("{e}"));
        ok("[sessions]\nredis_url = \"redis://127.0.0.1/0\"\n[users]\nbackend = \"redis\"");
        ok("[regulation]\nmax_retries = 0\nban_time = 0");
        ok("[cookies]\ndomain = \"localhost\"");
        // `registration`: a mode, or a table with `verify_email` (which needs SMTP).
        assert_eq!(
            ok("registration = \"closed\"").registration.mode,
            RegistrationMode::Closed
        );
        let mail = "public_url = \"https://a.org\"\n[smtp]\nhost = \"localhost\"\ntls = \"none\"\nport = 2525\nfrom = \"Site <a@a.org>\"\n";
        let config = ok(&format!(
            "{mail}[registration]\nmode = \"closed\"\nverify_email = true"
        ));
        assert_eq!(
            config.registration,
            Registration {
                mode: RegistrationMode::Closed,
                verify_email: true
            }
        );
        assert_eq!(config.smtp.as_ref().map(|s| s.port), Some(2525));
        assert!(ok("").smtp.is_none());
        let resp = ok("[resp]\nlisten = \"127.0.0.1:6380\"\npassword = \"sixteen letters!\"");
        assert!(
            resp.resp
                .is_some_and(|r| r.password == "sixteen letters!" && r.tls.is_none())
        );
        assert!(Config::default().resp.is_none(), "off unless listen is set");
        // A password that is not a string is refused without being shown.
        let err = Config::from_toml_str("[resp]\npassword = 1234567890123456")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must be a string") && !err.contains("1234"),
            "{err}"
        );
        let config = ok("trusted_proxies = [\"10.0.0.0/8\", \" ::1 \"]");
        let networks: Vec<String> = config
            .trusted_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["10.0.0.0/8", "::1/128"]);
    }
}
