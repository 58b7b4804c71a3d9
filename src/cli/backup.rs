//! `gatehouse backup FILE` and `gatehouse restore FILE`.

use std::path::{Path, PathBuf};

use crate::admin::{self, AdminRequest};
use crate::app::{App, StartError};
use crate::config::Config;
use crate::store::backup::{self, Contents};
use crate::store::database::{self, OpenError};

/// Copies the database to `file`: directly, or through the running server, which writes the
/// snapshot into its data dir for us to move.
pub(super) async fn backup(file: &Path, config: Config) -> Result<(), String> {
    let dest = absolute(file)?;
    let data_dir = config.data_dir.clone();
    match App::build(config, &crate::auth::secret::SecretInputs::from_env()) {
        Ok(app) => {
            let result = admin::execute(&app, AdminRequest::Backup { dest }).await;
            app.auth.store().close().await.map_err(|e| e.to_string())?;
            println!("{}", result?);
        }
        Err(StartError::Open(OpenError::InUse(_))) => {
            let data_dir = std::fs::canonicalize(&data_dir).map_err(|e| e.to_string())?;
            let staged = data_dir.join(format!("backup-{}.redb", std::process::id()));
            let answer = admin::send(
                &data_dir,
                &AdminRequest::Backup {
                    dest: staged.clone(),
                },
            )
            .await;
            let moved = answer.and_then(|_| move_file(&staged, &dest));
            let _ = std::fs::remove_file(&staged);
            moved?;
            println!(
                "backup written to {} (taken by the running server)",
                dest.display()
            );
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

/// Replaces the database with `file`, holding the data dir's lock while it prepares the
/// copy so that no server runs on it meanwhile.
pub(super) fn restore(file: &Path, keep_sessions: bool, config: &Config) -> Result<(), String> {
    let users = backup::inspect(file).map_err(|e| e.to_string())?;
    let target = config.database_path();
    let held = match database::open(&config.data_dir, &target) {
        Ok(db) => db,
        Err(OpenError::InUse(_)) => {
            return Err(format!(
                "refusing to restore: a server holds {}; stop it first",
                config.data_dir.display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let source = redb::Database::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let staged = config.data_dir.join("gatehouse.redb.restore");
    let contents = if keep_sessions {
        Contents::Everything
    } else {
        Contents::UsersOnly
    };
    backup::copy_database(&source, &staged, contents).map_err(|e| e.to_string())?;
    drop(held);
    std::fs::rename(&staged, &target).map_err(|e| e.to_string())?;
    println!(
        "restored {users} users from {}{}",
        file.display(),
        if keep_sessions {
            " with their sessions"
        } else {
            "; everyone logs in again"
        }
    );
    Ok(())
}

fn absolute(file: &Path) -> Result<PathBuf, String> {
    std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Moves the server's staged copy (mode 0600) to `to`: a rename, or across filesystems a copy
/// into a new private file beside `to`, synced, then renamed; never a window in which the
/// copy is readable by others.
fn move_file(from: &Path, to: &Path) -> Result<(), String> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let io = |e: std::io::Error| format!("cannot write {}: {e}", to.display());
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let copied = (|| {
        let mut out = crate::files::create_private(&partial)?;
        std::io::copy(&mut std::fs::File::open(from)?, &mut out)?;
        out.sync_all()?;
        std::fs::rename(&partial, to)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    copied.map_err(io)?;
    std::fs::remove_file(from).map_err(io)
}
