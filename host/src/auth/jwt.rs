//! Application-minted JWTs: verified against the keys of a JWKS file (`auth.jwt_keys_file`,
//! followed like the token file, so keys rotate without a restart), each key bound to one
//! algorithm by its type (an Ed25519 `OKP` key: EdDSA only; an `oct` secret: HS256 only), so a
//! token can never choose how it is checked (`alg: none` and algorithm confusion are refused).
//! Their `scopes` claim uses the access tokens' scope syntax. Knows nothing of HTTP.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::Deserialize;

use super::scope::Scope;
use super::tokens::{Grant, JwtIssuer};
use super::watched::Watched;

/// Why a JWT was not accepted (the 401's detail; never the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed JWT")]
    Malformed,
    #[error("the JWT's algorithm is not accepted (EdDSA or HS256, as its key says)")]
    Algorithm,
    #[error("no key for this JWT (kid and algorithm)")]
    UnknownKey,
    #[error("the JWT's signature does not verify")]
    Signature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet (nbf)")]
    NotYetValid,
    #[error("the JWT's claims are not accepted: {0}")]
    Claims(String),
    #[error("the JWT names critical header extensions (crit), which this server does not understand")]
    Critical,
}

/// Errors of the keys file.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("JWT keys file {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("JWT keys file {path} is not a JWKS ({{\"keys\": [...]}}): {source}")]
    Format {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("JWT keys file {path}: key {index}: {reason}")]
    Key {
        path: std::path::PathBuf,
        index: usize,
        reason: &'static str,
    },
}

/// One verification key and the only algorithm it checks.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    decoding: DecodingKey,
    /// SHA-256 of its algorithm and key material, hex: names the key in the token file (for
    /// the tokens a JWT issues) without storing a secret.
    thumbprint: String,
}

fn thumbprint(alg: Algorithm, material: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{alg:?}:{material}").as_bytes());
    d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a JWT's header names critical extensions (RFC 7515 section 4.1.11): this server
/// understands none, so such a JWT must be refused.
fn names_critical(token: &str) -> bool {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

struct KeySet {
    keys: Vec<Key>,
}

fn load(path: &Path) -> Result<KeySet, KeysError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        // Removed while the server runs: no key, so no JWT is accepted (fails closed). At
        // startup a missing file is refused by `JwtVerifier::open`.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeySet { keys: Vec::new() }),
        Err(source) => {
            return Err(KeysError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|source| KeysError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |index, reason| KeysError::Key {
        path: path.to_path_buf(),
        index,
        reason,
    };
    let mut keys = Vec::with_capacity(set.keys.len());
    for (index, jwk) in set.keys.iter().enumerate() {
        // The key's type decides its algorithm; a key whose `alg` says otherwise is refused.
        let (alg, material) = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => (Algorithm::EdDSA, &p.x),
            AlgorithmParameters::OctetKey(p) if p.value.len() >= 43 => (Algorithm::HS256, &p.value),
            AlgorithmParameters::OctetKey(_) => return Err(bad(index, "an HS256 secret needs at least 32 bytes")),
            _ => return Err(bad(index, "only Ed25519 (kty OKP) and HS256 (kty oct) keys are accepted")),
        };
        if let Some(declared) = jwk.common.key_algorithm {
            if declared.to_string() != format!("{alg:?}") {
                return Err(bad(index, "the key's alg does not match its type"));
            }
        }
        let decoding = DecodingKey::from_jwk(jwk).map_err(|_| bad(index, "the key material does not decode"))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            decoding,
            thumbprint: thumbprint(alg, material),
        });
    }
    Ok(KeySet { keys })
}

/// The claims this server reads (`exp` and `nbf` are checked by the library).
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    /// Seconds since the epoch (required; checked on the server's clock, see [`crate::clock`]).
    #[serde(default)]
    exp: Option<u64>,
    /// Not before, seconds since the epoch (checked on the server's clock).
    #[serde(default)]
    nbf: Option<u64>,
    /// Scopes in the access tokens' syntax, e.g. `["chat/:read,append"]`.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// The same as one space-separated string (OAuth's `scope`).
    #[serde(default)]
    scope: Option<String>,
}

