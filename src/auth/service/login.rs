//! Checking secrets under regulation: the password login, client secrets.

use super::factors::LoginOutcome;
use super::stats::LoginResult;
use super::{AuthError, ClientInfo, Service};
use crate::auth::policy;
use crate::auth::regulation::{self, Refusal, Reservation};
use crate::domain::User;
use crate::domain::factors::Amr;

impl Service {
    /// `POST /auth/login`. Unknown emails, wrong passwords and disabled accounts all answer
    /// [`AuthError::InvalidCredentials`] after the same argon2 work; a banned account or
    /// address answers [`AuthError::Regulated`] before any. A right password of an account
    /// with a second factor leads to the second step ([`LoginOutcome::SecondFactor`]).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let ip = client.ip.as_deref();
        let attempt = self
            .reserve(regulation::subjects(Some(email), ip), "login")
            .await?;
        // No stored password is over the limit; refusing before hashing bounds the work.
        let found = if password.len() > policy::MAX_PASSWORD_BYTES {
            None
        } else {
            let user = self.users.by_email(email).await?;
            let check = match self
                .hasher
                .verify(password, user.as_ref().and_then(User::password))
                .await
            {
                Ok(check) => check,
                Err(e) => {
                    // Nothing was checked: the attempt does not count.
                    self.regulation.withdraw(attempt).await?;
                    return Err(e.into());
                }
            };
            user.filter(|u| check.matches && !u.disabled)
                .map(|u| (u, check.needs_rehash))
        };
        let Some((user, needs_rehash)) = found else {
            tracing::info!(event = "login_failed", ip = ip.unwrap_or("-"));
            self.count_login(LoginResult::Failed);
            self.regulation.failed(attempt).await?;
            return Err(AuthError::InvalidCredentials);
        };
        // The password was right: it counts as such, whatever comes next.
        if self.registration.verify_email && !user.email_verified {
            self.regulation.succeeded(attempt).await?;
            tracing::info!(event = "login_unverified", user_id = %user.id);
            return Err(AuthError::EmailNotVerified);
        }
        if needs_rehash {
            self.upgrade_hash(&user, password).await;
        }
        if user.factors.any() {
            // A right password does not forget failed codes (see `check_current_password`).
            self.regulation.withdraw(attempt).await?;
            return Ok(LoginOutcome::SecondFactor(self.second_step(&user).await?));
        }
        self.regulation.succeeded(attempt).await?;
        // A change that raced this login (its password checked against the old hash)
        // makes `start_session` fail: the credentials are no longer right.
        let issued = match self.start_session(&user, client, Amr::PWD).await {
            Err(AuthError::SessionEnded) => return Err(AuthError::InvalidCredentials),
            other => other?,
        };
        tracing::info!(event = "login_ok", user_id = %user.id, ip = client.ip.as_deref().unwrap_or("-"));
        self.count_login(LoginResult::Ok);
        Ok(LoginOutcome::Signed(Box::new(user), issued))
    }

    /// Counts an attempt at a secret under `subjects` before it is checked; a banned
    /// subject, or one this attempt would take past the limit, answers
    /// [`AuthError::Regulated`] without any check.
    pub(super) async fn reserve(
        &self,
        subjects: Vec<String>,
        what: &str,
    ) -> Result<Reservation, AuthError> {
        match self.regulation.reserve(subjects).await? {
            Ok(attempt) => Ok(attempt),
            Err(Refusal::Busy) => {
                tracing::info!(event = "attempts_shed", what);
                Err(AuthError::Busy)
            }
            Err(Refusal::Banned(retry_after)) => {
                if what == "login" {
                    tracing::info!(event = "login_regulated", retry_after);
                    metrics::counter!("gatehouse_logins_total", "result" => "regulated")
                        .increment(1);
                } else {
                    tracing::info!(event = "attempt_regulated", what, retry_after);
                }
                Err(AuthError::Regulated { retry_after })
            }
        }
    }

    /// Checks a client secret (introspection today; OIDC clients next) under regulation of
    /// the client address: `matches` runs only when the address may try.
    pub async fn check_client_secret(
        &self,
        ip: Option<&str>,
        matches: impl FnOnce() -> bool,
    ) -> Result<(), AuthError> {
        if self.check_secret("client_secret", ip, matches).await? {
            Ok(())
        } else {
            Err(AuthError::WrongClientSecret)
        }
    }

    /// Checks a shared secret that has no account (a client secret, the RESP listener's
    /// password) under regulation of the client address `ip`: `matches` runs only when the
    /// address may try, and a `false` counts as a failure. `what` names it in the logs.
    pub(crate) async fn check_secret(
        &self,
        what: &'static str,
        ip: Option<&str>,
        matches: impl FnOnce() -> bool,
    ) -> Result<bool, AuthError> {
        let attempt = self.reserve(regulation::subjects(None, ip), what).await?;
        if matches() {
            self.regulation.succeeded(attempt).await?;
            Ok(true)
        } else {
            self.regulation.failed(attempt).await?;
            Ok(false)
        }
    }
}
