//! The reserved `__ds` control API: subscriptions (create / re-confirm / read / delete, explicit
//! streams), webhook callbacks, pull-wake claim / ack / release, and the JWKS document.
//! Errors are problem+json with an `error: {code, message}` member, as clients expect.

// Changes refuse with the finished response (one per request, never on a hot path).
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use durable_streams_core::{name, Offset};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::access;
use super::model::{Link, Sub, SubConfig, SubRequest};
use super::store::Record;
use super::view::sub_json;
use super::{ssrf, Refusal, Subscriptions};
use crate::auth::Caller;
use crate::clock::now_ms;
use crate::http::json::json;
use crate::state::AppState;

fn error(status: StatusCode, code: &str, message: impl Into<String>, extra: serde_json::Value) -> Response {
    let message = message.into();
    let mut err = serde_json::json!({"code": code, "message": message});
    if let (Some(e), Some(x)) = (err.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    let body = serde_json::json!({"type": "about:blank", "title": status.canonical_reason().unwrap_or(""), "status": status.as_u16(), "detail": message, "error": err});
    (
        status,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message, serde_json::Value::Null)
}

pub(super) fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("subscription '{id}' does not exist"),
        serde_json::Value::Null,
    )
}

fn fenced() -> Response {
    error(
        StatusCode::CONFLICT,
        "FENCED",
        "stale wake_id or generation",
        serde_json::Value::Null,
    )
}

/// The answer to a refused or unrecorded change.
fn refusal(r: Refusal<Response>) -> Response {
    match r {
        Refusal::Refused(resp) => resp,
        Refusal::Engine(e) => crate::http::error::ApiError::from(e).into_response(),
    }
}

/// A problem with a stream path in a request body, as a response.
fn invalid_stream(p: &str) -> Option<Response> {
    name::validate(p).err().map(|e| bad(format!("stream '{p}': {e}")))
}

/// Routes `rest` (the path after `{base}/__ds/`).
/// `caller` has been checked for `admin` somewhere; each route checks the streams it reaches.
pub async fn dispatch(state: &Arc<AppState>, caller: &Caller, rest: &str, parts: &Parts, body: Body) -> Response {
    let Some(subs) = state.subs.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "subscriptions are not available",
            serde_json::Value::Null,
        );
    };
    // With a shared engine, first read what other hosts changed (read-your-writes across hosts).
    if let Err(e) = subs.refresh().await {
        return crate::http::error::ApiError::from(e).into_response();
    }
    if rest == "jwks.json" && parts.method == Method::GET {
        let jwks = subs.inner.lock().keys.jwks();
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            jwks.to_string(),
        )
            .into_response();
    }
    if rest == "subscriptions" && parts.method == Method::GET {
        let inner = subs.inner.lock();
        let visible: Vec<serde_json::Value> = inner
            .subs
            .values()
            .filter(|s| super::access::sub_within(caller, s))
            .map(|s| sub_json(&inner, s))
            .collect();
        return json(StatusCode::OK, serde_json::json!({ "subscriptions": visible }));
    }
    let Some(after) = rest.strip_prefix("subscriptions/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such control route", serde_json::Value::Null);
    };
    let (id, tail) = after.split_once('/').unwrap_or((after, ""));
    if !super::model::valid_id(id) {
        return bad("subscription ids are 1-256 printable ASCII characters");
    }
    let bytes = match crate::http::read_body(body, state.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if let Some(refused) = access::existing_outside(caller, &subs, id, parts.method == Method::PUT) {
        return refused;
    }
    match (&parts.method, tail) {
        (&Method::PUT, "") => create(state, &subs, caller, id, parts, &bytes).await,
        (&Method::GET, "") => {
            let inner = subs.inner.lock();
            match inner.subs.get(id) {
                Some(s) => json(StatusCode::OK, sub_json(&inner, s)),
                None => not_found(id),
            }
        }
        (&Method::DELETE, "") => delete(&subs, id).await,
        (&Method::POST, "streams") => add_streams(&subs, caller, id, &bytes).await,
        (&Method::DELETE, t) if t.starts_with("streams/") => {
            let p = percent_decode_str(&t["streams/".len()..]).decode_utf8_lossy().into_owned();
            remove_stream(&subs, id, &p).await
        }
        (&Method::POST, "callback") => settle(&subs, id, parts, &bytes, Settle::Callback).await,
        (&Method::POST, "ack") => settle(&subs, id, parts, &bytes, Settle::Ack).await,
        (&Method::POST, "release") => settle(&subs, id, parts, &bytes, Settle::Release).await,
        (&Method::POST, "claim") => claim(&subs, id, &bytes).await,
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such control route", serde_json::Value::Null),
    }
}

