//! Offline commands: `list`, `export`, `import`. Each opens the configured engine through its
//! plugin, exactly as the server would, and talks to it directly (no HTTP).

pub mod kit;
mod transfer;

pub use transfer::{export, import, Conflict, TransferError};

use abi_stable::std_types::{ROption, RStr};
use durable_streams_core::abi::ListRequest;
use durable_streams_core::{ttl, Offset};

use crate::plugin::Storage;
use crate::state::now_ms;

/// Prints every live stream with its metadata, one per line (tab-separated, with a header).
pub fn list(storage: &Storage, prefix: &str, out: &mut dyn std::io::Write) -> Result<usize, TransferError> {
    writeln!(out, "name\tcontent_type\tnext_offset\tclosed\tttl_secs\texpires_at")?;
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let page = storage.call_sync(|e| {
            e.list(&ListRequest {
                prefix: RStr::from(prefix),
                start_after: match &after {
                    Some(a) => ROption::RSome(RStr::from(a.as_str())),
                    None => ROption::RNone,
                },
                limit: 1000,
                now_ms: now_ms(),
            })
        })?;
        if page.is_empty() {
            return Ok(n);
        }
        for l in page.iter().filter(|l| !l.name.starts_with("__ds/")) {
            let m = &l.meta;
            let ttl_s = m.lifetime.ttl_secs.into_option().map(|t| t.to_string()).unwrap_or_default();
            let exp = m.lifetime.expires_at_ms.into_option().map(ttl::format_unix_ms).unwrap_or_default();
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                l.name,
                m.content_type,
                Offset(m.tail),
                m.closed,
                ttl_s,
                exp
            )?;
            n += 1;
        }
        after = page.last().map(|l| l.name.to_string());
    }
}
