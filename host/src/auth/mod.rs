//! Access control: finds a request's credential (a `Bearer` token, or for reads the
//! `access_token` query parameter that `EventSource` needs), checks it, and decides an operation
//! on a stream name from the token's scopes. Answers 401 / 403 problem+json; never logs, counts
//! or echoes a token. Owns no protocol behaviour: the HTTP modules call it before they act.

pub mod jwt;
mod live;
pub mod quota;
pub mod scope;
pub mod tokens;
mod watched;

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};

use crate::config::Config;
use crate::http::error::ApiError;
pub use live::CredentialWatch;
pub use scope::Op;
use tokens::{Grant, TokenError, TokenTable};

/// The query parameter a read may carry its token in (for `EventSource`, which cannot set
/// headers). Never logged: only paths are.
pub const QUERY_PARAM: &str = "access_token";

/// The server's access control.
pub struct Auth {
    tokens: Option<TokenTable>,
    jwts: Option<jwt::JwtVerifier>,
    protect_metrics: bool,
    /// Per-client limits (`[quotas]`), in both modes.
    pub quotas: Arc<quota::Quotas>,
    /// Whether a client's address may be taken from `X-Forwarded-For`.
    trust_proxy_headers: bool,
}

impl Auth {
    /// The label of the access token `id` (not of a JWT), if it has one.
    pub fn token_label(&self, id: &str) -> Option<Arc<str>> {
        self.tokens.as_ref()?.label_of(id).filter(|l| !l.is_empty())
    }

    /// A reload (`SIGHUP`, `systemctl reload`): the token and keys files are read again at the
    /// next request that needs them (they are also followed without one, within a second).
    pub fn reload(&self) {
        if let Some(t) = &self.tokens {
            t.look_next_time();
        }
        if let Some(j) = &self.jwts {
            j.look_next_time();
        }
    }
}

/// Why access control could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    #[error(transparent)]
    Tokens(#[from] tokens::FileError),
    #[error(transparent)]
    JwtKeys(#[from] jwt::KeysError),
}

/// Who is asking: everyone (`auth.mode = "none"`) or a checked token.
#[derive(Clone, Debug)]
pub enum Caller {
    Anyone,
    Token(Grant),
}

impl Caller {
    /// Whether this caller may do `op` on `name` (decoded, validated).
    pub fn may(&self, op: Op, name: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(g) => scope::any_allows(&g.scopes, op, name),
        }
    }

    /// The names starting with `prefix` this caller may do `op` on, as disjoint ranges.
    pub fn ranges(&self, op: Op, prefix: &str) -> Vec<scope::NameRange> {
        match self {
            Caller::Anyone => vec![scope::NameRange::Under(prefix.to_string())],
            Caller::Token(g) => scope::ranges_under(&g.scopes, op, prefix),
        }
    }

    /// Whether this caller may do `op` on every name the subscription glob `pattern` matches.
    pub fn may_pattern(&self, op: Op, pattern: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(g) => scope::allow_pattern(&g.scopes, op, pattern),
        }
    }

    /// Whether this caller may do `op` on any name at all.
    pub fn may_somewhere(&self, op: Op) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(g) => g.scopes.iter().any(|s| s.allows_op(op)),
        }
    }

    /// `Ok` if [`Caller::may`], else a 403 that does not say whether the stream exists.
    pub fn require(&self, op: Op, name: &str) -> Result<(), ApiError> {
        if self.may(op, name) {
            Ok(())
        } else {
            Err(forbidden(op))
        }
    }
}

/// The 403 for an operation outside the caller's scopes.
pub fn forbidden(op: Op) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("this token's scope does not allow '{}' here", op.name()),
    )
}

pub(crate) fn unauthorized(detail: &str, invalid: bool) -> ApiError {
    let challenge = if invalid {
        r#"Bearer realm="durable-streams", error="invalid_token""#
    } else {
        r#"Bearer realm="durable-streams""#
    };
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail.to_string()).with_header(header::WWW_AUTHENTICATE, challenge)
}

/// The `access_token` query parameter's value, if present.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == QUERY_PARAM).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

impl Auth {
    /// Access control as `config` says; `token` mode opens the token file (a malformed one is
    /// refused at startup).
    pub fn from_config(config: &Config) -> Result<Auth, AuthStartError> {
        let a = &config.auth;
        let quotas = Arc::new(quota::Quotas::from_config(&config.quotas));
        let trust_proxy_headers = config.http.trust_proxy_headers;
        if !a.token_mode() {
            return Ok(Auth {
                quotas,
                trust_proxy_headers,
                ..Auth::none()
            });
        }
        let tokens = Some(TokenTable::open(a.tokens_path(&config.storage.data_dir))?);
        let jwts = if a.jwt_keys_file.is_empty() {
            None
        } else {
            let expect = jwt::Expect {
                issuer: a.jwt_issuer.clone(),
                audience: a.jwt_audience.clone(),
                leeway_secs: a.jwt_leeway_secs,
            };
            Some(jwt::JwtVerifier::open(a.jwt_keys_file.clone().into(), expect)?)
        };
        Ok(Auth {
            tokens,
            jwts,
            protect_metrics: a.protect_metrics,
            quotas,
            trust_proxy_headers,
        })
    }

