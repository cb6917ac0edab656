//! Subscription data: configuration (hashed for idempotent re-confirmation), stream links,
//! wake / lease state and the webhook retry schedule. Plain data, serialized for persistence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whether `id` may name a subscription: 1-256 printable ASCII characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What a client sends on PUT.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubRequest {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub streams: Option<Vec<String>>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub wake_stream: Option<String>,
    #[serde(default)]
    pub lease_ttl_ms: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
}

/// The normalized configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SubConfig {
    pub kind: String,
    pub pattern: Option<String>,
    pub streams: Vec<String>,
    pub webhook_url: Option<String>,
    pub wake_stream: Option<String>,
    pub lease_ttl_ms: u64,
    pub description: Option<String>,
}

impl SubConfig {
    /// The hash compared on re-confirmation.
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let d = Sha256::digest(bytes);
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One linked stream.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
pub struct Link {
    pub glob: bool,
    pub explicit: bool,
    /// Position processed up to (the acked offset).
    pub acked: u64,
}

/// A wake in flight.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Wake {
    pub wake_id: String,
    /// (path, tail position) for each stream with pending work when the wake was issued.
    pub snapshot: Vec<(String, u64)>,
    /// Pull-wake: the worker holding the lease.
    pub holder: Option<String>,
    pub lease_until_ms: u64,
    /// Webhook: delivered (a 2xx was received) and now waiting for the callback.
    pub delivered: bool,
}

/// Webhook retry schedule (persisted).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Retry {
    pub attempt: u32,
    pub next_attempt_at_ms: u64,
}

/// A subscription and its state.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Sub {
    pub id: String,
    pub config: SubConfig,
    pub links: BTreeMap<String, Link>,
    pub generation: u64,
    pub wake: Option<Wake>,
    pub retry: Option<Retry>,
    pub created_at_ms: u64,
    /// The stream root URL as clients saw it (for callback and JWKS URLs).
    #[serde(default)]
    pub base_url: String,
}

impl Sub {
    pub fn pending(&self, tails: &dyn Fn(&str) -> Option<u64>) -> Vec<(String, u64)> {
        self.links
            .iter()
            .filter_map(|(p, l)| tails(p).filter(|t| *t > l.acked).map(|t| (p.clone(), t)))
            .collect()
    }
}

/// Glob match over `/`-separated paths: `*` is one segment, `**` zero or more.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn go(p: &[&str], s: &[&str]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(&"**") => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
            Some(seg) => !s.is_empty() && segment(seg, s[0]) && go(&p[1..], &s[1..]),
        }
    }
    fn segment(p: &str, s: &str) -> bool {
        fn wild(p: &[u8], s: &[u8]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(b'*') => (0..=s.len()).any(|i| wild(&p[1..], &s[i..])),
                Some(c) => s.first() == Some(c) && wild(&p[1..], &s[1..]),
            }
        }
        wild(p.as_bytes(), s.as_bytes())
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    go(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("events/*", "events/a"));
        assert!(!glob_match("events/*", "events/a/b"));
        assert!(glob_match("events/**", "events/a/b"));
        assert!(glob_match("events/**", "events"));
        assert!(glob_match("**/x", "a/b/x"));
        assert!(!glob_match("events/*", "other/a"));
        assert!(glob_match("events/sync-*", "events/sync-12"));
    }
}
