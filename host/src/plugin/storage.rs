//! The host's handle on an opened engine: calls it inline or off the async workers, per its
//! capabilities, and tracks poisoning. Knows nothing of HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RStr, RVec};
use durable_streams_core::abi::{
    AppendOutcome, Capabilities, EngineBox, EngineError, ErrorCode, HeadRequest, ListRequest, PluginInfo, StreamListing, StreamMeta,
};

use super::writer::{AppendParts, GroupWriter, OwnedAppend, WriterSettings};
use super::LoadedPlugin;

/// Failure to open an engine.
#[derive(Debug, thiserror::Error)]
#[error("plugin '{plugin}' could not open mode '{mode}': {source}")]
pub struct StorageError {
    pub plugin: String,
    pub mode: String,
    #[source]
    pub source: Box<EngineError>,
}

/// An opened storage engine.
#[derive(Clone)]
pub struct Storage {
    engine: Arc<EngineBox>,
    capabilities: Capabilities,
    poisoned: Arc<AtomicBool>,
    writer: Option<Arc<GroupWriter>>,
    /// Group-commit figures (exported as metrics).
    pub commit: crate::metrics::CommitMetrics,
    pub plugin: Arc<PluginInfo>,
    pub mode: String,
}

impl Storage {
    /// Opens `mode` from a loaded plugin with the `[storage]` settings as JSON (one group of
    /// appends in flight at a time: see [`Storage::open_with`]).
    pub fn open(plugin: &LoadedPlugin, mode: &str, config_json: &str) -> Result<Storage, StorageError> {
        Self::open_with(plugin, mode, config_json, 1)
    }

    /// [`Storage::open`] with `append_lanes` groups of appends in flight at once for an engine
    /// that declares `CONCURRENT_GROUPS` (0 counts as 1); other engines always get one.
    pub fn open_with(plugin: &LoadedPlugin, mode: &str, config_json: &str, append_lanes: usize) -> Result<Storage, StorageError> {
        let caps = plugin
            .info
            .modes
            .iter()
            .find(|m| m.mode.as_str() == mode)
            .map(|m| m.capabilities)
            .unwrap_or_default();
        match (plugin.module.open())(RStr::from(mode), RStr::from(config_json)) {
            RResult::ROk(engine) => Ok(Self::from_engine_with(engine, caps, plugin.info.clone(), mode, append_lanes)),
            RResult::RErr(source) => Err(StorageError {
                plugin: plugin.info.name.to_string(),
                mode: mode.into(),
                source: Box::new(source),
            }),
        }
    }

    /// Wraps an engine linked in-process (embedding): `info` is the engine's plugin info, whose
    /// entry for `mode` gives the capabilities.
    pub fn embedded(engine: EngineBox, info: PluginInfo, mode: &str) -> Storage {
        let caps = info
            .modes
            .iter()
            .find(|m| m.mode.as_str() == mode)
            .map(|m| m.capabilities)
            .unwrap_or_default();
        Self::from_engine(engine, caps, info, mode)
    }

    /// Wraps an engine built in-process (embedding, tests).
    pub fn from_engine(engine: EngineBox, capabilities: Capabilities, plugin: PluginInfo, mode: &str) -> Storage {
        Self::from_engine_with(engine, capabilities, plugin, mode, 1)
    }

    /// [`Storage::from_engine`] with a number of append lanes (see [`Storage::open_with`]).
    pub fn from_engine_with(engine: EngineBox, capabilities: Capabilities, plugin: PluginInfo, mode: &str, append_lanes: usize) -> Storage {
        let engine = Arc::new(engine);
        let commit = crate::metrics::CommitMetrics::default();
        let writer = if capabilities.contains(Capabilities::BATCH_APPEND) {
            let settings = WriterSettings {
                // Synced local engines pay an fsync per group: a short wait for stragglers pays
                // off. A network engine's lanes overlap their round trips instead.
                max_wait: if capabilities.contains(Capabilities::SYNCED) && !capabilities.contains(Capabilities::CONCURRENT_GROUPS) {
                    std::time::Duration::from_micros(500)
                } else {
                    std::time::Duration::ZERO
                },
                lanes: if capabilities.contains(Capabilities::CONCURRENT_GROUPS) {
                    append_lanes.max(1)
                } else {
                    1
                },
            };
            Some(Arc::new(GroupWriter::start(engine.clone(), commit.clone(), settings)))
        } else {
            None
        };
        Storage {
            engine,
            capabilities,
            poisoned: Arc::new(AtomicBool::new(false)),
            writer,
            commit,
            plugin: Arc::new(plugin),
            mode: mode.into(),
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Whether the engine panicked (readiness fails while it is).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn observe<T>(&self, r: RResult<T, EngineError>) -> Result<T, EngineError> {
        match r {
            RResult::ROk(v) => Ok(v),
            RResult::RErr(e) => {
                if (e.code == ErrorCode::PANICKED || e.code == ErrorCode::POISONED) && !self.poisoned.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, plugin = %self.plugin.name, "storage engine panicked; marking it poisoned");
                }
                Err(e)
            }
        }
    }

