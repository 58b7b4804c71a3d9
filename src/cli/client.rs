//! `gatehouse client list|secret`: the OpenID Connect clients of the configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Config;
use crate::config::oidc::{ClientSecret, Consent};

/// One line per configured client.
pub(super) fn list(config: &Config) -> Result<(), String> {
    if config.oidc.clients.is_empty() {
        println!("no OpenID Connect clients are configured ([[oidc.clients]] in the config file)");
        return Ok(());
    }
    println!(
        "{:<24}  {:<12}  {:<8}  {:<6}  {:<24}  redirect_uris",
        "id", "type", "consent", "alg", "groups"
    );
    for c in &config.oidc.clients {
        let kind = match &c.secret {
            None => "public",
            Some(ClientSecret::Plain(_)) => "secret",
            Some(ClientSecret::Argon2(_)) => "secret-hash",
        };
        let consent = match c.consent {
            Consent::Explicit => "explicit",
            Consent::Implicit => "implicit",
        };
        let groups = if c.groups.is_empty() {
            "(everyone)".to_owned()
        } else {
            c.groups.join(",")
        };
        println!(
            "{:<24}  {:<12}  {:<8}  {:<6}  {:<24}  {}",
            c.id,
            kind,
            consent,
            format!("{:?}", c.id_token_signing_alg),
            groups,
            c.redirect_uris.join(" ")
        );
    }
    Ok(())
}

/// A new secret (256 random bits) and its argon2id hash with the configured parameters.
pub(super) fn secret(config: &Config) -> Result<(), String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| format!("cannot gather randomness: {e}"))?;
    let secret = URL_SAFE_NO_PAD.encode(raw);
    let hash = crate::auth::passwords::hash_once(&secret, &config.argon2.params)
        .map_err(|e| e.to_string())?;
    println!("secret: {secret}");
    println!("hash:   {hash}");
    println!();
    println!("Give the secret to the application; put the hash in its [[oidc.clients]] table:");
    println!("secret = \"{hash}\"");
    Ok(())
}
