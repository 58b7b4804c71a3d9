//! Configuration: built-in defaults < the TOML file (`--config` / `GATEHOUSE_CONFIG`) <
//! `GATEHOUSE_*` environment variables (`__` between levels, e.g. `GATEHOUSE_TOKENS__ACCESS_TTL`).
//!
//! Every key is documented, with its default, in the repository's top-level `config.toml`.
//! Unknown keys and bad values stop start-up with an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
    /// Peers whose `X-Forwarded-For` is believed: addresses or CIDRs.
    pub trusted_proxies: Vec<String>,
    /// `trusted_proxies`, parsed at load.
    #[serde(skip)]
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub redis: Redis,
    pub metrics: Metrics,
    pub log: Log,
    pub limits: Limits,
    /// Forward-auth rules (`crate::auth::access`).
    pub access_control: crate::auth::access::AccessControl,
    pub introspection: Introspection,
    pub login: Login,
}

/// `POST /auth/introspect` (RFC 7662): the HTTP Basic credentials of resource servers.
/// Unset: introspection is off (404).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Introspection {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The login page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Login {
    /// Heading and window title of the login and logout pages.
    pub title: String,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            title: "Sign in".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Separate address for `GET /metrics`; unset serves it on `listen`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Access-token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh-token (and idle session) lifetime, seconds.
    pub refresh_ttl: u64,
    /// Seconds in which a repeated refresh answers with the current pair instead of
    /// counting as reuse.
    pub refresh_reuse_grace: u64,
    /// Seconds of clock skew tolerated on `exp`/`nbf`.
    pub leeway: u64,
    /// When set, put in `iss` and required on every token presented.
    pub issuer: Option<String>,
    /// When set, put in `aud` and required on every token presented.
    pub audience: Option<String>,
    /// `HS256` (shared secret), `EdDSA` or `ES256` (key pairs, published as JWKS).
    pub algorithm: TokenAlgorithm,
    /// PEM private keys for EdDSA/ES256: the first signs, all verify and are published.
    /// Empty: one key generated into the data dir.
    pub private_keys: Vec<PathBuf>,
}

/// `tokens.algorithm`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256 with the shared secret (`JWT_SECRET`, …).
    #[default]
    HS256,
    /// Ed25519.
    EdDSA,
    /// ECDSA with P-256 and SHA-256.
    ES256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    pub backend: SessionBackend,
    /// Redis URL for `backend = "redis"`: `redis://`, `rediss://` (TLS) or `redis+unix://`.
    pub redis_url: Option<String>,
    /// Entries the embedded backend keeps in memory in front of redb.
    pub cache_capacity: u64,
    /// Seconds between sweeps that delete expired entries from disk.
    pub purge_interval: u64,
    /// Live sessions a user may hold; a new one ends the oldest.
    pub max_per_user: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackend {
    Redb,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Users {
    pub backend: UserBackend,
    /// Redis URL for `backend = "redis"`; defaults to `sessions.redis_url`.
    pub redis_url: Option<String>,
}

/// Settings shared by the Redis backends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    /// Prepended to every key gatehouse writes.
    pub prefix: String,
    /// Milliseconds to establish a connection.
    pub connect_timeout_ms: u64,
    /// Milliseconds for one command; past it the request answers 503.
    pub command_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cookies {
    /// `Secure` attribute; turn off only for plain-HTTP development.
    pub secure: bool,
    /// `Domain` attribute, for one login across subdomains.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2 {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes allowed at once; each holds `memory_kib` of memory. Default: number of CPUs.
    pub max_concurrent: Option<usize>,
}

/// What a new password must be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    /// Fewest characters.
    pub min_length: usize,
    /// Lowest zxcvbn strength score accepted, 0 (anything) to 4 (very strong).
    pub min_score: u8,
}

