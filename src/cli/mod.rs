//! The command line: `serve`, `check-config`, `doctor`, the `user`, `group` and `ban`
//! admin commands, and `client` for the OpenID Connect provider.

mod backup;
mod client;
mod user;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::domain::Role;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A single-binary authentication server"
)]
pub struct Cli {
    /// Path of the TOML config file (before or after the subcommand).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Check a running install: config, data dir, listener, store, Redis clock, public_url
    /// against the cookie settings and the proxy headers of the last proxied request.
    Doctor,
    /// Manage accounts (passwords are read from a prompt or standard input, never arguments).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups and their members (forward-auth rules and OIDC clients admit groups).
    #[command(subcommand)]
    Group(GroupCommand),
    /// The OpenID Connect clients: list the configured ones, make a secret for a new one.
    #[command(subcommand)]
    Client(ClientCommand),
    /// List or lift the login bans of brute-force regulation.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Write a consistent copy of the database to FILE (works while the server runs).
    Backup { file: PathBuf },
    /// Replace the database with a backup (refused while a server holds the data dir).
    Restore {
        file: PathBuf,
        /// Also restore the sessions in the backup. Off by default: it would bring back every
        /// session revoked since the backup was taken.
        #[arg(long)]
        keep_sessions: bool,
    },
}

#[derive(Subcommand)]
pub enum BanCommand {
    /// List the live bans.
    List,
    /// Lift the ban on an email or an IP address (and clear its failure count).
    Lift {
        /// An email, an IP address, or a subject as listed (`user:…`, `ip:…`).
        target: String,
    },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// List the clients configured in [[oidc.clients]].
    List,
    /// Print a new random client secret and its argon2id hash (put the hash in `secret`,
    /// give the secret to the application).
    Secret,
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group (a name of a-z, 0-9, '_', '.', '-').
    Add { name: String },
    /// Delete a group; its members leave it.
    Del { name: String },
    /// List the groups with their member counts.
    List,
    /// Add the account with EMAIL to the group.
    AddMember { name: String, email: String },
    /// Take the account with EMAIL out of the group.
    RemoveMember { name: String, email: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        email: String,
        #[arg(long, default_value = "user")]
        role: Role,
    },
    /// List accounts.
    List,
    /// Change an account's role (`user` or `admin`); ends its sessions.
    SetRole { email: String, role: Role },
    /// Disable an account and end its sessions.
    Disable { email: String },
    /// Enable a disabled account.
    Enable { email: String },
    /// Set a new password; ends every session of the account.
    Passwd { email: String },
    /// Remove every second factor (TOTP, passkeys, recovery codes) of a locked-out account;
    /// ends its sessions and its logins in flight.
    ResetMfa { email: String },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = cli.config.as_deref();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => crate::serve::serve(load(path, "info")?).await,
            Command::CheckConfig => check_config(path),
            Command::Doctor => doctor(path).await,
            Command::User(cmd) => {
                // Audit events (a second-factor reset) are recorded wherever the command runs.
                let config = load(path, "warn,audit=info")?;
                user::run(user::request(cmd)?, config).await
            }
            Command::Backup { file } => backup::backup(&file, load(path, "warn")?).await,
            Command::Restore {
                file,
                keep_sessions,
            } => backup::restore(&file, keep_sessions, &load(path, "warn")?),
            Command::Client(ClientCommand::List) => client::list(&load(path, "warn")?),
            Command::Client(ClientCommand::Secret) => client::secret(&load(path, "warn")?),
            Command::Group(cmd) => user::run(user::group_request(cmd), load(path, "warn")?).await,
            Command::Ban(BanCommand::List) => {
                user::run(crate::admin::AdminRequest::ListBans, load(path, "warn")?).await
            }
            Command::Ban(BanCommand::Lift { target }) => {
                let request = crate::admin::AdminRequest::LiftBan { target };
                user::run(request, load(path, "warn")?).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::from(2)
        }
    }
}

/// Loads the config and starts logging; `default_level` applies when the config and
/// `RUST_LOG` leave the level at its default.
fn load(path: Option<&Path>, default_level: &str) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let level = if config.log.level == "info" {
        default_level
    } else {
        &config.log.level
    };
    init_logging(config.log.format, level);
    Ok(config)
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn check_config(path: Option<&Path>) -> Result<(), String> {
    let config = validate(path)?;
    println!(
        "configuration OK: listen {}, data dir {}, sessions {:?}, users {:?}",
        config.listen,
        config.data_dir.display(),
        config.sessions.backend.kind(),
        config.users.backend.kind()
    );
    Ok(())
}

/// `gatehouse doctor`: one line per check; fails (exit 2, as `check-config`) when one failed.
async fn doctor(path: Option<&Path>) -> Result<(), String> {
    use crate::doctor::{Finding, Level};
    let findings = match validate(path) {
        Ok(config) => {
            println!("{}", Finding::ok("config", "the configuration is valid"));
            crate::doctor::run(&config).await
        }
        Err(e) => vec![Finding::fail(
            "config",
            format!("{e}: fix the configuration"),
        )],
    };
    for finding in &findings {
        println!("{finding}");
    }
    match findings.iter().filter(|f| f.level == Level::Fail).count() {
        0 => Ok(()),
        1 => Err("1 check failed".into()),
        n => Err(format!("{n} checks failed")),
    }
}

/// Loads the config and reads the secrets and keys it names, without generating anything.
fn validate(path: Option<&Path>) -> Result<Config, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let secrets = crate::auth::secret::SecretInputs::from_env();
    if secrets.is_configured() {
        // Checks length and readability without generating anything.
        crate::auth::secret::load(&secrets, &config.data_dir).map_err(|e| e.to_string())?;
    }
    if !config.tokens.private_keys.is_empty() {
        // Reads and parses every configured key file.
        crate::auth::keys::load(
            config.tokens.algorithm,
            &config.tokens.private_keys,
            &config.data_dir,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(config)
}
