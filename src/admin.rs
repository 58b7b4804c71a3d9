//! Account administration, shared by the CLI and a running server.
//!
//! redb lets one process hold the database. When `gatehouse serve` holds it, the `user`
//! commands send their [`AdminRequest`] over a Unix socket in the data dir (`admin.sock`,
//! mode 0600 inside the 0700 data dir, so only the service's user and root reach it) and the
//! server executes it; otherwise the CLI opens the database and executes it itself. Either
//! way the same [`execute`] runs, so the same rules apply (a password change ends sessions).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::app::App;
use crate::domain::Role;

/// Longest request line accepted on the socket.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum AdminRequest {
    AddUser {
        email: String,
        password: String,
        role: Role,
    },
    ListUsers,
    SetRole {
        email: String,
        role: Role,
    },
    SetDisabled {
        email: String,
        disabled: bool,
    },
    SetPassword {
        email: String,
        password: String,
    },
    AddGroup {
        name: String,
    },
    DeleteGroup {
        name: String,
    },
    ListGroups,
    AddMember {
        name: String,
        email: String,
    },
    RemoveMember {
        name: String,
        email: String,
    },
    /// Removes every second factor of the user and ends their sessions.
    ResetMfa {
        email: String,
    },
    ListBans,
    LiftBan {
        target: String,
    },
    /// A consistent copy of the database, written to `dest`.
    Backup {
        dest: PathBuf,
    },
    /// The summary of the last proxied request (JSON), for `gatehouse doctor`.
    LastForwarded,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AdminResponse {
    Ok(String),
    Error(String),
}

/// Path of the admin socket for a data dir.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Runs one request; the text is what the CLI prints.
pub(crate) async fn execute(app: &App, request: AdminRequest) -> Result<String, String> {
    let auth = &app.auth;
    let text = match request {
        AdminRequest::AddUser {
            email,
            password,
            role,
        } => {
            let u = auth
                .create_user(&email, &password, role)
                .await
                .map_err(|e| e.to_string())?;
            format!(
                "created {} ({}) with role {}",
                u.email,
                u.id,
                u.role.as_str()
            )
        }
        AdminRequest::ListUsers => {
            let users = auth.list_users().await.map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:<36}  {:<5}  {:<8}  {:<20}  {:<32}  groups",
                "id", "role", "status", "created", "email"
            );
            for u in users {
                out.push_str(&format!(
                    "\n{:<36}  {:<5}  {:<8}  {:<20}  {:<32}  {}",
                    u.id,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    crate::clock::rfc3339(u.created_at),
                    u.email,
                    u.groups.join(",")
                ));
            }
            out
        }
        AdminRequest::SetRole { email, role } => {
            let u = auth
                .set_role(&email, role)
                .await
                .map_err(|e| e.to_string())?;
            format!(
                "{} now has role {}; their sessions were ended",
                u.email,
                u.role.as_str()
            )
        }
        AdminRequest::SetDisabled { email, disabled } => {
            let u = auth
                .set_disabled(&email, disabled)
                .await
                .map_err(|e| e.to_string())?;
            if disabled {
                format!("{} is disabled; their sessions were ended", u.email)
            } else {
                format!("{} is enabled", u.email)
            }
        }
        AdminRequest::AddGroup { name } => {
            if auth.create_group(&name).await.map_err(|e| e.to_string())? {
                format!("created group {name}")
            } else {
                format!("group {name} already exists")
            }
        }
        AdminRequest::DeleteGroup { name } => {
            let members = auth.delete_group(&name).await.map_err(|e| e.to_string())?;
            format!("deleted group {name}; {members} member(s) left it")
        }
        AdminRequest::ListGroups => {
            let groups = auth.list_groups().await.map_err(|e| e.to_string())?;
            let mut out = format!("{:<64}  members", "group");
            for g in groups {
                out.push_str(&format!("\n{:<64}  {}", g.name, g.members));
            }
            out
        }
        AdminRequest::AddMember { name, email } => {
            let u = auth
                .add_member(&name, &email)
                .await
                .map_err(|e| e.to_string())?;
            format!("{} is now in group {name}", u.email)
        }
        AdminRequest::RemoveMember { name, email } => {
            let u = auth
                .remove_member(&name, &email)
                .await
                .map_err(|e| e.to_string())?;
            format!("{} is not in group {name}", u.email)
        }
        AdminRequest::ResetMfa { email } => {
            let u = auth
                .reset_factors(&email)
                .await
                .map_err(|e| e.to_string())?;
            format!(
                "second factors of {} removed (TOTP, passkeys, recovery codes); their sessions were ended",
                u.email
            )
        }
        AdminRequest::ListBans => {
            let bans = auth.bans().await.map_err(|e| e.to_string())?;
            let mut out = format!("{:<20}  subject", "until");
            for ban in bans {
                out.push_str(&format!(
                    "\n{:<20}  {}",
                    crate::clock::rfc3339(ban.until),
                    ban.subject
                ));
            }
            out
        }
        AdminRequest::Backup { dest } => {
            let db = app
                .db
                .clone()
                .ok_or("both backends are in Redis: back up Redis instead (see README)")?;
            let target = dest.clone();
            let users = tokio::task::spawn_blocking(move || {
                crate::store::backup::copy_database(
                    &*db.get()?,
                    &target,
                    crate::store::backup::Contents::Everything,
                )
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            format!("backup of {users} users written to {}", dest.display())
        }
        AdminRequest::LiftBan { target } => {
            let lifted = auth.lift_ban(&target).await.map_err(|e| e.to_string())?;
            if lifted.is_empty() {
                format!("no live ban on {target}; its failure count was cleared")
            } else {
                format!("lifted: {}", lifted.join(", "))
            }
        }
        AdminRequest::LastForwarded => {
            serde_json::to_string(&app.last_forwarded.get()).map_err(|e| e.to_string())?
        }
        AdminRequest::SetPassword { email, password } => {
            let u = auth
                .set_password(&email, &password)
                .await
                .map_err(|e| e.to_string())?;
            format!("password of {} changed; their sessions were ended", u.email)
        }
    };
    Ok(text)
}

