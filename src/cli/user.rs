//! `gatehouse user …`: account administration on the data dir.

use std::io::{BufRead, IsTerminal};

use crate::app::App;
use crate::config::Config;

use super::UserCommand;

pub async fn run(cmd: UserCommand, config: Config) -> Result<(), String> {
    let app = App::build(config, std::env::var("JWT_SECRET").ok()).map_err(|e| e.to_string())?;
    let auth = &app.auth;
    let result = match cmd {
        UserCommand::Add { email, role, .. } => {
            let password = read_password()?;
            auth.create_user(&email, &password, role).await.map(|u| {
                println!(
                    "created {} ({}) with role {}",
                    u.email,
                    u.id,
                    u.role.as_str()
                );
            })
        }
        UserCommand::List { .. } => auth.list_users().await.map(|users| {
            println!(
                "{:<36}  {:<6}  {:<8}  {:<20}  email",
                "id", "role", "status", "created"
            );
            for u in users {
                println!(
                    "{:<36}  {:<6}  {:<8}  {:<20}  {}",
                    u.id,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    crate::clock::rfc3339(u.created_at),
                    u.email
                );
            }
        }),
        UserCommand::SetRole { email, role, .. } => auth.set_role(&email, role).await.map(|u| {
            println!(
                "{} now has role {}; their sessions were ended",
                u.email,
                u.role.as_str()
            )
        }),
        UserCommand::Disable { email, .. } => auth
            .set_disabled(&email, true)
            .await
            .map(|u| println!("{} is disabled; their sessions were ended", u.email)),
        UserCommand::Enable { email, .. } => auth
            .set_disabled(&email, false)
            .await
            .map(|u| println!("{} is enabled", u.email)),
        UserCommand::Passwd { email, .. } => {
            let password = read_password()?;
            auth.set_password(&email, &password)
                .await
                .map(|u| println!("password of {} changed; their sessions were ended", u.email))
        }
    };
    let closed = auth.store().close().await;
    result.map_err(|e| e.to_string())?;
    closed.map_err(|e| e.to_string())
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
