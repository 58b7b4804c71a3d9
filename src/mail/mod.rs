//! Mail: composing it ([`compose`]), queueing it durably ([`outbox`]) and sending it through
//! the SMTP relay ([`smtp`]). Nothing here decides *when* to mail; `auth::service::mail`
//! does (the account flows and notices) and queues through [`Mailer`].
//!
//! An HTTP request never waits on SMTP: a request queues a mail in the session store (one
//! atomic write, with the link it carries) and wakes the delivery task, which every
//! `gatehouse serve` runs ([`Mailer::run`]). Design: docs/adr/GD-0012-email-outbox.md.

pub(crate) mod compose;
pub(crate) mod outbox;
pub(crate) mod smtp;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub(crate) use compose::Notice;
use compose::{Composed, Composer};
use outbox::{Outbox, Pass};
use smtp::{Relay, SendError};

use crate::config::{Email, Smtp};
use crate::store::{Op, SessionStore, StoreError};

/// How often the delivery task looks for mail that others queued (another node, the CLI)
/// or whose retry is due, when nothing wakes it sooner.
const POLL: Duration = Duration::from_secs(1);

/// Every mail series, at zero from the first scrape (with SMTP or without).
pub(crate) fn register_metrics() {
    for counter in [
        "gatehouse_mail_sent_total",
        "gatehouse_mail_retried_total",
        "gatehouse_mail_failed_total",
    ] {
        metrics::counter!(counter).absolute(0);
    }
    metrics::gauge!("gatehouse_mail_queue_depth").set(0.0);
}

pub(crate) struct Mailer {
    composer: Composer,
    outbox: Outbox,
    relay: Relay,
    wake: tokio::sync::Notify,
}

impl Mailer {
    pub(crate) fn new(
        smtp: &Smtp,
        email: &Email,
        public_url: &Url,
        store: Arc<dyn SessionStore>,
    ) -> Result<Mailer, String> {
        let host = public_url.host_str().unwrap_or("localhost");
        let site = email.site_name.clone().unwrap_or_else(|| host.to_owned());
        Ok(Mailer {
            composer: Composer::new(&smtp.from, site, public_url.clone())?,
            outbox: Outbox::new(
                store,
                Duration::from_secs(email.retry_delay),
                Duration::from_secs(email.give_up_after),
            ),
            relay: Relay::new(smtp, host)?,
            wake: tokio::sync::Notify::new(),
        })
    }

    pub(crate) fn composer(&self) -> &Composer {
        &self.composer
    }

    /// The writes that queue `mail` (to be applied atomically with what it is about); call
    /// [`Mailer::wake`] once they are applied.
    pub(crate) fn enqueue_ops(&self, what: &str, mail: &Composed) -> Vec<Op> {
        self.outbox.enqueue_ops(what, mail)
    }

    /// Tells the delivery task that mail is waiting.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delivery task of a running server: sends what is due, then waits to be woken or
    /// for the next poll. Never returns.
    pub(crate) async fn run(&self) {
        // Said once per outage of the store, not once a second.
        let mut failing = false;
        loop {
            match self.outbox.deliver_due(&self.relay).await {
                Ok(pass) => {
                    if failing {
                        tracing::info!("the outbox can be read again");
                        failing = false;
                    }
                    if pass.sent + pass.failed + pass.deferred > 0 {
                        tracing::debug!(?pass, "outbox pass");
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot read the outbox; retrying every second");
                    failing = true;
                }
                Err(_) => {}
            }
            let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
        }
    }

    /// One pass over the outbox now (the CLI, which has no delivery task).
    pub(crate) async fn deliver_now(&self) -> Result<Pass, StoreError> {
        self.outbox.deliver_due(&self.relay).await
    }
}

/// What `gatehouse check-config` adds for mail: the From parses as a mailbox and the relay's
/// TLS set-up can be built (no connection is made). `Ok(None)` without SMTP.
pub(crate) fn check(config: &crate::config::Config) -> Result<Option<String>, String> {
    let (Some(smtp), Some(public_url)) = (&config.smtp, &config.public_url) else {
        return Ok(None);
    };
    let host = public_url.host_str().unwrap_or("localhost");
    Composer::new(&smtp.from, host.to_owned(), public_url.clone())?;
    Relay::new(smtp, host)?;
    Ok(Some(format!(
        "{}:{} ({:?})",
        smtp.host, smtp.port, smtp.tls
    )))
}

/// `gatehouse smtp test ADDRESS`: sends one mail straight to the relay, past the outbox, and
/// returns the relay's answer.
pub(crate) async fn send_test(config: &crate::config::Config, to: &str) -> Result<String, String> {
    let smtp = config
        .smtp
        .as_ref()
        .ok_or("smtp.host is not set: gatehouse sends no mail")?;
    let public_url = config.public_url.as_ref().ok_or("public_url is not set")?;
    let host = public_url.host_str().unwrap_or("localhost");
    let site = config
        .email
        .site_name
        .clone()
        .unwrap_or_else(|| host.to_owned());
    let composer = Composer::new(&smtp.from, site, public_url.clone())?;
    let relay = Relay::new(smtp, host)?;
    let mail = composer.test(to).map_err(|e| e.to_string())?;
    relay
        .send(&mail.from, &mail.to, &mail.raw)
        .await
        .map_err(|e| match e {
            SendError::Transient(e) => format!("the relay did not take the mail (temporary): {e}"),
            SendError::Permanent(e) => format!("the relay refused the mail: {e}"),
        })
}
