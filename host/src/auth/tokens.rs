//! Access tokens issued by this server: opaque, random, stored only as a SHA-256 hash in a JSON
//! file next to the data (`auth.tokens_file`), named by an id prefix so they can be listed and
//! revoked. The CLI writes the file (locked, replaced atomically); a running server notices a
//! change within a second (a token it does not know yet: at once, one `stat` per unknown token) and serves with it, no
//! restart. Owns the file; knows nothing of HTTP.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    /// The JWT that issued this one over HTTP: removing its key refuses this one too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by_jwt: Option<JwtIssuer>,
}

/// A JWT that issued a token: its subject and the key that verified it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct JwtIssuer {
    /// The JWT's `sub` (or `~` and a digest of the JWT when it had none).
    pub sub: String,
    /// The verifying key's `kid`, if it has one.
    #[serde(default)]
    pub kid: Option<String>,
    /// The verifying key's thumbprint (SHA-256 of its algorithm and public part or secret).
    pub key: String,
}

impl Record {
    /// Who issued it, for `token list`: a token id, a JWT (subject and key), or the CLI.
    pub fn issuer(&self) -> String {
        match (&self.issued_by, &self.issued_by_jwt) {
            (Some(id), _) => format!("token {id}"),
            (None, Some(j)) => format!("jwt {} (key {})", j.sub, j.kid.as_deref().unwrap_or(&j.key)),
            (None, None) => "cli".into(),
        }
    }

    fn live(&self, now: u64) -> bool {
        !self.revoked && self.expires_ms.is_none_or(|e| now < e)
    }
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
    /// The issuing JWT, when one issued it.
    pub issued_by_jwt: Option<&'a JwtIssuer>,
    /// At most this many live tokens may descend from the issuer's root (`None`: no bound).
    pub bound: Option<Bound<'a>>,
}

/// A bound on the live tokens that descend from one root credential.
#[derive(Clone, Copy)]
pub struct Bound<'a> {
    /// The root's quota name (`Grant::root`).
    pub root: &'a str,
    pub max: usize,
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
    #[error("{max} live tokens already descend from this credential (auth.max_tokens_per_issuer): revoke some first")]
    TooMany { max: usize },
}

/// A valid token: its id (for logs) and what it allows.
#[derive(Clone, Debug)]
pub struct Grant {
    pub id: Arc<str>,
    pub scopes: Arc<Vec<Scope>>,
    /// When it stops being valid (ms since the epoch), if ever.
    pub expires_ms: Option<u64>,
    /// The credential at the top of its chain of issuers (itself, if none): the token made with
    /// the CLI, or `jwt:SUBJECT`. Quotas count by it, so issuing children multiplies nothing.
    pub root: Arc<str>,
    /// The JWT key this credential rests on (a JWT's own, or the one that verified the JWT
    /// at the top of its chain): removing the key refuses it.
    pub key: Option<Arc<JwtIssuer>>,
}

