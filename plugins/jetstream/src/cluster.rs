//! The connection to the cluster: the plugin's own tokio runtime, the NATS client, the JetStream
//! streams this engine uses (created when missing, checked when present), and the mapping of
//! NATS failures to engine errors. Knows no protocol rule.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use durable_streams_core::abi::{EngineError, ErrorCode};

/// How to reach the cluster and lay data out in it (from `storage.jetstream.*`).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub urls: Vec<String>,
    pub credentials: Credentials,
    pub replicas: usize,
    pub shards: u32,
    pub namespace: String,
    pub request_timeout_ms: u64,
    /// 0: keep trying until the cluster answers.
    pub connect_timeout_secs: u64,
    /// 0: the server's largest message less room for headers.
    pub max_append_bytes: u64,
    /// Streams whose state is kept in memory (least recently used are dropped).
    pub cache_streams: usize,
    /// Whole-catalogue scans (sweeps, stream counts) at most this often, seconds.
    pub sweep_scan_secs: u64,
}

/// Credentials and TLS trust for the cluster.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub creds_file: Option<String>,
    pub tls_ca_file: Option<String>,
}

/// An open connection and the names of this engine's JetStream streams.
pub struct Cluster {
    pub rt: tokio::runtime::Runtime,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub cfg: ClusterSettings,
    pub connected: Arc<AtomicBool>,
    /// Signalled at every (re)connection: notifications published while this host was away
    /// were lost, so its readers must look again.
    pub reconnected: Arc<tokio::sync::Notify>,
    /// Counts (re)connections: what was built from notifications in an earlier one may lack
    /// what was published while the connection was down.
    pub epoch: Arc<AtomicU64>,
    /// Every catalogue name in order, for listings (fed by [`Cluster::catalog_notify_wildcard`]).
    pub names: Arc<crate::names::NameIndex>,
    /// The largest append accepted (bytes of body).
    pub max_append: u64,
    /// Begins every `DS-Nonce` this process publishes, so that its change listener can pass
    /// over the republished notifications of its own writes (the host wakes its readers for
    /// those when it answers them).
    pub origin: String,
    nonces: AtomicU64,
    /// Signalled when a write's outcome stayed unknown (it may be stored while the host was
    /// told nothing): the host's readers must look again.
    pub unsure: Arc<tokio::sync::Notify>,
}

pub fn unavailable(what: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorCode::UNAVAILABLE, format!("the NATS cluster did not answer: {what}"))
}

