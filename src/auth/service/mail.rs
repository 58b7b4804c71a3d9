//! The emailed links and notices: password reset, address verification, email change,
//! invitations, and the notices of account changes.
//!
//! Links (`crate::domain::link`): one live link per user and slot in the session store, where
//! every node sees it; the store holds the token's hash; using a link is a compare-and-set
//! that deletes it, so it works once; a newer link replaces the record and so kills the
//! older. A link works only while the account still has the email it was made for, and a
//! password link only while the credentials it was made under are current.
//!
//! No enumeration: `POST /auth/password/forgot` and `/auth/verify/resend` only check the
//! address's syntax and hand the request to [`Service::run_mail_requests`], which looks the
//! account up off the request path. The answer is the same, after the same work, whether
//! or not the account exists, and it never waits on the store or on SMTP.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::{AuthError, ClientInfo, MAX_WRITE_ATTEMPTS, Service, decode};
use crate::auth::tokens::AccessClaims;
use crate::clock::now_secs;
use crate::domain::link::{self, LinkRecord, Purpose, Slot};
use crate::domain::session::encode;
use crate::domain::{Role, User, check_email, display_email, normalize_email};
use crate::mail::{Mailer, Notice};
use crate::store::{Op, Swap, UserStoreError, keys};

/// Forgot and resend requests waiting for the lookup; beyond it, requests are shed (503).
pub(super) const MAIL_REQUEST_QUEUE: usize = 1024;

/// A request for a link by email address, answered off the request path.
#[derive(Debug)]
pub(crate) enum MailRequest {
    Forgot(String),
    Resend(String),
}

/// What an admin gets from `gatehouse user invite`.
#[derive(Debug)]
pub(crate) struct Invitation {
    pub(crate) user: User,
    pub(crate) link: String,
    /// The link was queued for mailing too.
    pub(crate) mailed: bool,
}

impl Service {
    fn mailer(&self) -> Result<&Mailer, AuthError> {
        self.mailer.as_deref().ok_or(AuthError::MailOff)
    }

    /// The mailer, for the server's delivery task and the CLI.
    pub(crate) fn mail(&self) -> Option<&Mailer> {
        self.mailer.as_deref()
    }

