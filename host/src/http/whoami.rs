//! `GET {base}/__ds/whoami[?name=]`: the caller as the server sees it (an access token's id,
//! label, scopes and expiry; a JWT's subject and scopes; anyone, in auth mode `none`) and, with
//! `name`, the operations it may do on that stream. For the console's header and its forms.
//! Says nothing about any other credential and nothing about whether a stream exists.

use axum::http::StatusCode;
use axum::response::Response;
use durable_streams_core::ttl;

use super::error::ApiError;
use super::json::json;
use crate::auth::{Caller, Op};
use crate::state::AppState;

pub fn handle(state: &AppState, caller: &Caller, query: Option<&str>) -> Result<Response, ApiError> {
    let mut name = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (super::query::decode(k)?, super::query::decode(v)?);
        match k.as_ref() {
            "name" => name = Some(super::path::stream_name("", &v)?.into_owned()),
            crate::auth::QUERY_PARAM => {}
            other => return Err(ApiError::bad_request(format!("unknown parameter '{other}' (name)"))),
        }
    }
    let mut v = match caller {
        Caller::Anyone => serde_json::json!({
            "auth_mode": state.config.auth.mode,
            "kind": "anyone",
            "id": null,
            "label": null,
            "scopes": ["*:all"],
            "expires_at": null,
        }),
        Caller::Token(g) => serde_json::json!({
            "auth_mode": state.config.auth.mode,
            "kind": if g.is_jwt() { "jwt" } else { "token" },
            "id": &*g.id,
            "label": if g.is_jwt() { None } else { state.auth.token_label(&g.id) }.as_deref(),
            "scopes": g.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "expires_at": g.expires_ms.map(ttl::format_unix_ms),
        }),
    };
    if let Some(n) = name {
        let may: serde_json::Map<String, serde_json::Value> =
            Op::all().map(|op| (op.name().to_string(), caller.may(op, &n).into())).collect();
        v["name"] = n.into();
        v["may"] = may.into();
    }
    v["may_list"] = caller.may_somewhere(Op::Admin).into();
    Ok(json(StatusCode::OK, v))
}
