//! Plugin discovery, loading and selection by storage mode; the only place that touches `.so` files.

mod loader;
mod storage;
mod writer;

pub use loader::{bundled_dir as loader_bundled_dir, discover, load_one, select, LoadedPlugin, PluginError, Rejected};
pub use storage::{Storage, StorageError};
pub use writer::{AppendParts, OwnedAppend};