    /// `POST /auth/password/forgot`: queues the request; the answer is the same whether or
    /// not the account exists.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AuthError> {
        self.mailer()?;
        check_email(email).map_err(AuthError::InvalidEmail)?;
        self.request_mail(MailRequest::Forgot(email.to_owned()))
    }

    /// `POST /auth/verify/resend`: as [`Service::forgot_password`], for a verification link.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        self.mailer()?;
        check_email(email).map_err(AuthError::InvalidEmail)?;
        self.request_mail(MailRequest::Resend(email.to_owned()))
    }

    fn request_mail(&self, request: MailRequest) -> Result<(), AuthError> {
        use tokio::sync::mpsc::error::TrySendError;
        self.mail_requests.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => {
                tracing::warn!(
                    event = "mail_requests_shed",
                    "too many link requests waiting"
                );
                AuthError::Busy
            }
            TrySendError::Closed(_) => AuthError::Internal("the mail request task stopped".into()),
        })
    }

    /// Answers forgot and resend requests, one at a time, for as long as the server runs
    /// (`gatehouse serve` spawns it once; later calls return at once).
    pub async fn run_mail_requests(&self) {
        let inbox = self
            .mail_inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut inbox) = inbox else { return };
        while let Some(request) = inbox.recv().await {
            if let Err(e) = self.answer_mail_request(request).await {
                tracing::warn!(error = %e, "could not answer a request for a link");
            }
        }
    }

    async fn answer_mail_request(&self, request: MailRequest) -> Result<(), AuthError> {
        let (email, purpose) = match request {
            MailRequest::Forgot(email) => (email, Purpose::Reset),
            MailRequest::Resend(email) => (email, Purpose::Verify),
        };
        let Some(user) = self.users.by_email(&email).await? else {
            tracing::info!(event = "link_not_sent", purpose = ?purpose, reason = "no such account");
            return Ok(());
        };
        if user.disabled || purpose == Purpose::Verify && user.email_verified {
            tracing::info!(event = "link_not_sent", purpose = ?purpose, user_id = %user.id, reason = "disabled or already verified");
            return Ok(());
        }
        if self.mailed_recently(&user, purpose.slot()).await? {
            tracing::info!(event = "link_not_sent", purpose = ?purpose, user_id = %user.id, reason = "email.resend_interval");
            return Ok(());
        }
        self.issue_link(&user, purpose, None, true).await?;
        Ok(())
    }

    /// Whether a link of `slot` was mailed to the user within `email.resend_interval`.
    async fn mailed_recently(&self, user: &User, slot: Slot) -> Result<bool, AuthError> {
        if self.resend_interval == 0 {
            return Ok(false);
        }
        let Some(bytes) = self.store.get(&keys::link(slot, &key_id(user.id))).await? else {
            return Ok(false);
        };
        let record: LinkRecord = decode(&bytes)?;
        Ok(record.mailed && now_secs() < record.created_at.saturating_add(self.resend_interval))
    }

    /// Makes a link for `user` (replacing the live one of its slot) and, with `mail`, queues
    /// the mail carrying it in the same atomic write. Returns the link.
    pub(super) async fn issue_link(
        &self,
        user: &User,
        purpose: Purpose,
        new_email: Option<&str>,
        mail: bool,
    ) -> Result<String, AuthError> {
        let mailer = if mail { Some(self.mailer()?) } else { None };
        let token = link::new_token(user.id).map_err(|e| AuthError::Internal(e.to_string()))?;
        let url = self.link_url(purpose, &token)?;
        let now = now_secs();
        let record = LinkRecord {
            hash: crate::domain::session::token_hash(&token),
            purpose,
            email: user.email.clone(),
            new_email: new_email.map(str::to_owned),
            cv: user.credential_version,
            created_at: now,
            expires_at: now + purpose.lifetime(),
            mailed: mailer.is_some(),
        };
        let mut ops = vec![Op::set(
            keys::link(purpose.slot(), &key_id(user.id)),
            encode(&record),
            Duration::from_secs(purpose.lifetime()),
        )];
        if let Some(mailer) = mailer {
            let to = new_email.unwrap_or(&user.email);
            let composed = mailer
                .composer()
                .link(to, purpose, &url, new_email)
                .map_err(|e| AuthError::Internal(e.to_string()))?;
            ops.extend(mailer.enqueue_ops(purpose_name(purpose), &composed));
        }
        self.store.apply(ops).await?;
        if let Some(mailer) = mailer {
            mailer.wake();
        }
        tracing::info!(event = "link_issued", purpose = ?purpose, user_id = %user.id, mailed = record.mailed);
        Ok(url)
    }

    /// `<public_url>/<page>?token=T`, under public_url's path.
    fn link_url(&self, purpose: Purpose, token: &str) -> Result<String, AuthError> {
        let mut url = self.public_url.clone().ok_or(AuthError::NoPublicUrl)?;
        let path = format!("{}/{}", url.path().trim_end_matches('/'), purpose.page());
        url.set_path(&path);
        url.set_fragment(None);
        url.query_pairs_mut().clear().append_pair("token", token);
        Ok(url.into())
    }

    /// The live link `token` names, checked but not used: its user, the stored record (for
    /// the compare-and-set that uses it) and the record.
    async fn find_link(
        &self,
        token: &str,
        slot: Slot,
    ) -> Result<(User, Bytes, LinkRecord), AuthError> {
        let uid = link::token_user(token).ok_or(AuthError::InvalidLink)?;
        let Some(stored) = self.store.get(&keys::link(slot, &key_id(uid))).await? else {
            return Err(AuthError::InvalidLink);
        };
        let record: LinkRecord = decode(&stored)?;
        if !record.admits(token, now_secs()) {
            return Err(AuthError::InvalidLink);
        }
        let user = self.users.by_id(uid).await?.ok_or(AuthError::InvalidLink)?;
        let stale = slot == Slot::Password && user.credential_version != record.cv;
        if stale || !link_still_fits(&user, &record) {
            return Err(AuthError::InvalidLink);
        }
        Ok((user, stored, record))
    }

    /// Uses a link: deletes its record if it is still the one read, so of two concurrent
    /// uses one wins and the other answers [`AuthError::InvalidLink`].
    async fn use_link(&self, slot: Slot, uid: Uuid, stored: Bytes) -> Result<(), AuthError> {
        let key = keys::link(slot, &key_id(uid));
        let swap = Swap {
            key: key.clone(),
            expected: Some(stored),
            value: Vec::new(),
            ttl: Duration::from_secs(1),
        };
        if self
            .store
            .swap_then_apply(swap, vec![Op::Delete { key }])
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::InvalidLink)
        }
    }

    /// What a link page shows before the link is used (a `GET` never uses it: mail scanners
    /// open links): its purpose and the account's email.
    pub async fn peek_link(&self, token: &str, slot: Slot) -> Result<(Purpose, String), AuthError> {
        let (user, _, record) = self.find_link(token, slot).await?;
        Ok((record.purpose, record.new_email.unwrap_or(user.email)))
    }

    /// `POST /auth/password/reset` (and the `/reset` and `/invite` pages): sets the password
    /// with a reset or invitation link and ends every session of the user, in-flight logins
    /// included (`change_credentials`).
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<User, AuthError> {
        let (user, stored, record) = self.find_link(token, Slot::Password).await?;
        // A weak password answers 422 and leaves the link usable.
        let password_hash = self.hash_new(new_password, &user.email).await?;
        self.use_link(Slot::Password, user.id, stored).await?;
        let user = self
            .change_credentials(user.id, |u| {
                if u.credential_version != record.cv || !link_still_fits(u, &record) {
                    return Err(AuthError::InvalidLink);
                }
                u.password_hash = password_hash.clone();
                // The link reached the mailbox: its owner reads it.
                u.email_verified |= record.mailed;
                Ok(())
            })
            .await?;
        match record.purpose {
            Purpose::Invite => {
                tracing::info!(event = "invitation_accepted", user_id = %user.id);
            }
            _ => {
                tracing::info!(event = "password_changed", user_id = %user.id, by = "reset_link");
                crate::audit::record(
                    crate::audit::Event::new(
                        crate::audit::Kind::PasswordChanged,
                        user.id,
                        crate::audit::Actor::User,
                    )
                    .detail("reset link"),
                );
                self.notify(&user, Notice::PasswordChanged).await;
            }
        }
        Ok(user)
    }

    /// `POST /auth/verify`: marks the address confirmed.
    pub async fn verify_email(&self, token: &str) -> Result<User, AuthError> {
        let (user, stored, record) = self.find_link(token, Slot::Verify).await?;
        self.use_link(Slot::Verify, user.id, stored).await?;
        let user = self
            .modify_user(user.id, |u| {
                if !link_still_fits(u, &record) {
                    return Err(AuthError::InvalidLink);
                }
                u.email_verified = true;
                Ok(())
            })
            .await?;
        tracing::info!(event = "email_verified", user_id = %user.id);
        Ok(user)
    }

    /// `POST /auth/email`: checks the password (regulated like a login), then mails a link
    /// to the new address and a notice to the current one. Nothing changes until the link
    /// is used.
    pub async fn request_email_change(
        &self,
        claims: &AccessClaims,
        new_email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mailer()?;
        let user = self.user(claims).await?;
        self.check_current_password(&user, password, client).await?;
        check_email(new_email).map_err(AuthError::InvalidEmail)?;
        let new_email = display_email(new_email);
        if normalize_email(&new_email) == normalize_email(&user.email) {
            return Err(AuthError::InvalidEmail(
                "the new email is the account's current email".into(),
            ));
        }
        if self.users.by_email(&new_email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        self.issue_link(&user, Purpose::EmailChange, Some(&new_email), true)
            .await?;
        self.notify(
            &user,
            Notice::EmailChangeRequested {
                new_email: new_email.clone(),
            },
        )
        .await;
        Ok(())
    }

    /// `POST /auth/email/confirm`: moves the account to the new address; sessions stay.
    pub async fn confirm_email_change(&self, token: &str) -> Result<User, AuthError> {
        let (user, stored, record) = self.find_link(token, Slot::Email).await?;
        let new_email = record.new_email.clone().ok_or(AuthError::InvalidLink)?;
        self.use_link(Slot::Email, user.id, stored).await?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(mut user) = self.users.by_id(user.id).await? else {
                return Err(AuthError::InvalidLink);
            };
            if !link_still_fits(&user, &record) {
                return Err(AuthError::InvalidLink);
            }
            // The link was opened from the new mailbox.
            user.email_verified = true;
            match self.users.change_email(&user, &new_email).await {
                Ok(()) => {
                    // This node's `/auth/me` and decisions see the new address at once.
                    self.profiles.invalidate(&user.id);
                    tracing::info!(event = "email_changed", user_id = %user.id);
                    user.version += 1;
                    user.email = new_email;
                    return Ok(user);
                }
                Err(UserStoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UserStoreError::Conflict.into())
    }

    /// `gatehouse user invite`: an account without a password (or the same one again, while
    /// it has none) and an invitation link to set one, mailed when SMTP is set up.
    pub(crate) async fn invite(&self, email: &str, role: Role) -> Result<Invitation, AuthError> {
        check_email(email).map_err(AuthError::InvalidEmail)?;
        self.link_url(Purpose::Invite, "")?;
        let user = match self.users.by_email(email).await? {
            Some(user) if user.password().is_some() => {
                return Err(AuthError::Refused(format!(
                    "{} already has an account with a password; `gatehouse user reset-link {}` makes a reset link",
                    user.email, user.email
                )));
            }
            Some(user) => user,
            None => {
                let user = User {
                    id: Uuid::now_v7(),
                    email: display_email(email),
                    password_hash: String::new(),
                    role,
                    created_at: now_secs(),
                    disabled: false,
                    version: 0,
                    credential_version: 0,
                    factors: Default::default(),
                    groups: Vec::new(),
                    consents: Vec::new(),
                    email_verified: false,
                };
                self.users.create(&user).await?;
                tracing::info!(event = "user_invited", user_id = %user.id, role = role.as_str());
                user
            }
        };
        // TODO(groups): `--group G` adds the invited account to each group here, once groups
        // land (the lead's branch); `AdminRequest::Invite` already carries them.
        let mailed = self.mailer.is_some();
        let link = self
            .issue_link(&user, Purpose::Invite, None, mailed)
            .await?;
        Ok(Invitation { user, link, mailed })
    }

    /// `gatehouse user reset-link`: a password-reset link, printed for the admin to pass on
    /// (not mailed: the person can ask for a mailed one at `/auth/password/forgot`).
    pub(crate) async fn reset_link(&self, email: &str) -> Result<(User, String), AuthError> {
        let user = self.find_user(email).await?;
        let link = self.issue_link(&user, Purpose::Reset, None, false).await?;
        Ok((user, link))
    }

    /// Mails `notice` to the user, when SMTP is set up. Best effort: the change it reports
    /// has happened, so a failure to queue it is logged, never returned. The second-factor
    /// service calls it with [`Notice::SecondFactorAdded`] and [`Notice::SecondFactorRemoved`].
    pub(crate) async fn notify(&self, user: &User, notice: Notice) {
        let Some(mailer) = self.mailer.as_deref() else {
            return;
        };
        let queued = match mailer.composer().notice(&user.email, &notice) {
            Ok(mail) => {
                let ops = mailer.enqueue_ops(&format!("notice:{}", notice.name()), &mail);
                self.store.apply(ops).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match queued {
            Ok(()) => mailer.wake(),
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, notice = notice.name(), "could not queue a notice")
            }
        }
    }
}

/// The id part of a user's link keys.
fn key_id(uid: Uuid) -> String {
    uid.simple().to_string()
}

/// Whether the account is still the one the link was made for: enabled, with the email it
/// was sent for.
fn link_still_fits(user: &User, record: &LinkRecord) -> bool {
    !user.disabled && normalize_email(&user.email) == normalize_email(&record.email)
}

fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Reset => "reset",
        Purpose::Invite => "invite",
        Purpose::Verify => "verify",
        Purpose::EmailChange => "email_change",
    }
}
