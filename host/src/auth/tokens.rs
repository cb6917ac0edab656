//! Access tokens issued by this server: opaque, random, stored only as a SHA-256 hash in a JSON
//! file next to the data (`auth.tokens_file`), named by an id prefix so they can be listed and
//! revoked. The CLI writes the file (locked, replaced atomically); a running server notices a
//! change within a second (a token it does not know yet: at once, one `stat` per unknown token) and serves with it, no
//! restart. Owns the file; knows nothing of HTTP.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use super::scope::Scope;
use super::watched::Watched;

/// What every token starts with (so a leaked one is recognisable in a scan).
pub const TOKEN_PREFIX: &str = "dst_";

/// One issued token as stored.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Record {
    pub id: String,
    /// SHA-256 of the whole token, hex.
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_ms: u64,
    #[serde(default)]
    pub expires_ms: Option<u64>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub label: String,
    /// The token that issued this one over HTTP: revoking it refuses this one too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
}

/// What a new token allows, for how long, and who asked for it.
pub struct Issue<'a> {
    /// Scopes in `PREFIX:OPS` form (at least one).
    pub scopes: &'a [String],
    /// Valid this long from now; `None`: until revoked.
    pub ttl_ms: Option<u64>,
    pub label: &'a str,
    /// The issuing token's id, when a token issued it.
    pub issued_by: Option<&'a str>,
}

#[derive(Default, Deserialize, Serialize)]
struct File {
    version: u32,
    tokens: Vec<Record>,
}

/// Why a token was not accepted (the 401's detail says which, never the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed access token")]
    Malformed,
    #[error("unknown access token")]
    Unknown,
    #[error("access token {0} was revoked")]
    Revoked(String),
    #[error("access token {0} has expired")]
    Expired(String),
}

/// Errors of the token file (CLI and server).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a token file: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Scope(#[from] super::scope::ScopeError),
    #[error("no token with id '{0}'")]
    NoSuchId(String),
    #[error("a token needs at least one --scope")]
    NoScope,
    #[error("the system random source failed")]
    Random,
}

/// A valid token: its id (for logs) and what it allows.
#[derive(Clone, Debug)]
pub struct Grant {
    pub id: Arc<str>,
    pub scopes: Arc<Vec<Scope>>,
    /// When it stops being valid (ms since the epoch), if ever.
    pub expires_ms: Option<u64>,
}

/// A loaded token: what a check needs, decoded once per load.
struct Known {
    id: Arc<str>,
    /// The token that issued it (revoked: this one is refused too).
    parent: Option<String>,
    digest: [u8; 32],
    /// Revoked itself, or issued (at any depth) by a revoked token: settled once per load.
    revoked: bool,
    expires_ms: Option<u64>,
    scopes: Arc<Vec<Scope>>,
}

fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let b = text.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn sha256_hex(text: &str) -> String {
    digest(text).iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    crate::state::now_ms()
}

fn read_file(path: &Path) -> Result<File, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| FileError::Format {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
            version: 1,
            tokens: Vec::new(),
        }),
        Err(source) => Err(FileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Changes the file under an exclusive lock, replacing it atomically (temp file, fsync, rename).
fn update<T>(path: &Path, change: impl FnOnce(&mut File) -> Result<T, FileError>) -> Result<T, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let mut file = read_file(path)?;
    file.version = 1;
    let out = change(&mut file)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(io)?;
        let json = serde_json::to_vec_pretty(&file).expect("token records serialize");
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(out)
}

/// A new token for `scopes`, valid for `ttl_ms` (none: until revoked); returns (token, record).
pub fn issue(path: &Path, req: &Issue) -> Result<(String, Record), FileError> {
    let Issue {
        scopes,
        ttl_ms,
        label,
        issued_by,
    } = *req;
    if scopes.is_empty() {
        return Err(FileError::NoScope);
    }
    // Normalised, and refused early if malformed.
    let scopes: Vec<String> = scopes
        .iter()
        .map(|s| Scope::parse(s).map(|s| s.to_string()))
        .collect::<Result<_, _>>()?;
    let rng = ring::rand::SystemRandom::new();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill(&mut id).map_err(|_| FileError::Random)?;
    rng.fill(&mut secret).map_err(|_| FileError::Random)?;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let id = hex(&id);
    let token = format!("{TOKEN_PREFIX}{id}_{}", hex(&secret));
    let now = now_ms();
    let record = Record {
        id,
        hash: sha256_hex(&token),
        scopes,
        created_ms: now,
        expires_ms: ttl_ms.map(|t| now.saturating_add(t)),
        revoked: false,
        label: label.to_string(),
        issued_by: issued_by.map(str::to_string),
    };
    let stored = record.clone();
    update(path, |f| {
        f.tokens.push(stored);
        Ok(())
    })?;
    Ok((token, record))
}