/// What a JWT must satisfy besides its signature.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Required `iss` (empty: not checked).
    pub issuer: String,
    /// Required `aud` (empty: not checked).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
}

/// A JWT verified before, remembered until it expires or the keys change.
struct Verified {
    keys: Arc<KeySet>,
    grant: Grant,
    expires_ms: u64,
}

/// How many verified JWTs are remembered (a signature check costs far more than a request).
const REMEMBERED: usize = 8192;

/// Verifies JWTs against the followed keys file.
pub struct JwtVerifier {
    keys: Watched<KeySet, KeysError>,
    expect: Expect,
    /// By SHA-256 of the whole token: the same token presented again skips the signature check.
    verified: RwLock<HashMap<[u8; 32], Verified>>,
}

impl JwtVerifier {
    /// The next check reads the keys file again if it changed (a reload).
    pub fn look_next_time(&self) {
        self.keys.look_next_time();
    }

    /// Loads the keys file (a missing or malformed one is refused at startup).
    pub fn open(path: std::path::PathBuf, expect: Expect) -> Result<JwtVerifier, KeysError> {
        if let Err(source) = std::fs::metadata(&path) {
            return Err(KeysError::Io { path, source });
        }
        Ok(JwtVerifier {
            keys: Watched::open(path, "JWT keys file", load)?,
            expect,
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Whether the key with this thumbprint is still in the keys file.
    pub fn has_key(&self, thumbprint: &str) -> bool {
        self.keys.current(1000).keys.iter().any(|k| k.thumbprint == thumbprint)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        // Times are checked on the server's clock (the cluster's, in a replicated mode), not
        // the library's wall clock: see `within_time`.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp"]);
        if self.expect.issuer.is_empty() {
            v.iss = None;
        } else {
            v.set_issuer(&[&self.expect.issuer]);
            v.required_spec_claims.insert("iss".into());
        }
        if self.expect.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&[&self.expect.audience]);
            v.required_spec_claims.insert("aud".into());
        }
        v
    }

    /// `exp` and `nbf` against the server's clock, with the configured leeway.
    fn within_time(&self, claims: &Claims) -> Result<(), JwtError> {
        let now = crate::clock::now_ms() / 1000;
        let leeway = self.expect.leeway_secs;
        if claims.exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
            return Err(JwtError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }

    /// The grant of a presented JWT: remembered from an earlier check of the same token with
    /// the same keys while it has not expired, else verified (and then remembered).
    pub fn check(&self, token: &str) -> Result<Grant, JwtError> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let keys = self.keys.current(1000);
        let now = crate::clock::now_ms();
        if let Some(v) = self.verified.read().get(&digest) {
            if Arc::ptr_eq(&v.keys, &keys) && now < v.expires_ms {
                return Ok(v.grant.clone());
            }
        }
        let (grant, checked_with) = self.verify(token, &digest)?;
        if let Some(expires_ms) = grant.expires_ms {
            let mut verified = self.verified.write();
            if verified.len() >= REMEMBERED {
                verified.retain(|_, v| now < v.expires_ms && Arc::ptr_eq(&v.keys, &keys));
                if verified.len() >= REMEMBERED {
                    verified.clear();
                }
            }
            // Remembered with the keys it was checked against: a reload since then forgets it.
            verified.insert(
                digest,
                Verified {
                    keys: checked_with,
                    grant: grant.clone(),
                    expires_ms,
                },
            );
        }
        Ok(grant)
    }

    /// Checks a JWT's signature and claims; returns the grant and the keys it was checked with.
    fn verify(&self, token: &str, digest: &[u8; 32]) -> Result<(Grant, Arc<KeySet>), JwtError> {
        // `alg: none` (and any algorithm the library does not know) fails here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if names_critical(token) {
            return Err(JwtError::Critical);
        }
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::HS256) {
            return Err(JwtError::Algorithm);
        }
        let fits = |k: &&Key| k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid);
        let mut set = self.keys.current(1000);
        if !set.keys.iter().any(|k| fits(&k)) {
            // Perhaps a key added a moment ago: look at the file again now (one `stat`).
            set = self.keys.current(0);
        }
        let mut outcome = Err(JwtError::UnknownKey);
        for key in set.keys.iter().filter(fits) {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation(key.alg)) {
                Ok(data) => {
                    outcome = Ok((data.claims, key));
                    break;
                }
                Err(e) => {
                    outcome = Err(match e.kind() {
                        ErrorKind::InvalidSignature => JwtError::Signature,
                        ErrorKind::ExpiredSignature => JwtError::Expired,
                        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                        ErrorKind::InvalidIssuer => JwtError::Claims("iss".into()),
                        ErrorKind::InvalidAudience => JwtError::Claims("aud".into()),
                        ErrorKind::MissingRequiredClaim(c) => JwtError::Claims(format!("{c} is missing")),
                        ErrorKind::InvalidAlgorithm => JwtError::Algorithm,
                        _ => JwtError::Malformed,
                    });
                    // Another key with the same kid or none named may still verify it.
                    if !matches!(outcome, Err(JwtError::Signature)) {
                        break;
                    }
                }
            }
        }
        let (claims, key) = outcome?;
        self.within_time(&claims)?;
        let texts: Vec<String> = match (claims.scopes, claims.scope) {
            (Some(list), _) => list,
            (None, Some(text)) => text.split_whitespace().map(str::to_string).collect(),
            (None, None) => Vec::new(),
        };
        if texts.is_empty() {
            return Err(JwtError::Claims("no scopes".into()));
        }
        let scopes = texts
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| JwtError::Claims(e.to_string()))?;
        // Named in logs and quotas by its subject; without one, by a digest of the token (so
        // such tokens do not share one quota).
        let who = claims.sub.unwrap_or_else(|| {
            let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            format!("~{hex}")
        });
        let id: Arc<str> = Arc::from(format!("jwt:{who}").as_str());
        let grant = Grant {
            root: id.clone(),
            id,
            scopes: Arc::new(scopes),
            expires_ms: claims.exp.map(|s| s.saturating_mul(1000)),
            key: Some(Arc::new(JwtIssuer {
                sub: who,
                kid: key.kid.clone(),
                key: key.thumbprint.clone(),
            })),
        };
        Ok((grant, set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Fixture {
        _dir: std::path::PathBuf,
        verifier: JwtVerifier,
        ed: EncodingKey,
        secret: Vec<u8>,
    }

    fn fixture() -> Fixture {
        use ring::signature::KeyPair;
        let dir = std::env::temp_dir().join(format!("ds-jwt-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let secret = vec![7u8; 32];
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64(pair.public_key().as_ref())},
            {"kty": "oct", "kid": "hs1", "alg": "HS256", "k": b64(&secret)},
        ]});
        let path = dir.join("keys.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let verifier = JwtVerifier::open(path, Expect::default()).unwrap();
        Fixture {
            _dir: dir,
            verifier,
            ed: EncodingKey::from_ed_der(pkcs8.as_ref()),
            secret,
        }
    }

    fn claims(exp_offset: i64) -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        serde_json::json!({"sub": "u1", "exp": now + exp_offset, "scopes": ["chat/:read"]})
    }

    #[test]
    fn good_tokens_and_the_refusals() {
        let f = fixture();
        let mut ed = Header::new(Algorithm::EdDSA);
        ed.kid = Some("ed1".into());
        let t = encode(&ed, &claims(60), &f.ed).unwrap();
        let g = f.verifier.check(&t).unwrap();
        assert_eq!(&*g.id, "jwt:u1");
        assert!(super::super::scope::any_allows(&g.scopes, super::super::Op::Read, "chat/x"));

        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("hs1".into());
        assert!(f
            .verifier
            .check(&encode(&hs, &claims(60), &EncodingKey::from_secret(&f.secret)).unwrap())
            .is_ok());
        // Expired, and signed by another secret.
        assert_eq!(
            f.verifier.check(&encode(&ed, &claims(-3600), &f.ed).unwrap()).unwrap_err(),
            JwtError::Expired
        );
        let other = encode(&hs, &claims(60), &EncodingKey::from_secret(&[9u8; 32])).unwrap();
        assert_eq!(f.verifier.check(&other).unwrap_err(), JwtError::Signature);
        // Algorithm confusion: an HS256 token whose kid names the Ed25519 key, keyed by that
        // key's public bytes.
        let mut confused = Header::new(Algorithm::HS256);
        confused.kid = Some("ed1".into());
        let t = encode(&confused, &claims(60), &EncodingKey::from_secret(b"anything")).unwrap();
        assert_eq!(f.verifier.check(&t).unwrap_err(), JwtError::UnknownKey);
        // alg: none.
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims(60).to_string().as_bytes())
        );
        assert_eq!(f.verifier.check(&none).unwrap_err(), JwtError::Malformed);
        // RS256 is not among the accepted algorithms.
        let rs = format!("{}.{}.sig", b64(br#"{"alg":"RS256"}"#), b64(b"{}"));
        assert_eq!(f.verifier.check(&rs).unwrap_err(), JwtError::Algorithm);
        // No scopes.
        let now = jsonwebtoken::get_current_timestamp();
        let t = encode(&ed, &serde_json::json!({"exp": now + 60}), &f.ed).unwrap();
        assert!(matches!(f.verifier.check(&t).unwrap_err(), JwtError::Claims(_)));
        // Not before.
        let t = encode(
            &ed,
            &serde_json::json!({"exp": now + 600, "nbf": now + 300, "scope": "a:read"}),
            &f.ed,
        )
        .unwrap();
        assert_eq!(f.verifier.check(&t).unwrap_err(), JwtError::NotYetValid);
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let f = fixture();
        let expect = Expect {
            issuer: "https://app.example".into(),
            audience: "durable-streams".into(),
            leeway_secs: 0,
        };
        let v = JwtVerifier::open(f._dir.join("keys.json"), expect).unwrap();
        let mut ed = Header::new(Algorithm::EdDSA);
        ed.kid = Some("ed1".into());
        let with = |extra: serde_json::Value| {
            let mut c = claims(60);
            for (k, val) in extra.as_object().unwrap() {
                c[k] = val.clone();
            }
            encode(&ed, &c, &f.ed).unwrap()
        };
        let iss = "https://app.example";
        assert!(v.check(&with(serde_json::json!({"iss": iss, "aud": "durable-streams"}))).is_ok());
        assert!(v
            .check(&with(serde_json::json!({"iss": iss, "aud": ["other", "durable-streams"]})))
            .is_ok());
        for bad in [
            serde_json::json!({"iss": "https://elsewhere.example", "aud": "durable-streams"}),
            serde_json::json!({"aud": "durable-streams"}),
            serde_json::json!({"iss": iss, "aud": "other"}),
            serde_json::json!({"iss": iss}),
        ] {
            assert!(matches!(v.check(&with(bad.clone())), Err(JwtError::Claims(_))), "{bad}");
        }
        // Unconfigured, neither is asked for.
        assert!(f.verifier.check(&with(serde_json::json!({"iss": "anyone", "aud": "any"}))).is_ok());
    }

    #[test]
    fn a_remembered_token_is_forgotten_when_its_key_goes() {
        let f = fixture();
        let mut ed = Header::new(Algorithm::EdDSA);
        ed.kid = Some("ed1".into());
        let t = encode(&ed, &claims(60), &f.ed).unwrap();
        assert!(f.verifier.check(&t).is_ok());
        assert!(f.verifier.check(&t).is_ok(), "remembered");
        assert_eq!(f.verifier.verified.read().len(), 1);
        // The Ed25519 key leaves the file: the same token is refused at the next look.
        let only_hs = serde_json::json!({"keys": [{"kty": "oct", "kid": "hs1", "k": b64(&f.secret)}]});
        std::fs::write(f.verifier.keys.path(), only_hs.to_string()).unwrap();
        f.verifier.keys.look_next_time();
        assert_eq!(f.verifier.check(&t).unwrap_err(), JwtError::UnknownKey);
    }
}
