//! Wiring: builds the stores, the hasher and the signer from a [`Config`] into one [`App`].

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Service;
use crate::auth::factors::{FactorKeySource, FactorRules, load_factor_key};
use crate::auth::keys::{self, KeySource};
use crate::auth::passwords::Hasher;
use crate::auth::secret::{self, SecretInputs, SecretSource};
use crate::auth::tokens::Signer;
use crate::config::{Config, SessionBackend, TokenAlgorithm, UserBackend};
use crate::mail::Mailer;
use crate::store::database::{self, Db, OpenError};
use crate::store::embedded::EmbeddedStore;
use crate::store::metered::{MeteredSessions, MeteredUsers};
use crate::store::redb_users::RedbUserStore;
use crate::store::redis::{RedisConnection, RedisSessionStore, RedisUserStore};
use crate::store::{SessionStore, StoreError, UserStore};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot start the password hashers: {0}")]
    Hasher(#[from] crate::auth::passwords::HashError),
    #[error(transparent)]
    Factors(#[from] crate::auth::factors::FactorKeyError),
    #[error("cannot set up mail: {0}")]
    Mail(String),
}

/// Everything a request handler needs, shared by all connections.
pub struct App {
    pub config: Config,
    pub auth: Service,
    /// The redb database, when a backend lives in it (for backups).
    pub db: Option<Arc<crate::store::database::Db>>,
    /// The last request that came through a proxy, for `gatehouse doctor`.
    pub(crate) last_forwarded: crate::http::forwarded::LastForwarded,
}

impl App {
    /// Opens the data dir and builds the services.
    pub fn build(config: Config, secrets: &SecretInputs) -> Result<Arc<App>, StartError> {
        database::create_private_dir(&config.data_dir).map_err(|source| OpenError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        // The redb file is opened only when a backend lives in it, so two Redis backends make
        // a stateless node; and once, when both live in it.
        let mut db = None;
        let mut database = || -> Result<Arc<Db>, OpenError> {
            if let Some(db) = &db {
                return Ok(Arc::clone(db));
            }
            let opened = Db::open(&config.data_dir, &config.database_path())?;
            db = Some(Arc::clone(&opened));
            Ok(opened)
        };
        // One connection per URL: sessions and users on the same Redis share it, so it heals
        // once for both after an outage.
        let mut connections: Vec<(String, RedisConnection)> = Vec::new();
        let mut redis = |url: &str| -> Result<RedisConnection, StoreError> {
            if let Some((_, conn)) = connections.iter().find(|(u, _)| u == url) {
                return Ok(conn.clone());
            }
            let conn = RedisConnection::open(
                url,
                &config.redis.prefix,
                Duration::from_millis(config.redis.connect_timeout_ms),
                Duration::from_millis(config.redis.command_timeout_ms),
            )?;
            connections.push((url.to_owned(), conn.clone()));
            Ok(conn)
        };
        let store: Arc<dyn SessionStore> = match &config.sessions.backend {
            SessionBackend::Embedded => MeteredSessions::wrap(
                Arc::new(EmbeddedStore::open(
                    database()?,
                    config.sessions.cache_capacity,
                    Duration::from_secs(config.sessions.purge_interval),
                )?),
                "embedded",
            ),
            SessionBackend::Redis { url } => {
                MeteredSessions::wrap(Arc::new(RedisSessionStore::new(redis(url)?)), "redis")
            }
        };
        let users: Arc<dyn UserStore> = match &config.users.backend {
            UserBackend::Redb => {
                MeteredUsers::wrap(Arc::new(RedbUserStore::open(database()?)?), "redb")
            }
            UserBackend::Redis { url } => {
                MeteredUsers::wrap(Arc::new(RedisUserStore::new(redis(url)?)), "redis")
            }
        };

        let shared_store = matches!(config.sessions.backend, SessionBackend::Redis { .. });
        let signer = if config.tokens.algorithm == TokenAlgorithm::HS256 {
            let (keys, source) = secret::load(secrets, &config.data_dir)?;
            match &source {
                SecretSource::Environment => tracing::debug!("signing secret from JWT_SECRET"),
                SecretSource::File(path) => {
                    tracing::debug!(path = %path.display(), keys = keys.len(), "signing secrets from a file");
                }
                SecretSource::Generated(path) => tracing::info!(
                    path = %path.display(),
                    "JWT_SECRET is unset: generated a random signing secret into the data dir; it is reused on later starts"
                ),
            }
            if shared_store && !secrets.is_configured() {
                tracing::warn!(
                    "sessions are shared through Redis but JWT_SECRET is unset: every node must use the same secret, or tokens of one node are refused by the others"
                );
            }
            Signer::hs256(
                &keys,
                config.tokens.leeway,
                config.tokens.issuer.as_deref(),
                config.tokens.audience.as_deref(),
            )
        } else {
            asymmetric_signer(&config, shared_store)?
        };

        let params = config.argon2.params.clone();
        if params.m_cost() < 19_456 || params.t_cost() < 2 {
            tracing::warn!(
                memory_kib = params.m_cost(),
                iterations = params.t_cost(),
                "argon2 parameters are below the OWASP minimum (m=19456 KiB, t=2)"
            );
        }
        let threads = config.argon2.max_concurrent;
        let hasher = Hasher::start(
            params,
            threads,
            threads * crate::auth::service::HASH_QUEUE_PER_THREAD,
        )?;

        let provider = crate::auth::oidc::Provider::load(&config)?;
        let factors = factor_rules(&config, secrets)?;
        let mailer = match (&config.smtp, &config.public_url) {
            (Some(smtp), Some(public_url)) => Some(Arc::new(
                Mailer::new(smtp, &config.email, public_url, store.clone())
                    .map_err(StartError::Mail)?,
            )),
            _ => None,
        };
        let mut auth = Service::new(&config, users, store, hasher, signer, provider, factors);
        if let Some(mailer) = mailer {
            auth = auth.with_mailer(mailer);
        }
        Ok(Arc::new(App {
            config,
            auth,
            db,
            last_forwarded: Default::default(),
        }))
    }
}

/// The second-factor key (GD-0010) and the WebAuthn relying party.
fn factor_rules(config: &Config, secrets: &SecretInputs) -> Result<FactorRules, StartError> {
    let (sealer, source) = load_factor_key(
        config.mfa.key_file.as_deref(),
        secrets.credentials_dir.as_deref(),
        &config.data_dir,
    )?;
    match &source {
        FactorKeySource::Configured(path) => {
            tracing::debug!(path = %path.display(), "second-factor key from a file")
        }
        FactorKeySource::DataDir(path) => {
            tracing::debug!(path = %path.display(), "second-factor key from the data dir")
        }
        FactorKeySource::Generated(path) => tracing::info!(
            path = %path.display(),
            "generated the key that seals TOTP secrets into the data dir; back it up beside the database"
        ),
    }
    if matches!(config.users.backend, UserBackend::Redis { .. })
        && !matches!(source, FactorKeySource::Configured(_))
    {
        tracing::warn!(
            "accounts are shared through Redis but mfa.key_file is unset: every node must use the same second-factor key, or a TOTP secret set up on one node does not open on the others"
        );
    }
    let rules = FactorRules::new(config, sealer)?;
    if rules.webauthn.is_none() {
        tracing::info!("public_url is unset: passkeys are off (TOTP and recovery codes work)");
    }
    Ok(rules)
}

/// The EdDSA/ES256 signer from `tokens.private_keys` or the data dir's generated key.
fn asymmetric_signer(config: &Config, shared_store: bool) -> Result<Signer, StartError> {
    let algorithm = config.tokens.algorithm;
    let (pairs, source) = keys::load(algorithm, &config.tokens.private_keys, &config.data_dir)?;
    match &source {
        KeySource::Files(n) => tracing::debug!(keys = n, ?algorithm, "signing keys from files"),
        KeySource::DataDir(path) => {
            tracing::debug!(path = %path.display(), ?algorithm, "signing key from the data dir")
        }
        KeySource::Generated(path) => tracing::info!(
            path = %path.display(), ?algorithm,
            "generated a signing key into the data dir; it is reused on later starts and published at /.well-known/jwks.json"
        ),
    }
    if shared_store && !matches!(source, KeySource::Files(_)) {
        tracing::warn!(
            "sessions are shared through Redis but tokens.private_keys is unset: every node must use the same keys, or tokens of one node are refused by the others"
        );
    }
    Signer::asymmetric(
        algorithm,
        &pairs,
        config.tokens.leeway,
        config.tokens.issuer.as_deref(),
        config.tokens.audience.as_deref(),
    )
    .map_err(|e| {
        StartError::Config(crate::config::ConfigError::Invalid {
            key: "tokens.private_keys",
            reason: e.to_string(),
        })
    })
}
