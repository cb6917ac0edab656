//! Which subscriptions a caller may manage (`auth.mode = "token"`): those whose glob, explicit
//! streams and wake stream all lie inside the caller's `admin` scope. Decided before a route
//! acts, from the request and the subscription as stored; owns no subscription behaviour.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::model::{Sub, SubConfig, SubRequest};
use super::Subscriptions;
use crate::auth::{Caller, Op};
use crate::http::error::ApiError;

/// Whether `caller` may manage a subscription over `pattern`, `streams` and `wake_stream`.
fn within<'a>(caller: &Caller, pattern: Option<&str>, streams: impl IntoIterator<Item = &'a String>, wake_stream: Option<&str>) -> bool {
    pattern.is_none_or(|p| caller.may_pattern(Op::Admin, p))
        && streams.into_iter().all(|s| caller.may(Op::Admin, s))
        && wake_stream.is_none_or(|w| caller.may(Op::Admin, w))
}

fn config_within(caller: &Caller, c: &SubConfig) -> bool {
    within(caller, c.pattern.as_deref(), &c.streams, c.wake_stream.as_deref())
}

/// Whether `caller` may manage `sub`: its configuration, every stream linked to it (streams
/// added after creation included) and every stream its pending wake names.
pub fn sub_within(caller: &Caller, sub: &Sub) -> bool {
    config_within(caller, &sub.config)
        && sub.links.keys().all(|p| caller.may(Op::Admin, p))
        && sub
            .wake
            .as_ref()
            .is_none_or(|w| w.snapshot.iter().all(|(p, _)| caller.may(Op::Admin, p)))
}

fn forbidden(what: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("{what} reaches streams outside this token's admin scope"),
    )
    .into_response()
}

#[derive(Deserialize)]
struct StreamsBody {
    streams: Vec<String>,
}

/// A refusal for a subscription route (`id`, `tail` after it), or `None` to go on. Bodies that
/// do not parse are left to the route, which answers 400.
pub fn check(caller: &Caller, subs: &Subscriptions, id: &str, method: &Method, tail: &str, body: &[u8]) -> Option<Response> {
    if matches!(caller, Caller::Anyone) {
        return None;
    }
    let outside = subs.inner.lock().subs.get(id).is_some_and(|s| !sub_within(caller, s));
    if outside {
        return Some(forbidden("this subscription"));
    }
    match (method, tail) {
        (&Method::PUT, "") => match serde_json::from_slice::<SubRequest>(body) {
            Ok(r) if !within(caller, r.pattern.as_deref(), r.streams.iter().flatten(), r.wake_stream.as_deref()) => {
                Some(forbidden("the subscription's pattern or streams"))
            }
            _ => None,
        },
        (&Method::POST, "streams") => match serde_json::from_slice::<StreamsBody>(body) {
            Ok(b) if !within(caller, None, &b.streams, None) => Some(forbidden("a stream added")),
            _ => None,
        },
        _ => None,
    }
}
