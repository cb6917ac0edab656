//! Prometheus metrics: request counts by operation and status, appended bytes and messages,
//! group-commit sizes and latency, live connections, stream count, loaded plugin. Labels are
//! bounded: never a stream name.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `ds_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub status: u16,
}

/// Labels of `ds_plugin_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub name: String,
    pub version: String,
    pub abi_version: String,
    pub mode: String,
}

/// Group-commit figures, recorded by the writer thread.
#[derive(Clone)]
pub struct CommitMetrics {
    pub batch_size: Histogram,
    pub seconds: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        }
    }
}

/// Engine figures exported as gauges when the engine reports them in `stats`: (key, metric,
/// help). Counts are since the engine opened.
pub const ENGINE_FIGURES: &[(&str, &str, &str)] = &[
    (
        "dead_bytes",
        "ds_storage_dead_bytes",
        "Bytes of the engine's files holding removed data (file modes: an estimate of what compaction will drop; acid: free pages at the last compaction check)",
    ),
    ("compactions", "ds_storage_compactions", "Compactions run since the engine opened"),
    (
        "compacted_bytes",
        "ds_storage_compacted_bytes",
        "Bytes of files given back by compaction since the engine opened",
    ),
    (
        "compaction_failures",
        "ds_storage_compaction_failures",
        "Compactions that failed (for example on a full disk) and left the files as they were",
    ),
];

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub appended_bytes: Counter,
    pub appended_messages: Counter,
    /// Bytes of stream data sent in catch-up and long-poll answers (SSE not counted): what a
    /// caching proxy in front saves shows here.
    pub read_bytes: Counter,
    pub long_polls: Gauge,
    pub sse: Gauge,
    pub streams: Gauge,
    /// Bytes of stream data the engine holds, and the bytes of its files (engines that say).
    pub stream_bytes: Gauge,
    pub disk_bytes: Gauge,
    /// Figures an engine reports in its `stats` extension, by key (see [`ENGINE_FIGURES`]).
    pub engine_figures: Vec<(&'static str, Gauge)>,
    /// Streams whose head retention dropped, and the bytes that went.
    pub retention_trims: Counter,
    pub retention_dropped_bytes: Counter,
    pub plugin: Family<PluginLabels, Gauge>,
    /// How many of the engine's streams are the server's own (`__ds/...`), and when that was
    /// counted: it changes only when the server first starts on a store, and counting may
    /// read a whole catalogue (jetstream), so it is redone every 10 minutes, not per scrape.
    pub internal_streams: parking_lot::Mutex<Option<(usize, std::time::Instant)>>,
    /// Resolved `requests` counters, one slot per operation and usual status (filled on first
    /// use, so `/metrics` lists only the series that occurred).
    request_slots: Box<[std::sync::OnceLock<Counter>]>,
}