#[cfg(unix)]
pub(crate) type Listener = tokio::net::UnixListener;
#[cfg(not(unix))]
pub type Listener = ();

/// Opens the admin socket (before the server says it is listening, so a `user` command run
/// right after start-up finds it). Failing is logged, not fatal: the HTTP API does not
/// depend on it.
#[cfg(unix)]
pub(crate) fn bind(data_dir: &Path) -> Option<Listener> {
    let path = socket_path(data_dir);
    // We hold the database lock, so a socket file left here is from a dead process.
    let _ = std::fs::remove_file(&path);
    match bind_private(data_dir, &path) {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot open the admin socket; `gatehouse user` commands will not work while the server runs");
            None
        }
    }
}

/// Binds the socket in a new 0700 directory, makes it 0600 and only then moves it to `path`:
/// `bind` creates the file with the process umask's mode, so binding at `path` and narrowing
/// after would leave a moment in which others might connect.
#[cfg(unix)]
fn bind_private(data_dir: &Path, path: &Path) -> std::io::Result<Listener> {
    use std::os::unix::fs::PermissionsExt;
    let staging = data_dir.join(format!(".admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let mut dir = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(&staging)?;
    let staged = staging.join("admin.sock");
    let bound = tokio::net::UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

#[cfg(not(unix))]
pub fn bind(_data_dir: &Path) -> Option<Listener> {
    None
}

/// Serves the admin socket until the task is dropped.
#[cfg(unix)]
pub(crate) async fn serve(app: Arc<App>, listener: Listener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES);
            let response = match reader.read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<AdminRequest>(&line) {
                    Ok(request) => match execute(&app, request).await {
                        Ok(text) => AdminResponse::Ok(text),
                        Err(e) => AdminResponse::Error(e),
                    },
                    Err(e) => AdminResponse::Error(format!("bad admin request: {e}")),
                },
                Err(e) => AdminResponse::Error(format!("cannot read the admin request: {e}")),
            };
            let mut out = serde_json::to_vec(&response).unwrap_or_default();
            out.push(b'\n');
            let _ = write.write_all(&out).await;
        });
    }
}

#[cfg(not(unix))]
pub async fn serve(_app: Arc<App>, _listener: Listener) {}

/// Sends one request to the server holding `data_dir`.
#[cfg(unix)]
pub(crate) async fn send(data_dir: &Path, request: &AdminRequest) -> Result<String, String> {
    let path = socket_path(data_dir);
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        format!(
            "the database is in use, and the server's admin socket {} does not answer: {e}",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    match serde_json::from_str::<AdminResponse>(&answer) {
        Ok(AdminResponse::Ok(text)) => Ok(text),
        Ok(AdminResponse::Error(e)) => Err(e),
        Err(_) => Err("the server gave no answer on the admin socket".into()),
    }
}

#[cfg(not(unix))]
pub async fn send(_data_dir: &Path, _request: &AdminRequest) -> Result<String, String> {
    Err("the database is in use by a running server; stop it first".into())
}
