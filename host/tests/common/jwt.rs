//! JWTs as an application would mint them (the `jsonwebtoken` crate, Ed25519 and HS256 keys),
//! and the forged ones an attacker would try, for the access-control tests.

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An Ed25519 key pair and an HS256 secret.
pub struct Keys {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    secret: [u8; 32],
}

impl Keys {
    pub fn new() -> Keys {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Keys {
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
            secret: rand::random(),
        }
    }

    /// Writes a JWKS with the Ed25519 public key as `ed_kid` and the secret as `hs1`.
    pub fn write(&self, path: &std::path::Path, ed_kid: &str) {
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": ed_kid, "x": b64(&self.public)},
            {"kty": "oct", "kid": "hs1", "alg": "HS256", "k": b64(&self.secret)},
        ]});
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, jwks.to_string()).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// An EdDSA token for `scopes`, expiring `exp_in` seconds from now (negative: past).
    pub fn ed(&self, kid: &str, scopes: &[&str], exp_in: i64) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        encode(&h, &claims(scopes, exp_in), &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }

    /// An HS256 token.
    pub fn hs(&self, kid: &str, scopes: &[&str], exp_in: i64) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        encode(&h, &claims(scopes, exp_in), &EncodingKey::from_secret(&self.secret)).unwrap()
    }

    /// An EdDSA token whose header names a critical extension (`crit`) no server knows.
    pub fn ed_crit(&self, kid: &str, scopes: &[&str]) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid, "crit": ["x-ds-test"], "x-ds-test": true});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims(scopes, 300).to_string().as_bytes())
        );
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&self.pkcs8).unwrap();
        format!("{signing_input}.{}", b64(pair.sign(signing_input.as_bytes()).as_ref()))
    }

    /// Algorithm confusion: HS256, no kid, the HMAC keyed by the Ed25519 public key's bytes.
    pub fn confused(&self, scopes: &[&str]) -> String {
        let h = Header::new(Algorithm::HS256);
        encode(&h, &claims(scopes, 300), &EncodingKey::from_secret(&self.public)).unwrap()
    }
}

fn claims(scopes: &[&str], exp_in: i64) -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    serde_json::json!({"sub": "app-user", "iat": now, "exp": now + exp_in, "scopes": scopes})
}

/// `alg: none`, no signature.
pub fn unsigned(scopes: &[&str]) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(scopes, 300).to_string().as_bytes())
    )
}

/// `token` with its payload replaced by `other`'s (the signature left as it was).
pub fn with_payload_of(token: &str, other: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = other.split('.').nth(1).unwrap();
    format!("{}.{}.{}", parts[0], payload, parts[2])
}