fn bad_config(msg: String) -> EngineError {
    EngineError::new(ErrorCode::BAD_CONFIG, msg)
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim_start_matches('v').split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

impl Cluster {
    pub fn catalog_stream(&self) -> String {
        format!("{}_cat", self.cfg.namespace)
    }
    pub fn data_stream(&self, shard: u32) -> String {
        format!("{}_d{shard}", self.cfg.namespace)
    }
    pub fn catalog_subject(&self, hash: &str) -> String {
        format!("{}.cat.{hash}", self.cfg.namespace)
    }
    pub fn layout_subject(&self) -> String {
        format!("{}.layout", self.cfg.namespace)
    }
    pub fn data_subject(&self, shard: u32, hash: &str, gen: u64) -> String {
        format!("{}.d.{shard}.{hash}.{gen:016x}", self.cfg.namespace)
    }
    pub fn notify_wildcard(&self) -> String {
        format!("{}.n.>", self.cfg.namespace)
    }
    /// Where the catalogue's changes are republished (headers only).
    pub fn catalog_notify_wildcard(&self) -> String {
        format!("{}.cn.>", self.cfg.namespace)
    }
    /// A nonce unique to one publish of this process, beginning with [`Cluster::origin`].
    pub fn nonce(&self) -> String {
        format!("{}{:x}", self.origin, self.nonces.fetch_add(1, Ordering::Relaxed))
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.request_timeout_ms)
    }

    /// `UNAVAILABLE` at once while this host has lost its connection to the cluster: a request
    /// that has not begun is refused (503 with `Retry-After`, nothing applied) rather than held
    /// for the request timeout. What is already in flight goes on (an append whose outcome is
    /// unknown keeps retrying its identical message).
    pub fn reachable(&self) -> Result<(), EngineError> {
        if self.connected.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(unavailable("this host has lost its connection to the cluster; nothing was applied"))
        }
    }

    /// Runs a future on the plugin's runtime from any (blocking) host thread.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Connects (waiting for the cluster as configured), checks the server version, and makes
    /// sure the catalogue and data streams exist with this engine's layout.
    pub fn connect(cfg: ClusterSettings) -> Result<Cluster, EngineError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ds-jetstream")
            .enable_all()
            .build()
            .map_err(|e| EngineError::new(ErrorCode::INTERNAL, format!("cannot start the plugin's runtime: {e}")))?;
        let connected = Arc::new(AtomicBool::new(false));
        let reconnected = Arc::new(tokio::sync::Notify::new());
        let epoch = Arc::new(AtomicU64::new(0));
        let client = rt.block_on(Self::dial(&cfg, connected.clone(), reconnected.clone(), epoch.clone()))?;
        let version = client.server_info().version;
        match parse_version(&version) {
            Some(v) if v >= crate::MIN_SERVER => {}
            _ => {
                let (a, b, c) = crate::MIN_SERVER;
                return Err(bad_config(format!(
                    "nats-server {version} at {} is older than {a}.{b}.{c}, the oldest the jetstream mode supports; upgrade the cluster",
                    cfg.urls.join(",")
                )));
            }
        }
        let mut js = {
            let _enter = rt.enter();
            jetstream::new(client.clone())
        };
        js.set_timeout(Duration::from_millis(cfg.request_timeout_ms));
        let server_max = client.server_info().max_payload as u64;
        let max_append = match cfg.max_append_bytes {
            0 => server_max.saturating_sub(64 << 10),
            n => n.min(server_max.saturating_sub(64 << 10)),
        };
        let cluster = Cluster {
            rt,
            client,
            js,
            cfg,
            connected,
            reconnected,
            epoch,
            names: Default::default(),
            max_append,
            origin: format!("{:016x}", rand::random::<u64>()),
            nonces: AtomicU64::new(0),
            unsure: Default::default(),
        };
        cluster.block(cluster.provision())?;
        Ok(cluster)
    }

    async fn dial(
        cfg: &ClusterSettings,
        connected: Arc<AtomicBool>,
        reconnected: Arc<tokio::sync::Notify>,
        epoch: Arc<AtomicU64>,
    ) -> Result<async_nats::Client, EngineError> {
        let c = &cfg.credentials;
        let flag = connected.clone();
        let epochs = epoch.clone();
        let mut opts = async_nats::ConnectOptions::new()
            .name("durable-streams-server")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // A hung or unreachable node is noticed after three unanswered pings (about 3 s),
            // and the client moves to another node instead of waiting for TCP to give up;
            // while none answers, requests are refused at once (`reachable`).
            .ping_interval(Duration::from_secs(1))
            .event_callback(move |ev| {
                let flag = flag.clone();
                let reconnected = reconnected.clone();
                let epoch = epochs.clone();
                async move {
                    match ev {
                        async_nats::Event::Connected => {
                            epoch.fetch_add(1, Ordering::AcqRel);
                            flag.store(true, Ordering::Release);
                            reconnected.notify_one();
                        }
                        async_nats::Event::Disconnected | async_nats::Event::Closed => flag.store(false, Ordering::Release),
                        _ => {}
                    }
                }
            });
        if let (Some(u), Some(p)) = (&c.user, &c.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &c.token {
            opts = opts.token(t.clone());
        }
        if let Some(f) = &c.creds_file {
            opts = opts
                .credentials_file(f)
                .await
                .map_err(|e| bad_config(format!("storage.jetstream.creds_file {f}: {e}")))?;
        }
        if let Some(ca) = &c.tls_ca_file {
            opts = opts.add_root_certificates(ca.into()).require_tls(true);
        }
        let addrs: Vec<async_nats::ServerAddr> = cfg.urls.iter().filter_map(|u| u.parse().ok()).collect();
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| unavailable(format!("connect to {}: {e}", cfg.urls.join(","))))?;
        // retry_on_initial_connect returns at once; wait for the first connection.
        let started = std::time::Instant::now();
        let mut next_note = Duration::from_secs(10);
        while client.connection_state() != async_nats::connection::State::Connected {
            if cfg.connect_timeout_secs > 0 && started.elapsed() >= Duration::from_secs(cfg.connect_timeout_secs) {
                return Err(unavailable(format!(
                    "no connection to {} within storage.jetstream.connect_timeout_secs ({})",
                    cfg.urls.join(","),
                    cfg.connect_timeout_secs
                )));
            }
            if started.elapsed() >= next_note {
                eprintln!("jetstream: still waiting for the NATS cluster at {}", cfg.urls.join(","));
                next_note += Duration::from_secs(10);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        connected.store(true, Ordering::Release);
        epoch.fetch_add(1, Ordering::AcqRel);
        Ok(client)
    }

    fn stream_config(&self, name: String, subjects: Vec<String>, per_subject: i64, republish: Option<stream::Republish>) -> stream::Config {
        stream::Config {
            name,
            subjects,
            storage: stream::StorageType::File,
            num_replicas: self.cfg.replicas,
            max_messages_per_subject: per_subject,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            republish,
            ..Default::default()
        }
    }

    /// Gets or creates one JetStream stream, retrying for a while: a cluster that has just
    /// started may still be electing its meta leader, and each stream its own.
    async fn ensure_stream(&self, cfg: stream::Config) -> Result<stream::Stream, EngineError> {
        let mut tries = 0;
        loop {
            match self.js.get_or_create_stream(cfg.clone()).await {
                Ok(s) => return Ok(s),
                Err(e) if tries < 50 => {
                    tries += 1;
                    if tries % 10 == 0 {
                        eprintln!("jetstream: creating stream {}: {e}; retrying", cfg.name);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(unavailable(format!("create stream {}: {e}", cfg.name))),
            }
        }
    }

    /// Creates the streams when missing; refuses a cluster laid out with another shard count.
    async fn provision(&self) -> Result<(), EngineError> {
        let ns = &self.cfg.namespace;
        // The catalogue's changes are republished (headers only: name, liveness, sequence) for
        // every host's name index; a catalogue made before that gains it here.
        let republish = stream::Republish {
            source: format!("{ns}.cat.>"),
            destination: format!("{ns}.cn.>"),
            headers_only: true,
        };
        let catalog = self.stream_config(
            self.catalog_stream(),
            vec![format!("{ns}.cat.>"), self.layout_subject()],
            1,
            Some(republish),
        );
        let cat = self.ensure_stream(catalog.clone()).await?;
        if cat.cached_info().config.republish.is_none() {
            self.js
                .update_stream(catalog)
                .await
                .map_err(|e| unavailable(format!("add the catalogue's change notifications: {e}")))?;
        }
        let layout = serde_json::json!({"shards": self.cfg.shards, "format": 1}).to_string();
        match cat.get_last_raw_message_by_subject(&self.layout_subject()).await {
            Ok(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                let written = v["shards"].as_u64().unwrap_or(0);
                if written != u64::from(self.cfg.shards) {
                    return Err(bad_config(format!(
                        "the data in namespace '{ns}' of the cluster was written with storage.jetstream.shards = {written}, but it is set to {}; set it back to {written}",
                        self.cfg.shards
                    )));
                }
            }
            Err(_) => {
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(layout.into())
                    .expected_last_subject_sequence(0);
                if let Ok(ack) = self.js.send_publish(self.layout_subject(), publish).await {
                    let _ = ack.await;
                }
            }
        }
        for k in 0..self.cfg.shards {
            let republish = stream::Republish {
                source: format!("{ns}.d.{k}.>"),
                destination: format!("{ns}.n.{k}.>"),
                headers_only: true,
            };
            let cfg = self.stream_config(self.data_stream(k), vec![format!("{ns}.d.{k}.>")], -1, Some(republish));
            self.ensure_stream(cfg).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(super::parse_version("2.11.0"), Some((2, 11, 0)));
        assert_eq!(super::parse_version("v2.15.1-beta.2"), Some((2, 15, 1)));
        assert!(super::parse_version("2.9.10").unwrap() < crate::MIN_SERVER);
    }
}
