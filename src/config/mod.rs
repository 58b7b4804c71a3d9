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

pub mod access;
mod passwords;
mod server;
mod stores;
mod tokens;
mod web;

pub use passwords::{Argon2, Passwords, Regulation};
pub use server::{Limits, Log, LogFormat, Metrics};
pub use stores::{Redis, SessionBackend, Sessions, UserBackend, Users};
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
    /// Forward-auth rules (judged by `crate::auth::access`).
    pub access_control: access::AccessControl,
    pub introspection: Introspection,
    pub login: Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
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
