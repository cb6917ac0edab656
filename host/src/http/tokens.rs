//! `{base}/__ds/tokens`: access tokens managed over HTTP by a token with `admin` (token mode).
//! `POST` issues one (`{"scopes": [...], "ttl_secs": N, "label": "..."}`; 201 with the token,
//! shown once), `GET` lists them, `DELETE tokens/{id}` revokes one. A caller sees and revokes
//! only tokens whose every scope lies inside its `admin` scope (others answer as missing), and
//! issues only inside both its own scopes and its admin scope, never outliving itself, and no
//! more than `auth.max_tokens_per_issuer` live tokens under its root credential. File work runs on blocking
//! threads; the token file is `crate::auth::tokens`'s.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::json::json;
use crate::auth::scope::Scope;
use crate::auth::tokens::{self, FileError, Record};
use crate::auth::{Caller, Op};
use crate::clock::now_ms;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    scopes: Vec<String>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    label: String,
}

/// Whether every scope lies inside one of `caller`'s (names and operations).
fn within(caller: &Caller, scopes: &[Scope]) -> bool {
    match caller {
        Caller::Anyone => true,
        Caller::Token(g) => scopes.iter().all(|s| g.scopes.iter().any(|mine| mine.contains(s))),
    }
}

/// Whether every scope's names lie inside the caller's `admin` scope: the tokens a caller may
/// see, revoke or issue (admin on `x/` manages no token that reaches past `x/`).
fn within_admin(caller: &Caller, scopes: &[Scope]) -> bool {
    match caller {
        Caller::Anyone => true,
        Caller::Token(g) => scopes
            .iter()
            .all(|s| g.scopes.iter().any(|mine| mine.allows_op(Op::Admin) && mine.names_contain(s))),
    }
}

fn record_within_admin(caller: &Caller, r: &Record) -> bool {
    r.scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .is_ok_and(|scopes| within_admin(caller, &scopes))
}

fn record_json(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "scopes": r.scopes, "label": r.label, "created_ms": r.created_ms,
        "expires_ms": r.expires_ms, "revoked": r.revoked, "issued_by": r.issuer(),
    })
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::Scope(_) | FileError::NoScope => ApiError::bad_request(e.to_string()),
        FileError::NoSuchId(_) => ApiError::new(StatusCode::NOT_FOUND, "Not Found", e.to_string()),
        FileError::TooMany { .. } => ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string()),
        other => {
            tracing::error!(error = %other, "token file");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "the token file could not be used",
            )
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "internal error"))?
}

/// Whether `rest` (the path after `__ds/`) is one of these routes.
pub fn is_tokens_route(rest: &str) -> bool {
    rest == "tokens" || rest.starts_with("tokens/")
}

/// Routes `tokens` and `tokens/{id}` (`rest` after `__ds/`).
pub async fn dispatch(state: &Arc<AppState>, caller: &Caller, rest: &str, parts: &Parts, body: Body) -> Response {
    let id = rest.strip_prefix("tokens/").map(str::to_string);
    route(state, caller, id, parts, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn route(state: &Arc<AppState>, caller: &Caller, id: Option<String>, parts: &Parts, body: Body) -> Result<Response, ApiError> {
    let Some(path) = state.auth.tokens_path().map(PathBuf::from) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            "access tokens exist only with auth.mode = \"token\"",
        ));
    };
    if !caller.may_somewhere(Op::Admin) {
        return Err(crate::auth::forbidden(Op::Admin));
    }
    let caller = caller.clone();
    match (&parts.method, id) {
        (&Method::POST, None) => {
            let bytes = super::read_body(body, 64 << 10).await?;
            let req: IssueBody =
                serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid token request: {e}")))?;
            let scopes = req
                .scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            if scopes.is_empty() {
                return Err(ApiError::bad_request("a token needs at least one scope"));
            }
            if !within(&caller, &scopes) || !within_admin(&caller, &scopes) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "a token may only be issued inside the issuer's own scopes and its admin scope",
                ));
            }
            // Never outliving the issuer.
            let issuer_left = match &caller {
                Caller::Token(g) => g.expires_ms.map(|e| e.saturating_sub(now_ms())),
                Caller::Anyone => None,
            };
            let asked = req.ttl_secs.map(|s| s.saturating_mul(1000));
            let ttl_ms = match (asked, issuer_left) {
                (Some(a), Some(l)) => Some(a.min(l)),
                (a, l) => a.or(l),
            };
            let texts: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            // A token issued by a token is revoked with it; one issued by a JWT, with the JWT's
            // key. Either way it counts against its root's bound and quotas.
            let (issued_by, issued_by_jwt, root) = match &caller {
                Caller::Token(g) if g.is_jwt() => (None, g.key.as_deref().cloned(), Some(g.root.clone())),
                Caller::Token(g) => (Some(g.id.to_string()), None, Some(g.root.clone())),
                Caller::Anyone => (None, None, None),
            };
            let max = state.config.auth.max_tokens_per_issuer;
            let (token, record) = blocking(move || {
                let req = tokens::Issue {
                    scopes: &texts,
                    ttl_ms,
                    label: &req.label,
                    issued_by: issued_by.as_deref(),
                    issued_by_jwt: issued_by_jwt.as_ref(),
                    bound: root.as_deref().filter(|_| max > 0).map(|root| tokens::Bound { root, max }),
                };
                tokens::issue(&path, &req).map_err(file_error)
            })
            .await?;
            let mut v = record_json(&record);
            v["token"] = token.into();
            Ok(json(StatusCode::CREATED, v))
        }
        (&Method::GET, None) => {
            let records = blocking(move || tokens::list(&path).map_err(file_error)).await?;
            let visible: Vec<serde_json::Value> = records
                .iter()
                .filter(|r| record_within_admin(&caller, r))
                .map(record_json)
                .collect();
            Ok(json(StatusCode::OK, serde_json::json!({ "tokens": visible })))
        }
        (&Method::DELETE, Some(id)) => {
            blocking(move || {
                let records = tokens::list(&path).map_err(file_error)?;
                // One outside the caller's admin scope is answered as if it did not exist.
                if !records.iter().any(|r| r.id == id && record_within_admin(&caller, r)) {
                    return Err(file_error(FileError::NoSuchId(id)));
                }
                tokens::revoke(&path, &id).map_err(file_error)
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "POST or GET __ds/tokens, DELETE __ds/tokens/{id}",
        )),
    }
}
