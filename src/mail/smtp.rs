//! The SMTP relay, through lettre (rustls with the ring provider and the system's roots, no
//! OpenSSL): one connection per mail (gatehouse sends a few an hour), every command bounded
//! by `smtp.timeout`, and the relay's refusals sorted into those worth retrying (4xx, no
//! answer, no connection) and final ones (5xx).

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncTransport, Tokio1Executor};

use crate::config::{Smtp, SmtpTls};

/// Why a mail was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SendError {
    /// Worth retrying: a 4xx answer, a timeout, no connection, a TLS failure.
    #[error("{0}")]
    Transient(String),
    /// Final: a 5xx answer, or an address that cannot be sent to.
    #[error("{0}")]
    Permanent(String),
}

pub(crate) struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Bound on one whole delivery (connect, TLS, authentication, the mail), beyond the
    /// per-command timeout: a relay that trickles bytes cannot hold a mail forever.
    limit: Duration,
}

impl Relay {
    /// The relay of `smtp`; `hello` is the name gatehouse gives in EHLO (public_url's host).
    pub(crate) fn new(smtp: &Smtp, hello: &str) -> Result<Relay, String> {
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(&smtp.host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&smtp.host)?),
        };
        let timeout = Duration::from_secs(smtp.timeout);
        let hello = match hello.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(hello.to_owned()),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            smtp.host.trim_start_matches('[').trim_end_matches(']'),
        )
        .port(smtp.port)
        .tls(tls)
        .hello_name(hello)
        .timeout(Some(timeout));
        if let Some((user, password)) = &smtp.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Relay {
            transport: builder.build(),
            limit: timeout * 6,
        })
    }

    /// Sends one formatted message; the relay's answer on success (`250 …`).
    pub(crate) async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<String, SendError> {
        let address = |a: &str| {
            a.parse::<Address>()
                .map_err(|e| SendError::Permanent(format!("cannot send to or from {a:?}: {e}")))
        };
        let envelope = Envelope::new(Some(address(from)?), vec![address(to)?])
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        match tokio::time::timeout(self.limit, self.transport.send_raw(&envelope, raw)).await {
            Err(_) => Err(SendError::Transient(format!(
                "the relay did not finish within {} s",
                self.limit.as_secs()
            ))),
            Ok(Ok(response)) => Ok(answer(response.code(), response.message())),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
        }
    }

    /// The longest one delivery may take (for leases on queued mail).
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|e| format!("cannot set up TLS for smtp.host {host}: {e}"))
}

/// `250 2.0.0 Ok: queued as …`, as the relay said it.
fn answer<'a>(code: impl std::fmt::Display, lines: impl Iterator<Item = &'a str>) -> String {
    let text: Vec<&str> = lines.collect();
    format!("{code} {}", text.join(" "))
}
