//! The stable plugin ABI, generation 1: every type that crosses the host / plugin boundary.
//!
//! Only `abi_stable` and `#[repr(C)]` types appear here: no tokio, no std collections, no HTTP.
//! A plugin exports a [`PluginModRef`] root module (see [`export_plugin!`](crate::export_plugin));
//! the host loads it with `abi_stable`'s header path, checks [`ABI_VERSION`], reads
//! [`PluginInfo`] and calls `open(mode, config_json)` to get an [`EngineBox`].
//!
//! Compatibility rule: this generation is frozen once released. Fields and methods are never
//! added to [`PluginMod`] or [`Engine`]; small features travel through [`Engine::extension`]
//! (old plugins answer [`ErrorCode::UNSUPPORTED`]); larger ones become a new generation that the
//! host loads beside this one through an adapter.

mod checked;
mod engine;
mod error;
mod guard;
mod types;

pub use checked::SettingsChecked;
pub use engine::{ByteView, ByteViewBox, ByteView_TO, ChangeListener, ChangeListenerBox, ChangeListener_TO, Engine, EngineBox, Engine_TO};
pub use error::{EngineError, ErrorCode, ErrorDetail};
pub use guard::{guard, GuardedEngine};
pub use types::*;

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr};
use abi_stable::{declare_root_module_statics, StableAbi};

/// The ABI generation this crate defines. Hosts load plugins with the same major and a minor
/// no newer than their own.
pub const ABI_VERSION: &str = "1.0.0";

/// Extension operations (`Engine::extension`) the host calls. An engine that does not know one
/// answers `UNSUPPORTED`, and the host does without.
pub mod ext {
    /// JSON `{"streams": n, ...}`: figures for `/metrics`.
    pub const STATS: &str = "stats";
    /// JSON, once after open: `{"records_replayed", "streams", "cut_tail": {"file", "at",
    /// "dropped_bytes"} | null}`; the host logs it (a cut tail as a warning).
    pub const RECOVERY: &str = "recovery";
    /// Empty answer when the engine can serve; `UNAVAILABLE` when its storage cannot be reached
    /// (the host's `/readyz` then answers 503).
    pub const HEALTH: &str = "health";
    /// A small compare-and-set register shared by every host on the engine's storage (used by
    /// `EXTERNAL_WRITERS` engines for cluster-wide leases). Input `{"key": str}`; answer
    /// `{"revision": u64, "value": str}`, revision 0 and value "" when never written.
    pub const REGISTER_GET: &str = "register.get";
    /// Input `{"key": str, "expect": u64, "value": str}`: writes `value` if the register's
    /// revision is still `expect` (0: never written) and answers `{"revision": u64}`; answers
    /// `CONFIG_CONFLICT` when another write came first. Revisions only grow.
    pub const REGISTER_SET: &str = "register.set";
    /// Retention: input `{"name": str, "before": u64, "now_ms": u64}`. Drops the stream's whole
    /// records that end at or below `before` (a record holding `before` stays), never what a
    /// fork still reads; the stream continues (same tail, offsets unchanged) and reads below
    /// the new start answer `TRIMMED`. Answers `{"start": u64, "dropped_bytes": u64}` (`start`:
    /// the earliest retained position, a record boundary). `NOT_FOUND` / `GONE` as for reads;
    /// `UNSUPPORTED` from engines without retention.
    pub const TRIM: &str = "trim";
    /// Record boundaries: input `{"name": str, "from": u64, "to": u64, "limit": u32, "now_ms":
    /// u64}`; answers `{"starts": [u64]}`, where each append (each record) that begins at or
    /// after `from` and before `to` began, in order, at most `limit` (a fork's inherited range
    /// from its source). For viewers that show one row per append. `NOT_FOUND` / `GONE` as for
    /// reads; `UNSUPPORTED` from engines that merge appends or keep no boundaries.
    pub const RECORDS: &str = "records";
    /// Backups: input `{"name": str, "now_ms": u64}`; answers one consistent snapshot of the
    /// stream `{"start": u64, "tail": u64, "writer": {"producers": [[id, epoch, last_seq]],
    /// "stream_seq": str|null, "closed": bool, "closed_by": [id, epoch, seq]|null}}`.
    pub const DESCRIBE: &str = "stream.describe";
    /// Restores: input `{"name", "content_type", "ttl_secs"?, "expires_at_ms"?, "start"?,
    /// "fork"?: [source, position], "now_ms"}`; creates the stream empty with its offsets
    /// starting at `start` (tail = earliest retained = `start`, or a fork as given), so that
    /// appending the exported bytes gives them their original offsets. `CONFIG_CONFLICT` if it
    /// exists.
    pub const RESTORE: &str = "stream.restore";
    /// Restores: input `{"name", "writer": <as DESCRIBE answers>, "now_ms"}`; sets the producers'
    /// epochs and sequences, the last `Stream-Seq`, and closes the stream if `closed`.
    pub const RESTORE_WRITER: &str = "stream.restore_writer";
    /// Sliding TTLs across restarts: input `{"now_ms": u64}`; the engine persists the last
    /// access time of every stream with a TTL read or written since the previous call, and
    /// answers `{"saved": n}`. Called by the host every `server.ttl_save_interval_secs` (and
    /// by engines themselves at shutdown). Engines that keep nothing across restarts answer
    /// `{"saved": 0}`; `UNSUPPORTED` from engines that do not track access.
    pub const SAVE_ACCESS: &str = "access.save";
    /// The storage's own clock, for engines shared by hosts whose clocks may drift apart: empty
    /// input; answers `{"offset_ms": i64, "round_trip_ms": u64}`, where this process's wall
    /// clock plus `offset_ms` is never ahead of the storage's time (a lower bound, behind by at
    /// most the round trip). The host then decides TTL expiry, subscription leases and token
    /// expiry on that corrected clock, so every host decides them on one time. `UNSUPPORTED`
    /// from engines whose only clock is the host's.
    pub const CLOCK: &str = "clock";
}