/// Marks the token `id` revoked (kept in the file, so `list` shows it).
pub fn revoke(path: &Path, id: &str) -> Result<(), FileError> {
    update(path, |f| {
        let r = f
            .tokens
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| FileError::NoSuchId(id.to_string()))?;
        r.revoked = true;
        Ok(())
    })
}

/// Every token in the file.
pub fn list(path: &Path) -> Result<Vec<Record>, FileError> {
    Ok(read_file(path)?.tokens)
}

/// The id a token names, if it has the token form.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'_')).then_some(id)
}

/// Whether `text` has the form of one of this server's tokens (else it may be a JWT).
pub fn looks_like_token(text: &str) -> bool {
    text.starts_with(TOKEN_PREFIX)
}

/// The tokens as loaded, by id.
struct Loaded {
    by_id: HashMap<String, Known>,
}

/// The server's view of the token file, re-read when it changes (checked at most once a second).
pub struct TokenTable {
    file: Watched<Loaded, FileError>,
}

impl TokenTable {
    /// Loads `path` (absent: no token yet); a malformed file is an error at startup.
    pub fn open(path: PathBuf) -> Result<TokenTable, FileError> {
        Ok(TokenTable {
            file: Watched::open(path, "token file", load)?,
        })
    }

    /// A table that accepts no token and never reads its file.
    pub fn empty(path: PathBuf) -> TokenTable {
        let none = Loaded { by_id: HashMap::new() };
        TokenTable {
            file: Watched::fixed(path, "token file", load, none),
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The grant of a presented token.
    pub fn check(&self, token: &str) -> Result<Grant, TokenError> {
        let id = token_id(token).ok_or(TokenError::Malformed)?;
        let mut table = self.file.current(1000);
        if !table.by_id.contains_key(id) {
            // Perhaps issued a moment ago: look at the file again now (one `stat`).
            table = self.file.current(0);
        }
        let known = table.by_id.get(id).ok_or(TokenError::Unknown)?;
        let presented = digest(token);
        // Equal-time comparison of the two digests.
        if presented.iter().zip(known.digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return Err(TokenError::Unknown);
        }
        if known.revoked {
            return Err(TokenError::Revoked(known.id.to_string()));
        }
        if known.expires_ms.is_some_and(|e| now_ms() >= e) {
            return Err(TokenError::Expired(known.id.to_string()));
        }
        Ok(Grant {
            id: known.id.clone(),
            scopes: known.scopes.clone(),
            expires_ms: known.expires_ms,
        })
    }
}

fn load(path: &Path) -> Result<Loaded, FileError> {
    let file = read_file(path)?;
    let mut by_id = HashMap::new();
    for r in file.tokens {
        // A record with a scope this version cannot read grants nothing (the others still work).
        let scopes = match r.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>() {
            Ok(scopes) => scopes,
            Err(e) => {
                tracing::warn!(token = %r.id, error = %e, "token record skipped: a scope is not valid");
                continue;
            }
        };
        // A record whose hash is not 64 hex digits matches no token.
        let Some(digest) = unhex(&r.hash) else { continue };
        let known = Known {
            id: Arc::from(r.id.as_str()),
            parent: r.issued_by.clone(),
            digest,
            revoked: r.revoked,
            expires_ms: r.expires_ms,
            scopes: Arc::new(scopes),
        };
        by_id.insert(r.id, known);
    }
    inherit_revocation(&mut by_id);
    Ok(Loaded { by_id })
}

/// Marks revoked every token issued, at any depth, by a revoked one (each chain walked once;
/// a chain through an unknown issuer or round a loop stops there).
fn inherit_revocation(by_id: &mut HashMap<String, Known>) {
    let mut verdicts: HashMap<String, bool> = HashMap::new();
    for start in by_id.keys() {
        let mut path = std::collections::HashSet::new();
        let mut at = Some(start.as_str());
        let verdict = loop {
            let Some(id) = at else { break false };
            if let Some(&v) = verdicts.get(id) {
                break v;
            }
            let Some(k) = by_id.get(id) else { break false };
            if k.revoked {
                break true;
            }
            if !path.insert(id) {
                break false;
            }
            at = k.parent.as_deref();
        };
        for id in path {
            verdicts.insert(id.to_string(), verdict);
        }
    }
    for (id, k) in by_id.iter_mut() {
        k.revoked |= verdicts.get(id).copied().unwrap_or(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(scopes: &[String], ttl_ms: Option<u64>) -> Issue<'_> {
        Issue {
            scopes,
            ttl_ms,
            label: "t",
            issued_by: None,
        }
    }

    #[test]
    fn a_token_issued_by_a_revoked_token_is_refused() {
        let dir = std::env::temp_dir().join(format!("ds-tokens-chain-{}", std::process::id()));
        let path = dir.join("tokens.json");
        let scopes = ["chat/:read,admin".to_string()];
        let (parent, p) = issue(&path, &req(&scopes, None)).unwrap();
        let (child, c) = issue(
            &path,
            &Issue {
                issued_by: Some(&p.id),
                ..req(&scopes, None)
            },
        )
        .unwrap();
        // A chain far deeper than anyone would build by hand.
        let (mut deepest, mut last) = issue(
            &path,
            &Issue {
                issued_by: Some(&c.id),
                ..req(&scopes, None)
            },
        )
        .unwrap();
        let grandchild = deepest.clone();
        for _ in 0..60 {
            let (t, r) = issue(
                &path,
                &Issue {
                    issued_by: Some(&last.id),
                    ..req(&scopes, None)
                },
            )
            .unwrap();
            (deepest, last) = (t, r);
        }
        let table = TokenTable::open(path.clone()).unwrap();
        assert!(table.check(&grandchild).is_ok());
        assert!(table.check(&deepest).is_ok());
        revoke(&path, &p.id).unwrap();
        table.file.look_next_time();
        assert!(matches!(table.check(&parent), Err(TokenError::Revoked(_))));
        assert!(matches!(table.check(&child), Err(TokenError::Revoked(_))));
        assert!(matches!(table.check(&grandchild), Err(TokenError::Revoked(_))));
        assert!(matches!(table.check(&deepest), Err(TokenError::Revoked(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_with_a_bad_scope_grants_nothing_and_spoils_no_other() {
        let dir = std::env::temp_dir().join(format!("ds-tokens-badscope-{}", std::process::id()));
        let path = dir.join("tokens.json");
        let (good, _) = issue(&path, &req(&["chat/:read".into()], None)).unwrap();
        let (bad, b) = issue(&path, &req(&["room/:read".into()], None)).unwrap();
        // As an older version might have written it.
        let mut file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for t in file["tokens"].as_array_mut().unwrap() {
            if t["id"] == b.id.as_str() {
                t["scopes"] = serde_json::json!(["room**:read"]);
            }
        }
        std::fs::write(&path, file.to_string()).unwrap();
        let table = TokenTable::open(path.clone()).unwrap();
        assert!(table.check(&good).is_ok());
        assert_eq!(table.check(&bad).unwrap_err(), TokenError::Unknown);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn issue_check_revoke() {
        let dir = std::env::temp_dir().join(format!("ds-tokens-{}", std::process::id()));
        let path = dir.join("tokens.json");
        let (token, rec) = issue(&path, &req(&["chat/:read".into()], None)).unwrap();
        assert!(token.starts_with("dst_") && token.len() == 4 + 12 + 1 + 64);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token[17..]), "the secret is never stored");
        let table = TokenTable::open(path.clone()).unwrap();
        let g = table.check(&token).unwrap();
        assert_eq!(&*g.id, rec.id.as_str());
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('0') { '1' } else { '0' });
        assert_eq!(table.check(&wrong).unwrap_err(), TokenError::Unknown);
        assert_eq!(table.check("dst_nope").unwrap_err(), TokenError::Malformed);
        revoke(&path, &rec.id).unwrap();
        // Seen once the table rechecks the file.
        table.file.look_next_time();
        assert_eq!(table.check(&token).unwrap_err(), TokenError::Revoked(rec.id.clone()));
        let (short, _) = issue(&path, &req(&["*:read".into()], Some(0))).unwrap();
        table.file.look_next_time();
        assert!(matches!(table.check(&short), Err(TokenError::Expired(_))));
        assert!(matches!(issue(&path, &req(&["x".into()], None)), Err(FileError::Scope(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
