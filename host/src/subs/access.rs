//! Which subscriptions a caller may manage (`auth.mode = "token"`): those whose glob, explicit
//! streams and wake stream all lie inside the caller's `admin` scope. Asked before a route acts
//! (the subscription as stored) and by the routes that add streams (what they parsed); owns no
//! subscription behaviour.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

/// The answer when the subscription `id` exists and reaches outside `caller`'s scope, or `None`
/// to go on: the same 404 as a missing one (so ids outside the scope cannot be probed), except
/// for a create (PUT), which cannot take the id and says 403. What a request would add is
/// checked by the route, after it has parsed the body, with [`request_outside`] and
/// [`streams_outside`].
pub fn existing_outside(caller: &Caller, subs: &Subscriptions, id: &str, creating: bool) -> Option<Response> {
    if matches!(caller, Caller::Anyone) {
        return None;
    }
    let outside = subs.inner.lock().subs.get(id).is_some_and(|s| !sub_within(caller, s));
    outside.then(|| {
        if creating {
            forbidden("this subscription")
        } else {
            super::routes::not_found(id)
        }
    })
}

/// A 403 if `caller` may not manage a subscription as `req` asks for it.
pub fn request_outside(caller: &Caller, req: &SubRequest) -> Option<Response> {
    let ok = within(
        caller,
        req.pattern.as_deref(),
        req.streams.iter().flatten(),
        req.wake_stream.as_deref(),
    );
    (!ok).then(|| forbidden("the subscription's pattern or streams"))
}

/// A 403 if `caller` may not add `streams` to a subscription.
pub fn streams_outside(caller: &Caller, streams: &[String]) -> Option<Response> {
    (!within(caller, None, streams, None)).then(|| forbidden("a stream added"))
}