async fn create(state: &AppState, subs: &Arc<Subscriptions>, caller: &Caller, id: &str, parts: &Parts, bytes: &[u8]) -> Response {
    let req: SubRequest = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid subscription: {e}")),
    };
    if let Some(refused) = access::request_outside(caller, &req) {
        return refused;
    }
    let lease = req.lease_ttl_ms.unwrap_or(30_000);
    if !(1_000..=600_000).contains(&lease) {
        return bad("lease_ttl_ms must be between 1000 and 600000");
    }
    if req.pattern.is_none() && req.streams.as_ref().is_none_or(|s| s.is_empty()) {
        return bad("a subscription needs a pattern or streams");
    }
    let mut streams = req.streams.clone().unwrap_or_default();
    for s in &streams {
        if let Some(r) = invalid_stream(s) {
            return r;
        }
    }
    streams.sort();
    streams.dedup();
    match req.kind.as_str() {
        "webhook" => {
            let Some(w) = &req.webhook else {
                return bad("webhook subscriptions need webhook.url");
            };
            if let Err(r) = ssrf::check(&w.url, subs.config.allow_loopback_http).await {
                return error(StatusCode::BAD_REQUEST, "WEBHOOK_URL_REJECTED", r.0, serde_json::Value::Null);
            }
        }
        "pull-wake" => match &req.wake_stream {
            Some(ws) => {
                if let Some(r) = invalid_stream(ws) {
                    return r;
                }
            }
            None => return bad("pull-wake subscriptions need wake_stream"),
        },
        other => return bad(format!("type must be 'webhook' or 'pull-wake', not '{other}'")),
    }
    let config = SubConfig {
        kind: req.kind.clone(),
        pattern: req.pattern.clone(),
        streams: streams.clone(),
        webhook_url: req.webhook.as_ref().map(|w| w.url.clone()),
        wake_stream: req.wake_stream.clone(),
        lease_ttl_ms: lease,
        description: req.description.clone(),
    };
    let existing = {
        let inner = subs.inner.lock();
        inner.subs.get(id).map(|e| (e.config.hash() == config.hash(), sub_json(&inner, e)))
    };
    if let Some((same, body)) = existing {
        return if same { json(StatusCode::OK, body) } else { exists_differently() };
    }
    // Link existing streams at their current tails: no historical replay.
    let mut links = std::collections::BTreeMap::new();
    if let Some(p) = &config.pattern {
        for (path, tail) in subs.matching_streams(p).await {
            links.insert(
                path.clone(),
                Link {
                    glob: true,
                    explicit: false,
                    acked: tail,
                },
            );
        }
    }
    for s in &streams {
        let tail = subs.tail_now(s).await;
        links
            .entry(s.clone())
            .or_insert(Link {
                glob: false,
                explicit: false,
                acked: tail,
            })
            .explicit = true;
    }
    let origin = crate::http::origin::of(parts, state.origin_rules());
    let (scheme, host) = match &origin {
        Some(o) => (o.scheme.as_str(), o.authority.as_str()),
        None => (if state.config.tls.active() { "https" } else { "http" }, "localhost"),
    };
    let sub = Sub {
        id: id.to_string(),
        config,
        links,
        generation: 0,
        wake: None,
        retry: None,
        created_at_ms: now_ms(),
        base_url: format!("{scheme}://{host}{}", state.config.base_path()),
    };
    let r = subs
        .mutate(|inner| match inner.subs.get(id) {
            // Created meanwhile (on this host or another): the same answer as above.
            Some(e) if e.config.hash() == sub.config.hash() => Ok((None, (StatusCode::OK, sub_json(inner, e)))),
            Some(_) => Err(exists_differently()),
            None => Ok((
                Some(Record::Put(Box::new(sub.clone()))),
                (StatusCode::CREATED, sub_json(inner, &sub)),
            )),
        })
        .await;
    match r {
        Ok((status, body)) => {
            subs.kick.notify_one();
            json(status, body)
        }
        Err(r) => refusal(r),
    }
}