    /// Runs one engine call: inline for non-blocking engines, on the blocking pool otherwise.
    pub async fn call<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&EngineBox) -> RResult<T, EngineError> + Send + 'static,
    {
        if self.capabilities.contains(Capabilities::BLOCKING_IO) {
            let engine = self.engine.clone();
            match tokio::task::spawn_blocking(move || f(&engine)).await {
                Ok(r) => self.observe(r),
                Err(e) => Err(EngineError::new(ErrorCode::INTERNAL, format!("engine task failed: {e}"))),
            }
        } else {
            self.observe(f(&self.engine))
        }
    }

    /// Runs a `head` call: inline when the engine answers it from memory (`MEMORY_HEAD`) or
    /// never blocks, on the blocking pool otherwise.
    pub async fn call_head<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&EngineBox) -> RResult<T, EngineError> + Send + 'static,
    {
        if self.capabilities.contains(Capabilities::MEMORY_HEAD) {
            self.observe(f(&self.engine))
        } else {
            self.call(f).await
        }
    }

    /// Whether `head` answers on the calling thread (`MEMORY_HEAD`, or an engine that never
    /// blocks).
    fn head_inline(&self) -> bool {
        self.capabilities.contains(Capabilities::MEMORY_HEAD) || !self.capabilities.contains(Capabilities::BLOCKING_IO)
    }

    /// One stream's metadata now: on the calling thread when the engine answers it from memory,
    /// else on the blocking pool (with a copy of the name).
    pub async fn head(&self, name: &str) -> Result<StreamMeta, EngineError> {
        if self.head_inline() {
            return self.observe(self.engine.head(&HeadRequest {
                name: RStr::from(name),
                now_ms: crate::clock::now_ms(),
            }));
        }
        let name = name.to_string();
        self.call(move |e| {
            e.head(&HeadRequest {
                name: RStr::from(name.as_str()),
                now_ms: crate::clock::now_ms(),
            })
        })
        .await
    }

    /// One page of `list`: up to `limit` live streams under `prefix`, in name order, after
    /// `start_after` (internal streams included: callers decide whether to show them).
    pub async fn list_page(&self, prefix: String, start_after: Option<String>, limit: u32) -> Result<RVec<StreamListing>, EngineError> {
        self.call(move |e| {
            e.list(&ListRequest {
                prefix: RStr::from(prefix.as_str()),
                start_after: match &start_after {
                    Some(a) => ROption::RSome(RStr::from(a.as_str())),
                    None => ROption::RNone,
                },
                limit,
                now_ms: crate::clock::now_ms(),
            })
        })
        .await
    }

    /// An append whose parts the caller holds: called on this thread when the engine neither
    /// groups appends nor blocks (nothing copied), else as [`Storage::append`] with an owned copy.
    ///
    /// Queued at once: what is awaited holds only the answer's receiver, so the request's future
    /// stays small (it is moved along the call chain and into a box).
    pub async fn append_parts(&self, req: AppendParts<'_>) -> Result<AppendOutcome, EngineError> {
        if let Some(w) = &self.writer {
            let answer = w.submit(req.into_owned());
            return self.observe(GroupWriter::wait(answer).await);
        }
        if !self.capabilities.contains(Capabilities::BLOCKING_IO) {
            return self.observe(self.engine.append(&req.as_request()));
        }
        Box::pin(self.append(req.into_owned())).await
    }

    /// Appends: through the group-commit writer for `BATCH_APPEND` engines, else as one call.
    pub async fn append(&self, req: OwnedAppend) -> Result<AppendOutcome, EngineError> {
        match &self.writer {
            Some(w) => {
                let r = GroupWriter::wait(w.submit(req)).await;
                self.observe(r)
            }
            None => self.call(move |e| e.append(&req.as_request())).await,
        }
    }

    /// Starts an append now, so appends submitted in order commit in order (callers may submit
    /// under a sync lock and await the result after releasing it).
    pub fn submit_append(
        &self,
        req: OwnedAppend,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<AppendOutcome, EngineError>> + Send>> {
        match &self.writer {
            Some(w) => {
                let rx = w.submit(req);
                let this = self.clone();
                Box::pin(async move { this.observe(GroupWriter::wait(rx).await) })
            }
            None => {
                let r = self.call_sync(|e| e.append(&req.as_request()));
                Box::pin(std::future::ready(r))
            }
        }
    }

    /// Runs a call synchronously (for startup, shutdown and the command line).
    pub fn call_sync<T>(&self, f: impl FnOnce(&EngineBox) -> RResult<T, EngineError>) -> Result<T, EngineError> {
        self.observe(f(&self.engine))
    }
}