impl Metrics {
    pub fn new(commit: &CommitMetrics) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let appended_bytes = Counter::default();
        let appended_messages = Counter::default();
        let read_bytes = Counter::default();
        let long_polls = Gauge::default();
        let sse = Gauge::default();
        let streams = Gauge::default();
        let stream_bytes = Gauge::default();
        let disk_bytes = Gauge::default();
        let plugin = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "ds_http_requests",
            "HTTP requests by protocol operation and status",
            requests.clone(),
        );
        registry.register("ds_appended_bytes", "Bytes appended (stored framing)", appended_bytes.clone());
        registry.register(
            "ds_read_bytes",
            "Bytes of stream data sent in catch-up and long-poll answers (stored framing; SSE not counted)",
            read_bytes.clone(),
        );
        registry.register(
            "ds_appended_messages",
            "Messages appended (JSON messages count one each)",
            appended_messages.clone(),
        );
        registry.register(
            "ds_commit_batch_size",
            "Appends committed per group commit",
            commit.batch_size.clone(),
        );
        registry.register("ds_commit_seconds", "Duration of one group commit", commit.seconds.clone());
        registry.register("ds_live_long_poll_connections", "Long-poll requests waiting", long_polls.clone());
        registry.register("ds_live_sse_connections", "Open SSE connections", sse.clone());
        registry.register(
            "ds_streams",
            "Application streams held by the engine (the server's internal __ds/ state streams are not counted)",
            streams.clone(),
        );
        registry.register(
            "ds_storage_stream_bytes",
            "Bytes of stream data the engine holds (deleted streams kept for forks and the server's own state streams included)",
            stream_bytes.clone(),
        );
        registry.register(
            "ds_storage_disk_bytes",
            "Bytes of the engine's files, live and dead data alike (0 for engines without files)",
            disk_bytes.clone(),
        );
        let engine_figures = ENGINE_FIGURES
            .iter()
            .map(|(key, name, help)| {
                let g = Gauge::default();
                registry.register(*name, *help, g.clone());
                (*key, g)
            })
            .collect();
        let retention_trims = Counter::default();
        let retention_dropped_bytes = Counter::default();
        registry.register(
            "ds_retention_trims",
            "Times retention dropped a stream's head",
            retention_trims.clone(),
        );
        registry.register(
            "ds_retention_dropped_bytes",
            "Bytes retention dropped from the head of streams",
            retention_dropped_bytes.clone(),
        );
        registry.register("ds_plugin_info", "The loaded storage plugin", plugin.clone());
        Arc::new(Metrics {
            registry,
            requests,
            appended_bytes,
            appended_messages,
            read_bytes,
            long_polls,
            sse,
            streams,
            stream_bytes,
            disk_bytes,
            engine_figures,
            retention_trims,
            retention_dropped_bytes,
            plugin,
            internal_streams: parking_lot::Mutex::new(None),
            request_slots: (0..OPERATIONS.len() * HOT_STATUSES.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        })
    }

    /// Counts one answered request in `ds_http_requests_total`. The counters of an operation's
    /// usual answers are resolved once and kept (a label lookup per request otherwise: hashing
    /// the labels under the family's lock); others are looked up.
    pub fn count_request(&self, operation: &'static str, status: u16) {
        let slot = OPERATIONS
            .iter()
            .position(|o| *o == operation)
            .zip(HOT_STATUSES.iter().position(|s| *s == status))
            .map(|(o, s)| o * HOT_STATUSES.len() + s);
        let labels = || RequestLabels { operation, status };
        match slot {
            Some(i) => self.request_slots[i]
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements a gauge when dropped (a live connection ends however it ends).
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(g: &Gauge) -> GaugeGuard {
        g.inc();
        GaugeGuard(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every operation [`operation`] names (the request counters' slots follow this order).
const OPERATIONS: [&str; 11] = [
    "health",
    "metrics",
    "create",
    "append",
    "head",
    "delete",
    "preflight",
    "sse",
    "long_poll",
    "read",
    "other",
];
/// The statuses whose request counters are kept resolved, per operation.
const HOT_STATUSES: [u16; 5] = [200, 201, 204, 304, 404];

/// The protocol operation a request performs (a bounded label).
pub fn operation(method: &axum::http::Method, path: &str, query: Option<&str>) -> &'static str {
    use axum::http::Method;
    match path {
        "/healthz" | "/readyz" => return "health",
        "/metrics" => return "metrics",
        _ => {}
    }
    let q = query.unwrap_or("");
    match *method {
        Method::PUT => "create",
        Method::POST => "append",
        Method::HEAD => "head",
        Method::DELETE => "delete",
        Method::OPTIONS => "preflight",
        Method::GET if q.contains("live=sse") => "sse",
        Method::GET if q.contains("live=long-poll") => "long_poll",
        Method::GET => "read",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counters_kept_or_looked_up_count_alike() {
        let m = Metrics::new(&CommitMetrics::default());
        // 204 is kept resolved for appends, 409 is looked up each time: both count.
        for _ in 0..3 {
            m.count_request("append", 204);
        }
        m.count_request("append", 409);
        m.count_request("append", 409);
        let text = m.render();
        assert!(
            text.contains("ds_http_requests_total{operation=\"append\",status=\"204\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("ds_http_requests_total{operation=\"append\",status=\"409\"} 2"),
            "{text}"
        );
        // A series that never occurred is not listed.
        assert!(!text.contains("operation=\"head\""), "{text}");
    }
}
