//! The WebAuthn answers a browser sends (`POST /auth/mfa/passkeys`, `POST /auth/passkey/login`):
//! the request bodies parsed as the handlers parse them (`http::bodies::{PasskeyRegistration,
//! PasskeyAssertion}`, webauthn-rs' credential types inside), then, on whatever parsed,
//! webauthn-rs' verification against a real ceremony of a fixed relying party (registration
//! and discoverable sign-in), which takes apart the client data JSON, the CBOR attestation
//! object and the authenticator data. Must never panic.
#![no_main]

use std::sync::OnceLock;

use gatehouse::http::bodies::{PasskeyAssertion, PasskeyRegistration};
use libfuzzer_sys::fuzz_target;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration as Registration, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

struct Party {
    webauthn: Webauthn,
    registration: Registration,
    discoverable: DiscoverableAuthentication,
    /// A stored passkey (an ES256 key from webauthn-rs' own tests), for the assertion path.
    passkey: Passkey,
}

const PASSKEY: &str = r#"{"cred":{"cred_id":"uZcVDBVS68E_MtAgeQpElJxldF_6cY9sSvbWqx_qRh8wiu42lyRBRmh5yFeD_r9k130dMbFHBHI9RTFgdJQIzQ","cred":{"type_":"ES256","key":{"EC_EC2":{"curve":"SECP256R1","x":[194,126,127,109,252,23,131,21,252,6,223,99,44,254,140,27,230,17,94,5,133,28,104,41,144,69,171,149,161,26,200,243],"y":[143,123,183,156,24,178,21,248,117,159,162,69,171,52,188,252,26,59,6,47,103,92,19,58,117,103,249,0,219,8,95,196]}}},"counter":2,"transports":null,"user_verified":true,"backup_eligible":false,"backup_state":false,"registration_policy":"required","extensions":{"cred_protect":"NotRequested","hmac_create_secret":"NotRequested","appid":"NotRequested","cred_props":"Ignored"},"attestation":{"data":"None","metadata":"None"},"attestation_format":"None"}}"#;

fn party() -> &'static Party {
    static PARTY: OnceLock<Party> = OnceLock::new();
    PARTY.get_or_init(|| {
        let origin = Url::parse("http://localhost:8080").expect("origin");
        let webauthn = WebauthnBuilder::new("localhost", &origin)
            .expect("builder")
            .build()
            .expect("webauthn");
        let (_, registration) = webauthn
            .start_passkey_registration(Uuid::nil(), "ada@example.org", "Ada", None)
            .expect("registration");
        let (_, discoverable) = webauthn
            .start_discoverable_authentication()
            .expect("discoverable");
        let passkey = serde_json::from_str(PASSKEY).expect("a stored passkey");
        Party {
            webauthn,
            registration,
            discoverable,
            passkey,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let party = party();
    if let Ok(body) = serde_json::from_slice::<PasskeyRegistration>(data) {
        let _ = party
            .webauthn
            .finish_passkey_registration(&body.credential, &party.registration);
    }
    if let Ok(body) = serde_json::from_slice::<PasskeyAssertion>(data) {
        let _ = party
            .webauthn
            .identify_discoverable_authentication(&body.credential);
        // Serialised state round-trips (as the session store keeps it): a fresh copy per run.
        if let Ok(state) = serde_json::to_vec(&party.discoverable)
            .and_then(|v| serde_json::from_slice::<DiscoverableAuthentication>(&v))
        {
            let _ = party.webauthn.finish_discoverable_authentication_v2(
                &body.credential,
                state,
                &party.passkey,
            );
        }
    }
});
