//! TLS for the listener (`resp.tls_cert`, `resp.tls_key`), with the rustls and ring that the
//! Redis client already brings for `rediss://`: no new TLS stack, no OpenSSL.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::RespTls;

/// The acceptor for the configured PEM files: TLS 1.2 and 1.3, no client certificates.
pub(crate) fn acceptor(tls: &RespTls) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("resp.tls_cert {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "resp.tls_cert {}: no certificate in the file",
            tls.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| format!("resp.tls_key {}: {e}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("resp.tls_cert / resp.tls_key: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