impl Grant {
    /// Whether it is a JWT (else an access token of the token file).
    pub fn is_jwt(&self) -> bool {
        self.id.starts_with("jwt:")
    }
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
    /// Settled once per load, like `revoked`: see [`Grant::root`] and [`Grant::key`].
    root: Arc<str>,
    key: Option<Arc<JwtIssuer>>,
    /// What its issuer called it (shown to its holder by `__ds/whoami`).
    label: Arc<str>,
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
    crate::clock::now_ms()
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
        .mode(0o600)
        .open(&lock_path)
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let mut file = read_file(path)?;
    file.version = 1;
    let out = change(&mut file)?;
    let tmp = path.with_extension("tmp");
    {
        // Readable by the server's user alone (a leftover temp file keeps its old mode).
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
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
        issued_by_jwt,
        bound,
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
        issued_by_jwt: issued_by_jwt.cloned(),
    };
    let stored = record.clone();
    update(path, |f| {
        if let Some(b) = bound {
            let by_id: HashMap<&str, &Record> = f.tokens.iter().map(|r| (r.id.as_str(), r)).collect();
            let live = f
                .tokens
                .iter()
                .filter(|r| r.id != b.root && r.live(now) && root_of(&by_id, r) == b.root)
                .count();
            if live >= b.max {
                return Err(FileError::TooMany { max: b.max });
            }
        }
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

/// The quota name of the credential at the top of `r`'s chain of issuers (see [`Grant::root`]).
fn root_of(by_id: &HashMap<&str, &Record>, r: &Record) -> String {
    let mut at = r;
    let mut seen = std::collections::HashSet::new();
    while let Some(parent) = at.issued_by.as_deref() {
        match by_id.get(parent) {
            Some(p) if seen.insert(parent) => at = p,
            // An issuer no longer in the file (or a loop): the chain's top as far as known.
            _ => return parent.to_string(),
        }
    }
    match &at.issued_by_jwt {
        Some(j) => format!("jwt:{}", j.sub),
        None => at.id.clone(),
    }
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
    /// The next lookup reads the file again if it changed (a reload).
    pub fn look_next_time(&self) {
        self.file.look_next_time();
    }

    /// Loads `path` (absent: no token yet); a malformed file is an error at startup.
    pub fn open(path: PathBuf) -> Result<TokenTable, FileError> {
        warn_if_readable(&path);
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
            root: known.root.clone(),
            key: known.key.clone(),
        })
    }

    /// The label the token `id` was issued with (empty if none), if it is known.
    pub fn label_of(&self, id: &str) -> Option<Arc<str>> {
        self.file.current(1000).by_id.get(id).map(|k| k.label.clone())
    }

    /// Whether the token `id` is still valid (not revoked, not expired): asked again and again
    /// by live reads, so a revocation or an expiry ends them.
    pub fn still_valid(&self, id: &str) -> bool {
        let table = self.file.current(1000);
        table
            .by_id
            .get(id)
            .is_some_and(|k| !k.revoked && k.expires_ms.is_none_or(|e| now_ms() < e))
    }
}

/// Whether the file at `path` is open to its group or to others (the bits of `mode`).
pub fn readable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Warns when the token file is open to its group or to others (it is written 0600).
fn warn_if_readable(path: &Path) {
    if readable_by_others(path) {
        tracing::warn!(
            path = %path.display(),
            "the token file can be read by other users than the server's: chmod 600 it"
        );
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
            root: match &r.issued_by_jwt {
                Some(j) => Arc::from(format!("jwt:{}", j.sub).as_str()),
                None => Arc::from(r.id.as_str()),
            },
            key: r.issued_by_jwt.clone().map(Arc::new),
            label: Arc::from(r.label.as_str()),
        };
        by_id.insert(r.id, known);
    }
    settle_chains(&mut by_id);
    Ok(Loaded { by_id })
}

/// What a token inherits from its chain of issuers.
#[derive(Clone)]
struct Chain {
    revoked: bool,
    root: Arc<str>,
    key: Option<Arc<JwtIssuer>>,
}

/// Settles what every token inherits from its issuers, at any depth: revoked when any of them
/// is, and the root and JWT key of the chain's top (each chain walked once; a chain through an
/// issuer no longer in the file, or round a loop, stops there, with that issuer as its root).
fn settle_chains(by_id: &mut HashMap<String, Known>) {
    let mut settled: HashMap<String, Chain> = HashMap::new();
    let ids: Vec<String> = by_id.keys().cloned().collect();
    for start in ids {
        let mut path: Vec<String> = Vec::new();
        let mut on_path = std::collections::HashSet::new();
        let mut at = start;
        let mut above = loop {
            if let Some(c) = settled.get(&at) {
                break c.clone();
            }
            let k = &by_id[&at];
            path.push(at.clone());
            on_path.insert(at.clone());
            match k.parent.as_deref() {
                Some(p) if by_id.contains_key(p) && !on_path.contains(p) => at = p.to_string(),
                Some(p) => {
                    break Chain {
                        revoked: false,
                        root: Arc::from(p),
                        key: None,
                    }
                }
                None => {
                    break Chain {
                        revoked: false,
                        root: k.root.clone(),
                        key: k.key.clone(),
                    }
                }
            }
        };
        for id in path.into_iter().rev() {
            above.revoked |= by_id[&id].revoked;
            settled.insert(id, above.clone());
        }
    }
    for (id, k) in by_id.iter_mut() {
        if let Some(c) = settled.remove(id) {
            k.revoked = c.revoked;
            k.root = c.root;
            k.key = c.key;
        }
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