/// Brute-force regulation of failed logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Regulation {
    /// Failed logins per account or per address within `find_time` before a ban; 0: off.
    pub max_retries: u64,
    /// Seconds over which failures are counted.
    pub find_time: u64,
    /// Seconds a ban lasts.
    pub ban_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `gatehouse=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, bytes.
    pub max_body: usize,
    /// Largest accepted request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Most headers accepted in one request.
    pub max_headers: usize,
    /// Seconds a client has to send the request head.
    pub header_read_timeout: u64,
    /// Seconds a request may take from head to response.
    pub request_timeout: u64,
    /// Open connections accepted at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            registration: Registration::Open,
            tokens: Tokens::default(),
            sessions: Sessions::default(),
            users: Users::default(),
            cookies: Cookies::default(),
            argon2: Argon2::default(),
            passwords: Passwords::default(),
            regulation: Regulation::default(),
            trusted_proxies: Vec::new(),
            trusted_networks: Vec::new(),
            redis: Redis::default(),
            metrics: Metrics::default(),
            log: Log::default(),
            limits: Limits::default(),
            access_control: Default::default(),
            introspection: Introspection::default(),
            login: Login::default(),
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            access_ttl: 900,
            refresh_ttl: 604_800,
            refresh_reuse_grace: 10,
            leeway: 30,
            issuer: None,
            audience: None,
            algorithm: Default::default(),
            private_keys: Vec::new(),
        }
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            backend: SessionBackend::Embedded,
            redis_url: None,
            cache_capacity: 10_000,
            purge_interval: 60,
            max_per_user: 100,
        }
    }
}

impl Default for Users {
    fn default() -> Self {
        Users {
            backend: UserBackend::Redb,
            redis_url: None,
        }
    }
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            prefix: "gatehouse:".to_owned(),
            connect_timeout_ms: 2_000,
            command_timeout_ms: 1_000,
        }
    }
}

impl Default for Cookies {
    fn default() -> Self {
        Cookies {
            secure: true,
            domain: None,
        }
    }
}

impl Default for Argon2 {
    fn default() -> Self {
        Argon2 {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: None,
        }
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            min_length: 8,
            min_score: 3,
        }
    }
}

impl Default for Regulation {
    fn default() -> Self {
        Regulation {
            max_retries: 5,
            find_time: 120,
            ban_time: 300,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 65_536,
            max_header_bytes: 16_384,
            max_headers: 64,
            header_read_timeout: 10,
            request_timeout: 30,
            max_connections: 4_096,
        }
    }
}

impl Config {
    /// Parses and validates a config file's text alone (no environment): what `--config`
    /// feeds through [`Config::load`], exposed for the fuzz target.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        config.validated()
    }

    /// Loads the layered configuration and validates it.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // GATEHOUSE_CONFIG names the file; it is not a key.
        figment = figment.merge(Env::prefixed("GATEHOUSE_").split("__").ignore(&["config"]));
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validated()
    }

    /// Checks every value and derives the parsed forms.
    fn validated(mut self) -> Result<Config, ConfigError> {
        self.validate()?;
        self.trusted_networks = self
            .trusted_proxies
            .iter()
            .map(|p| {
                parse_network(p).ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        &format!("{p:?} is not an address or CIDR"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("tokens.access_ttl", self.tokens.access_ttl),
            ("tokens.refresh_ttl", self.tokens.refresh_ttl),
            ("sessions.purge_interval", self.sessions.purge_interval),
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.request_timeout", self.limits.request_timeout),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be a positive number of seconds"));
            }
        }
        if self.sessions.max_per_user == 0 {
            return Err(invalid(
                "sessions.max_per_user",
                "must be at least 1 (it is how many live sessions a user may hold)",
            ));
        }
        if self.tokens.refresh_reuse_grace >= self.tokens.refresh_ttl {
            return Err(invalid(
                "tokens.refresh_reuse_grace",
                "must be shorter than tokens.refresh_ttl",
            ));
        }
        if self.passwords.min_score > 4 {
            return Err(invalid("passwords.min_score", "must be 0 to 4"));
        }
        if self.passwords.min_length == 0 || self.passwords.min_length > 128 {
            return Err(invalid("passwords.min_length", "must be 1 to 128"));
        }
        if self.regulation.max_retries > 0
            && (self.regulation.find_time == 0 || self.regulation.ban_time == 0)
        {
            return Err(invalid(
                "regulation.find_time / regulation.ban_time",
                "must be positive while regulation is on",
            ));
        }
        if self.sessions.backend == SessionBackend::Redis && self.sessions.redis_url.is_none() {
            return Err(invalid(
                "sessions.redis_url",
                "is required with sessions.backend = \"redis\"",
            ));
        }
        if self.users.backend == UserBackend::Redis && self.users_redis_url().is_none() {
            return Err(invalid(
                "users.redis_url",
                "is required with users.backend = \"redis\" (or set sessions.redis_url)",
            ));
        }
        for (key, url) in [
            ("sessions.redis_url", &self.sessions.redis_url),
            ("users.redis_url", &self.users.redis_url),
        ] {
            if let Some(url) = url {
                redis::Client::open(url.as_str()).map_err(|e| invalid(key, &e.to_string()))?;
            }
        }
        if self.redis.connect_timeout_ms == 0 || self.redis.command_timeout_ms == 0 {
            return Err(invalid(
                "redis.connect_timeout_ms / redis.command_timeout_ms",
                "must be positive",
            ));
        }
        if self.argon2.max_concurrent == Some(0) {
            return Err(invalid("argon2.max_concurrent", "must be at least 1"));
        }
        self.argon2_params()?;
        if self.limits.max_body < 1024 {
            return Err(invalid("limits.max_body", "must be at least 1024 bytes"));
        }
        if self.limits.max_header_bytes < 8192 {
            // hyper's smallest read buffer.
            return Err(invalid(
                "limits.max_header_bytes",
                "must be at least 8192 bytes",
            ));
        }
        if self.limits.max_headers == 0 {
            return Err(invalid("limits.max_headers", "must be at least 1"));
        }
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if let Some(url) = &self.public_url {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid("public_url", "must be an absolute http(s) URL"));
            }
        }
        self.access_control
            .validate()
            .map_err(|e| invalid("access_control.rules", &e))?;
        if let (Some(_), None) | (None, Some(_)) = (
            &self.introspection.client_id,
            &self.introspection.client_secret,
        ) {
            return Err(invalid(
                "introspection.client_id / introspection.client_secret",
                "set both or neither",
            ));
        }
        if self
            .introspection
            .client_secret
            .as_ref()
            .is_some_and(|s| s.len() < 16)
        {
            return Err(invalid(
                "introspection.client_secret",
                "must be at least 16 characters",
            ));
        }
        if self.login.title.trim().is_empty() || self.login.title.chars().count() > 100 {
            return Err(invalid("login.title", "must be 1 to 100 characters"));
        }
        if let Some(domain) = &self.cookies.domain {
            let bare = domain.trim_start_matches('.');
            if bare.is_empty()
                || !bare.contains('.') && bare != "localhost"
                || bare.contains(['/', ':', ' ', '*'])
            {
                return Err(invalid(
                    "cookies.domain",
                    "must be a domain name like \"example.org\"",
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", &e.to_string()))?;
        Ok(())
    }

    /// The argon2id parameters, validated.
    pub fn argon2_params(&self) -> Result<argon2::Params, ConfigError> {
        let a = &self.argon2;
        argon2::Params::new(a.memory_kib, a.iterations, a.parallelism, None)
            .map_err(|e| invalid("argon2", &e.to_string()))
    }

    /// The Redis URL of the user store: `users.redis_url`, else `sessions.redis_url`.
    pub fn users_redis_url(&self) -> Option<&str> {
        self.users
            .redis_url
            .as_deref()
            .or(self.sessions.redis_url.as_deref())
    }

    /// How many argon2 hashes may run at once.
    pub fn argon2_max_concurrent(&self) -> usize {
        self.argon2.max_concurrent.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        })
    }

    /// Path of the redb database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("gatehouse.redb")
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    }
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
            .extract::<Config>()
            .expect("config.toml loads");
        let defaults = serde_json::to_value(Config::default()).unwrap();
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
}
