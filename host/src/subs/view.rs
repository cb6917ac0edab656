//! A subscription as the control API shows it: configuration, per-stream cursors, the pending
//! wake and the retry schedule. Pure; the routes decide who sees it.

use durable_streams_core::ttl::format_unix_ms;
use durable_streams_core::Offset;

use super::model::Sub;
use super::Inner;

pub fn sub_json(inner: &Inner, sub: &Sub) -> serde_json::Value {
    let streams: Vec<serde_json::Value> = sub
        .links
        .iter()
        .map(|(p, l)| serde_json::json!({"path": p, "link_type": if l.explicit { "explicit" } else { "glob" }, "acked_offset": Offset(l.acked).to_string()}))
        .collect();
    let webhook = sub.config.webhook_url.as_ref().map(|u| {
        serde_json::json!({"url": u, "signing": {"alg": "ed25519", "kid": inner.keys.active_kid(), "jwks_url": format!("{}/__ds/jwks.json", sub.base_url)}})
    });
    let wake = sub.wake.as_ref().map(|w| {
        let snapshot: Vec<serde_json::Value> = w
            .snapshot
            .iter()
            .map(|(p, t)| serde_json::json!({"path": p, "offset": Offset(*t).to_string()}))
            .collect();
        serde_json::json!({
            "wake_id": w.wake_id, "holder": w.holder, "lease_until": format_unix_ms(w.lease_until_ms),
            "delivered": w.delivered, "snapshot": snapshot,
        })
    });
    let retry = sub
        .retry
        .as_ref()
        .map(|r| serde_json::json!({"attempt": r.attempt, "next_attempt_at": format_unix_ms(r.next_attempt_at_ms)}));
    serde_json::json!({
        "id": sub.id,
        "subscription_id": sub.id,
        "type": sub.config.kind,
        "pattern": sub.config.pattern,
        "streams": streams,
        "webhook": webhook,
        "wake_stream": sub.config.wake_stream,
        "lease_ttl_ms": sub.config.lease_ttl_ms,
        "created_at": format_unix_ms(sub.created_at_ms),
        "status": if sub.retry.is_some() { "failed" } else { "active" },
        "generation": sub.generation,
        "description": sub.config.description,
        "wake": wake,
        "retry": retry,
    })
}
