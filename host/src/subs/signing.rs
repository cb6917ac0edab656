//! Keys: the Ed25519 webhook signing keys (rotatable; retired keys stay in the JWKS until they
//! can no longer have signed a delivery in the replay window) and the HMAC secret for callback
//! and claim tokens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One signing key as persisted.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    /// The 32-byte Ed25519 secret, base64.
    pub secret: String,
    pub created_ms: u64,
    /// When it stopped signing (then kept for the replay window).
    pub retired_ms: Option<u64>,
}

/// Everything the key stream holds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct KeyRing {
    pub keys: Vec<StoredKey>,
    /// HMAC secret for tokens, base64.
    pub token_secret: String,
}

fn kid_for(key: &SigningKey) -> String {
    let d = Sha256::digest(key.verifying_key().as_bytes());
    format!("ds_{}", &URL_SAFE_NO_PAD.encode(d)[..16])
}

fn new_key(now_ms: u64) -> StoredKey {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    StoredKey {
        kid: kid_for(&key),
        secret: STANDARD.encode(key.to_bytes()),
        created_ms: now_ms,
        retired_ms: None,
    }
}

impl KeyRing {
    /// A fresh ring with one signing key and a token secret.
    pub fn generate(now_ms: u64) -> KeyRing {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        KeyRing {
            keys: vec![new_key(now_ms)],
            token_secret: STANDARD.encode(secret),
        }
    }

    fn active(&self) -> &StoredKey {
        self.keys
            .iter()
            .rev()
            .find(|k| k.retired_ms.is_none())
            .unwrap_or(&self.keys[self.keys.len() - 1])
    }

    pub fn active_kid(&self) -> String {
        self.active().kid.clone()
    }

    fn signing_key(k: &StoredKey) -> Option<SigningKey> {
        let bytes: [u8; 32] = STANDARD.decode(&k.secret).ok()?.try_into().ok()?;
        Some(SigningKey::from_bytes(&bytes))
    }

    /// Rotates when the active key is older than `rotate_after_ms`, and drops retired keys older
    /// than `keep_retired_ms`. Returns whether anything changed.
    /// Whether [`KeyRing::rotate_if_due`] would change the ring at `now_ms` (without generating
    /// a key to find out).
    pub fn rotation_due(&self, now_ms: u64, rotate_after_ms: u64, keep_retired_ms: u64) -> bool {
        now_ms.saturating_sub(self.active().created_ms) >= rotate_after_ms
            || self
                .keys
                .iter()
                .any(|k| k.retired_ms.is_some_and(|r| now_ms.saturating_sub(r) >= keep_retired_ms))
    }

    pub fn rotate_if_due(&mut self, now_ms: u64, rotate_after_ms: u64, keep_retired_ms: u64) -> bool {
        let mut changed = false;
        if now_ms.saturating_sub(self.active().created_ms) >= rotate_after_ms {
            for k in self.keys.iter_mut().filter(|k| k.retired_ms.is_none()) {
                k.retired_ms = Some(now_ms);
            }
            self.keys.push(new_key(now_ms));
            changed = true;
        }
        let before = self.keys.len();
        self.keys
            .retain(|k| k.retired_ms.is_none_or(|r| now_ms.saturating_sub(r) < keep_retired_ms));
        changed || self.keys.len() != before
    }

    /// `Webhook-Signature` for `body` at `t` (Unix seconds): `t=..,kid=..,ed25519=..`.
    pub fn sign(&self, t: u64, body: &[u8]) -> String {
        let k = self.active();
        let mut msg = format!("{t}.").into_bytes();
        msg.extend_from_slice(body);
        let sig = Self::signing_key(k)
            .map(|sk| URL_SAFE_NO_PAD.encode(sk.sign(&msg).to_bytes()))
            .unwrap_or_default();
        format!("t={t},kid={},ed25519={sig}", k.kid)
    }

    /// The JWK Set of every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(|k| {
                let sk = Self::signing_key(k)?;
                Some(serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": k.kid, "use": "sig", "alg": "EdDSA",
                    "x": URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes()),
                }))
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    fn mac(&self, payload: &str) -> String {
        let secret = STANDARD.decode(&self.token_secret).unwrap_or_default();
        let mut m = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        m.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    /// A bearer token for one wake of one subscription.
    pub fn token(&self, sub: &str, generation: u64, wake_id: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::json!({"sub": sub, "gen": generation, "wake": wake_id}).to_string());
        let mac = self.mac(&payload);
        format!("{payload}.{mac}")
    }

    /// Verifies a token's signature; returns (subscription, generation, wake id).
    pub fn verify(&self, token: &str) -> Option<(String, u64, String)> {
        let (payload, mac) = token.split_once('.')?;
        let want = self.mac(payload);
        if !constant_time_eq(want.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        Some((v["sub"].as_str()?.to_string(), v["gen"].as_u64()?, v["wake"].as_str()?.to_string()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn signatures_verify_with_the_published_key() {
        let ring = KeyRing::generate(0);
        let header = ring.sign(1700, b"{\"a\":1}");
        let jwks = ring.jwks();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let vk = VerifyingKey::from_bytes(&URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap()).unwrap();
        let sig = header.split("ed25519=").nth(1).unwrap();
        let sig = Signature::from_bytes(&URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap());
        assert!(vk.verify(b"1700.{\"a\":1}", &sig).is_ok());
        assert!(header.starts_with("t=1700,kid=ds_"));
    }

    #[test]
    fn tokens_and_rotation() {
        let mut ring = KeyRing::generate(0);
        let t = ring.token("s", 3, "w1");
        assert_eq!(ring.verify(&t), Some(("s".into(), 3, "w1".into())));
        assert_eq!(ring.verify(&format!("{t}x")), None);
        let old = ring.active_kid();
        assert!(!ring.rotation_due(10, 50, 1000));
        assert!(ring.rotation_due(100, 50, 1000));
        assert!(ring.rotate_if_due(100, 50, 1000));
        assert!(!ring.rotation_due(120, 50, 1000), "just rotated");
        assert!(ring.rotation_due(1200, 1_000_000, 1000), "the retired key's time is up");
        assert_ne!(ring.active_kid(), old);
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2, "the retired key stays published");
        assert!(ring.rotate_if_due(2000, 1_000_000, 1000));
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1, "then it is dropped");
    }
}