fn exists_differently() -> Response {
    error(
        StatusCode::CONFLICT,
        "SUBSCRIPTION_EXISTS",
        "a subscription with this id exists with a different configuration",
        serde_json::Value::Null,
    )
}

async fn delete(subs: &Subscriptions, id: &str) -> Response {
    let r = subs
        .mutate(|inner| match inner.subs.contains_key(id) {
            true => Ok((Some(Record::Delete(id.to_string())), ())),
            false => Err(not_found(id)),
        })
        .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
struct StreamsBody {
    streams: Vec<String>,
}

async fn add_streams(subs: &Arc<Subscriptions>, caller: &Caller, id: &str, bytes: &[u8]) -> Response {
    let body: StreamsBody = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    if let Some(refused) = access::streams_outside(caller, &body.streams) {
        return refused;
    }
    let mut tails = Vec::new();
    for s in &body.streams {
        if let Some(r) = invalid_stream(s) {
            return r;
        }
        tails.push((s.clone(), subs.tail_now(s).await));
    }
    let r = subs
        .mutate(|inner| {
            let Some(cur) = inner.subs.get(id) else { return Err(not_found(id)) };
            let mut sub = cur.clone();
            for (p, t) in &tails {
                sub.links
                    .entry(p.clone())
                    .or_insert(Link {
                        glob: false,
                        explicit: false,
                        acked: *t,
                    })
                    .explicit = true;
            }
            Ok((Some(Record::Put(Box::new(sub))), ()))
        })
        .await;
    match r {
        Ok(()) => {
            subs.kick.notify_one();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => refusal(r),
    }
}

async fn remove_stream(subs: &Subscriptions, id: &str, path: &str) -> Response {
    let r = subs
        .mutate(|inner| {
            let Some(cur) = inner.subs.get(id) else { return Err(not_found(id)) };
            let mut sub = cur.clone();
            if let Some(l) = sub.links.get_mut(path) {
                l.explicit = false;
                if !l.glob {
                    sub.links.remove(path);
                }
            }
            Ok((Some(Record::Put(Box::new(sub))), ()))
        })
        .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
struct SettleBody {
    wake_id: String,
    generation: u64,
    #[serde(default)]
    acks: Vec<AckItem>,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
struct AckItem {
    stream: String,
    offset: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    Callback,
    Ack,
    Release,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn settle(subs: &Arc<Subscriptions>, id: &str, parts: &Parts, bytes: &[u8], kind: Settle) -> Response {
    let body: SettleBody = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    let mut acks = Vec::new();
    for a in &body.acks {
        match Offset::parse(&a.offset) {
            Ok(o) => acks.push((a.stream.clone(), o.0)),
            Err(e) => return bad(format!("ack offset for '{}': {e}", a.stream)),
        }
    }
    let now = now_ms();
    let token = bearer(parts).map(str::to_string);
    let r = subs
        .mutate(|inner| {
            let claims = token.as_deref().and_then(|t| inner.keys.verify(t));
            let Some((tok_sub, tok_gen, tok_wake)) = claims else {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "a valid bearer token for this wake is required",
                    serde_json::Value::Null,
                ));
            };
            if tok_sub != id {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "the token belongs to another subscription",
                    serde_json::Value::Null,
                ));
            }
            let Some(cur) = inner.subs.get(id) else { return Err(not_found(id)) };
            let want_kind = if kind == Settle::Callback { "webhook" } else { "pull-wake" };
            let current =
                cur.wake.as_ref().is_some_and(|w| {
                    w.wake_id == body.wake_id && w.wake_id == tok_wake && (kind == Settle::Callback || w.holder.is_some())
                }) && cur.generation == body.generation
                    && cur.generation == tok_gen
                    && cur.config.kind == want_kind;
            if !current {
                return Err(fenced());
            }
            let mut sub = cur.clone();
            for (p, pos) in &acks {
                if let Some(l) = sub.links.get_mut(p) {
                    l.acked = l.acked.max(*pos);
                }
            }
            if kind == Settle::Release || body.done {
                sub.wake = None;
                sub.retry = None;
            } else if let Some(w) = sub.wake.as_mut() {
                w.lease_until_ms = now + sub.config.lease_ttl_ms;
            }
            let next = !Subscriptions::pending(inner, &sub).is_empty();
            Ok((Some(Record::Put(Box::new(sub))), next))
        })
        .await;
    let next_wake = match r {
        Ok(n) => n,
        Err(r) => return refusal(r),
    };
    subs.kick.notify_one();
    if kind == Settle::Release {
        return StatusCode::NO_CONTENT.into_response();
    }
    json(StatusCode::OK, serde_json::json!({"ok": true, "next_wake": body.done && next_wake}))
}

#[derive(Deserialize)]
struct ClaimBody {
    worker: String,
}

async fn claim(subs: &Arc<Subscriptions>, id: &str, bytes: &[u8]) -> Response {
    let body: ClaimBody = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid body: {e}")),
    };
    if subs.shared {
        // Tails written through other hosts decide whether there is work to claim.
        let paths: Vec<String> = subs
            .inner
            .lock()
            .subs
            .get(id)
            .map(|s| s.links.keys().cloned().collect())
            .unwrap_or_default();
        subs.refresh_tails(paths).await;
    }
    let now = now_ms();
    let r = subs
        .mutate(|inner| {
            let Some(cur) = inner.subs.get(id) else { return Err(not_found(id)) };
            if cur.config.kind != "pull-wake" {
                return Err(bad("only pull-wake subscriptions are claimed"));
            }
            let mut sub = cur.clone();
            match &sub.wake {
                Some(w) => {
                    if let Some(h) = &w.holder {
                        if w.lease_until_ms > now {
                            return Err(error(
                                StatusCode::CONFLICT,
                                "ALREADY_CLAIMED",
                                "another worker holds the lease",
                                serde_json::json!({"current_holder": h, "generation": sub.generation}),
                            ));
                        }
                    }
                }
                None => {
                    if !Subscriptions::issue_wake(inner, &mut sub, now) {
                        return Err(error(
                            StatusCode::CONFLICT,
                            "NO_PENDING_WORK",
                            "nothing to claim",
                            serde_json::Value::Null,
                        ));
                    }
                }
            }
            let pending = Subscriptions::pending(inner, &sub);
            let lease = sub.config.lease_ttl_ms;
            let generation = sub.generation;
            let w = sub.wake.as_mut().expect("a wake exists");
            w.holder = Some(body.worker.clone());
            w.lease_until_ms = now + lease;
            if !pending.is_empty() {
                w.snapshot = pending;
            }
            let (wake_id, snapshot) = (w.wake_id.clone(), w.snapshot.clone());
            let reply = serde_json::json!({
                "wake_id": wake_id,
                "generation": generation,
                "token": inner.keys.token(id, generation, &wake_id),
                "streams": Subscriptions::streams_json(inner, &sub, &snapshot),
                "lease_ttl_ms": lease,
            });
            Ok((Some(Record::Put(Box::new(sub))), reply))
        })
        .await;
    match r {
        Ok(reply) => json(StatusCode::OK, reply),
        Err(r) => refusal(r),
    }
}