    /// Open access (`auth.mode = "none"`).
    pub fn none() -> Auth {
        Auth {
            tokens: None,
            jwts: None,
            protect_metrics: false,
            quotas: Arc::new(quota::Quotas::none()),
            trust_proxy_headers: false,
        }
    }

    /// Token mode with no token accepted (an embedder's unreadable token file).
    pub fn deny_all(path: std::path::PathBuf) -> Auth {
        Auth {
            tokens: Some(TokenTable::empty(path)),
            jwts: None,
            protect_metrics: true,
            quotas: Arc::new(quota::Quotas::none()),
            trust_proxy_headers: false,
        }
    }

    /// The token file, in token mode.
    pub fn tokens_path(&self) -> Option<&std::path::Path> {
        self.tokens.as_ref().map(|t| t.path())
    }

    pub fn enabled(&self) -> bool {
        self.tokens.is_some()
    }

    pub fn protects_metrics(&self) -> bool {
        self.enabled() && self.protect_metrics
    }

    /// Whom `caller`'s request counts against in the quotas: its token, else its address (the
    /// last `X-Forwarded-For` entry, the one the nearest proxy saw, when proxy headers are trusted).
    pub fn client(&self, caller: &Caller, parts: &Parts) -> quota::ClientKey {
        if let Caller::Token(g) = caller {
            // A token's children share its budget (issuing tokens multiplies no quota).
            return quota::ClientKey::Token(g.root.clone());
        }
        if self.trust_proxy_headers {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok());
            if let Some(ip) = forwarded {
                return quota::ClientKey::Addr(ip);
            }
        }
        match parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            Some(info) => quota::ClientKey::Addr(info.0.ip()),
            None => quota::ClientKey::Unknown,
        }
    }

    /// The caller of a request: its token checked (401 when missing or not valid). Reads
    /// (GET, HEAD) may carry the token in the `access_token` query parameter instead. A refusal
    /// counts against its address's rate for refusals (429 once over it), so guessing, or making
    /// the server check many bad signatures, is limited on every route that asks; that budget
    /// is not the one of the routes that need no token (a wake's `callback`, `ack`, `release`).
    pub fn caller(&self, parts: &Parts) -> Result<Caller, ApiError> {
        self.check_credentials(parts).map_err(|refused| {
            let addr = quota::ClientKey::Refused(Box::new(self.client(&Caller::Anyone, parts)));
            self.quotas.request(&addr).err().unwrap_or(refused)
        })
    }

    /// Whether a credential accepted earlier is still valid: not revoked, not expired, its JWT
    /// key (if it rests on one) still there. Live reads ask this again and again.
    pub fn still_valid(&self, g: &Grant) -> bool {
        if g.expires_ms.is_some_and(|e| crate::clock::now_ms() >= e) {
            return false;
        }
        if self.key_gone(g) {
            return false;
        }
        g.is_jwt() || self.tokens.as_ref().is_some_and(|t| t.still_valid(&g.id))
    }

    /// Whether `g` rests on a JWT key (its own, or that of the JWT atop its chain of issuers)
    /// that is no longer in the keys file.
    fn key_gone(&self, g: &Grant) -> bool {
        g.key
            .as_ref()
            .is_some_and(|k| !self.jwts.as_ref().is_some_and(|j| j.has_key(&k.key)))
    }

    fn check_credentials(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let Some(table) = &self.tokens else {
            return Ok(Caller::Anyone);
        };
        let presented = match parts.headers.get(header::AUTHORIZATION) {
            Some(v) => Some(bearer(v)?),
            None if matches!(parts.method, Method::GET | Method::HEAD) => query_token(parts.uri.query()),
            None => None,
        };
        let Some(token) = presented else {
            return Err(unauthorized("this server needs an access token (Authorization: Bearer ...)", false));
        };
        if !tokens::looks_like_token(&token) {
            if let Some(jwts) = &self.jwts {
                return match jwts.check(&token) {
                    Ok(g) => Ok(Caller::Token(g)),
                    Err(e) => {
                        if !matches!(e, jwt::JwtError::Malformed) {
                            tracing::info!(reason = %e, "JWT refused");
                        }
                        Err(unauthorized(&e.to_string(), true))
                    }
                };
            }
        }
        match table.check(&token) {
            // Issued by a JWT (at the top of its chain) whose key has been removed since.
            Ok(g) if self.key_gone(&g) => {
                tracing::info!(token = %g.id, "access token refused: the JWT key it was issued under is gone");
                Err(unauthorized(
                    "this access token was issued by a JWT whose key has been removed",
                    true,
                ))
            }
            Ok(g) => Ok(Caller::Token(g)),
            Err(e @ (TokenError::Malformed | TokenError::Unknown)) => Err(unauthorized(&e.to_string(), true)),
            Err(e @ (TokenError::Revoked(_) | TokenError::Expired(_))) => {
                tracing::info!(reason = %e, "access token refused");
                Err(unauthorized(&e.to_string(), true))
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(v: &HeaderValue) -> Result<String, ApiError> {
    let text = v
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not readable text", true))?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized("use Authorization: Bearer <token>", true));
    }
    Ok(token.trim().to_string())
}
