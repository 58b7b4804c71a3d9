//! `gatehouse user …`, `group …` and `ban …`: administration, directly on the data dir or, while a server
//! holds it, through the server's admin socket (see [`crate::admin`]).

use std::io::{BufRead, IsTerminal};

use super::{GroupCommand, UserCommand};
use crate::admin::{self, AdminRequest};
use crate::app::{App, StartError};
use crate::config::Config;
use crate::store::database::OpenError;

/// The admin request a `user` command stands for (reading the password where it needs one).
pub(super) fn request(cmd: UserCommand) -> Result<AdminRequest, String> {
    Ok(match cmd {
        UserCommand::Add { email, role, .. } => AdminRequest::AddUser {
            email,
            password: read_password()?,
            role,
        },
        UserCommand::List => AdminRequest::ListUsers,
        UserCommand::SetRole { email, role, .. } => AdminRequest::SetRole { email, role },
        UserCommand::Disable { email, .. } => AdminRequest::SetDisabled {
            email,
            disabled: true,
        },
        UserCommand::Enable { email, .. } => AdminRequest::SetDisabled {
            email,
            disabled: false,
        },
        UserCommand::Passwd { email, .. } => AdminRequest::SetPassword {
            email,
            password: read_password()?,
        },
        UserCommand::ResetMfa { email } => AdminRequest::ResetMfa { email },
    })
}

/// The admin request a `group` command stands for.
pub(super) fn group_request(cmd: GroupCommand) -> AdminRequest {
    match cmd {
        GroupCommand::Add { name } => AdminRequest::AddGroup { name },
        GroupCommand::Del { name } => AdminRequest::DeleteGroup { name },
        GroupCommand::List => AdminRequest::ListGroups,
        GroupCommand::AddMember { name, email } => AdminRequest::AddMember { name, email },
        GroupCommand::RemoveMember { name, email } => AdminRequest::RemoveMember { name, email },
    }
}

/// Executes an admin request on the data dir, or through the running server's admin socket,
/// and prints the answer.
pub(super) async fn run(request: AdminRequest, config: Config) -> Result<(), String> {
    let data_dir = config.data_dir.clone();
    let text = match App::build(config, &crate::auth::secret::SecretInputs::from_env()) {
        Ok(app) => {
            let result = admin::execute(&app, request).await;
            let closed = app.auth.store().close().await;
            let text = result?;
            closed.map_err(|e| e.to_string())?;
            text
        }
        Err(StartError::Open(OpenError::InUse(_))) => admin::send(&data_dir, &request).await?,
        Err(e) => return Err(e.to_string()),
    };
    println!("{text}");
    Ok(())
}

/// From a prompt, asked twice, on a terminal; otherwise the first line of standard input.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Repeat password: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords do not match".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err("no password on standard input".into());
        }
        Ok(password)
    }
}
