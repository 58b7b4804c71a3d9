//! The command line: `serve`, `check-config` and the `user` admin commands.

mod backup;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{Config, LogFormat};
use crate::store::Role;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A single-binary authentication server"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Path of the TOML config file.
    #[arg(long, env = "GATEHOUSE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ConfigArg),
    /// Validate the configuration and exit.
    CheckConfig(ConfigArg),
    /// Manage accounts (passwords are read from a prompt or standard input, never arguments).
    #[command(subcommand)]
    User(UserCommand),
    /// List or lift the login bans of brute-force regulation.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Write a consistent copy of the database to FILE (works while the server runs).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Replace the database with a backup (refused while a server holds the data dir).
    Restore {
        file: PathBuf,
        /// Also restore the sessions in the backup. Off by default: it would bring back every
        /// session revoked since the backup was taken.
        #[arg(long)]
        keep_sessions: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
pub enum BanCommand {
    /// List the live bans.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lift the ban on an email or an IP address (and clear its failure count).
    Lift {
        /// An email, an IP address, or a subject as listed (`user:…`, `ip:…`).
        target: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        email: String,
        #[arg(long, default_value = "user")]
        role: Role,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Change an account's role (`user` or `admin`); ends its sessions.
    SetRole {
        email: String,
        role: Role,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Disable an account and end its sessions.
    Disable {
        email: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Enable a disabled account.
    Enable {
        email: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set a new password; ends every session of the account.
    Passwd {
        email: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

impl UserCommand {
    fn config(&self) -> &ConfigArg {
        match self {
            UserCommand::Add { config, .. }
            | UserCommand::List { config }
            | UserCommand::SetRole { config, .. }
            | UserCommand::Disable { config, .. }
            | UserCommand::Enable { config, .. }
            | UserCommand::Passwd { config, .. } => config,
        }
    }
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(arg) => serve(&arg).await,
            Command::CheckConfig(arg) => check_config(&arg),
            Command::User(cmd) => {
                let config = load(cmd.config(), "warn")?;
                user::run(user::request(cmd)?, config).await
            }
            Command::Backup { file, config } => {
                let config = load(&config, "warn")?;
                backup::backup(&file, config).await
            }
            Command::Restore {
                file,
                keep_sessions,
                config,
            } => {
                let config = load(&config, "warn")?;
                backup::restore(&file, keep_sessions, &config)
            }
            Command::Ban(BanCommand::List { config }) => {
                let config = load(&config, "warn")?;
                user::run(crate::admin::AdminRequest::ListBans, config).await
            }
            Command::Ban(BanCommand::Lift { target, config }) => {
                let config = load(&config, "warn")?;
                user::run(crate::admin::AdminRequest::LiftBan { target }, config).await
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
fn load(arg: &ConfigArg, default_level: &str) -> Result<Config, String> {
    let config = Config::load(arg.config.as_deref()).map_err(|e| e.to_string())?;
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

async fn serve(arg: &ConfigArg) -> Result<(), String> {
    let config = load(arg, "info")?;
    let listen = config.listen;
    let app = App::build(config, &crate::auth::secret::SecretInputs::from_env())
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    raise_fd_limit();
    if let Some(handle) = crate::http::metrics::install() {
        // Histograms keep raw samples until upkeep folds them into buckets; without a
        // scraper that would grow with every request.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let metrics = match app.config.metrics.listen {
        Some(metrics_addr) => {
            let metrics_listener = TcpListener::bind(metrics_addr)
                .await
                .map_err(|e| format!("cannot listen on {metrics_addr} (metrics.listen): {e}"))?;
            let serving = crate::http::serve(
                app.clone(),
                metrics_listener,
                crate::http::router::Surface::Metrics,
                std::future::pending(),
            );
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    let admin = crate::admin::bind(&app.config.data_dir)
        .map(|socket| tokio::spawn(crate::admin::serve(app.clone(), socket)));
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "listening");
    // Both sockets are bound: tell systemd (Type=notify) that we are ready.
    notify_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("listening on {addr}")),
    ]);
    let watchdog = sd_notify::watchdog_enabled().map(|interval| tokio::spawn(watchdog(interval)));
    let shutdown = async {
        shutdown_signal().await;
        notify_systemd(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("shutting down: finishing in-flight requests"),
        ]);
    };
    crate::http::serve(
        app.clone(),
        listener,
        crate::http::router::Surface::Api,
        shutdown,
    )
    .await;
    for task in [admin, metrics].into_iter().flatten() {
        task.abort();
    }
    let _ = std::fs::remove_file(crate::admin::socket_path(&app.config.data_dir));
    app.auth
        .store()
        .close()
        .await
        .map_err(|e| format!("flushing the session store failed: {e}"))?;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: every connection is a file, and
/// the default soft limit (often 1024) would refuse connections long before
/// `limits.max_connections`.
fn raise_fd_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Sends a state change to systemd's notify socket; nothing happens without `NOTIFY_SOCKET`.
fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog (`WatchdogSec=`) at half its interval for as long as the
/// runtime schedules tasks; a stuck runtime stops the pings and systemd restarts us.
async fn watchdog(interval: std::time::Duration) {
    // tokio panics on a zero period; WATCHDOG_USEC=1 would make one.
    let mut tick = tokio::time::interval((interval / 2).max(std::time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify_systemd(&[sd_notify::NotifyState::Watchdog]);
    }
}

fn check_config(arg: &ConfigArg) -> Result<(), String> {
    let config = Config::load(arg.config.as_deref()).map_err(|e| e.to_string())?;
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
    println!(
        "configuration OK: listen {}, data dir {}, sessions {:?}, users {:?}",
        config.listen,
        config.data_dir.display(),
        config.sessions.backend,
        config.users.backend
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