/// The root module every plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, version and the storage modes this plugin provides.
    pub info: extern "C" fn() -> PluginInfo,
    /// Opens the engine for `mode` with `config` (a JSON object of the `[storage]` settings).
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(mode: RStr<'_>, config: RStr<'_>) -> RResult<EngineBox, EngineError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "durable_streams_plugin";
    const NAME: &'static str = "durable_streams_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION);
}

/// A plugin's [`PluginInfo`], its name and version taken from the calling crate's
/// `Cargo.toml`, the ABI version from this crate and the rustc from the build's
/// `RUSTC_VERSION` (when its build script sets it); `modes` are [`ModeInfo`] values.
///
/// ```ignore
/// pub fn info() -> PluginInfo {
///     durable_streams_core::plugin_info![ModeInfo::new("my-mode", Capabilities::DURABLE, "what it is")]
/// }
/// ```
#[macro_export]
macro_rules! plugin_info {
    ($($mode:expr),+ $(,)?) => {
        $crate::abi::PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: $crate::abi::ABI_VERSION.into(),
            rustc: option_env!("RUSTC_VERSION").unwrap_or("unknown").into(),
            modes: ::abi_stable::std_types::RVec::from(vec![$($mode),+]),
        }
    };
}

/// Exports a plugin's root module. `$info` is a `fn() -> PluginInfo`, `$open` a
/// `fn(&str, &str) -> Result<EngineBox, EngineError>`; both run under a panic guard.
///
/// ```ignore
/// durable_streams_core::export_plugin!(info = my_info, open = my_open);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (info = $info:path, open = $open:path) => {
        #[::abi_stable::export_root_module]
        pub fn durable_streams_root_module() -> $crate::abi::PluginModRef {
            extern "C" fn __ds_info() -> $crate::abi::PluginInfo {
                match ::std::panic::catch_unwind(|| $info()) {
                    Ok(info) => info,
                    Err(_) => $crate::abi::PluginInfo::panicked(),
                }
            }
            extern "C" fn __ds_open(
                mode: ::abi_stable::std_types::RStr<'_>,
                config: ::abi_stable::std_types::RStr<'_>,
            ) -> ::abi_stable::std_types::RResult<$crate::abi::EngineBox, $crate::abi::EngineError> {
                $crate::abi::guard(|| $open(mode.as_str(), config.as_str()).into())
            }
            ::abi_stable::prefix_type::PrefixTypeTrait::leak_into_prefix($crate::abi::PluginMod {
                info: __ds_info,
                open: __ds_open,
            })
        }
    };
}
