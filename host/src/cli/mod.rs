//! Offline commands: `list`, `export`, `import`. Each opens the configured engine through its
//! plugin, exactly as the server would, and talks to it directly (no HTTP).

pub mod kit;
mod remote;
pub mod tokens;
mod transfer;

pub use remote::{remote_export, remote_import, remote_list, RemoteTarget};
pub use transfer::{check, export, export_where, import, Conflict, Exported, ImportReport, LogSink, Plan, SubscriptionSink, TransferError};

use abi_stable::std_types::{ROption, RStr};
use durable_streams_core::abi::{ListRequest, StreamListing};
use durable_streams_core::{ttl, Offset};

use crate::clock::now_ms;
use crate::plugin::Storage;

/// Visits every live application stream under `prefix`, in name order, a page at a time.
/// The server's internal state streams (`__ds/...`) are not application data and are skipped.
pub fn for_each_stream(
    storage: &Storage,
    prefix: &str,
    mut f: impl FnMut(&StreamListing) -> Result<(), TransferError>,
) -> Result<(), TransferError> {
    let mut after: Option<String> = None;
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
        let Some(last) = page.last() else { return Ok(()) };
        after = Some(last.name.to_string());
        for l in page
            .iter()
            .filter(|l| !l.name.starts_with(durable_streams_core::name::INTERNAL_PREFIX))
        {
            f(l)?;
        }
    }
}

/// `n` things, the noun in the plural unless there is exactly one ("1 stream", "2 streams").
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Prints every live stream with its metadata, one per line (tab-separated, with a header; the
/// columns named as the listing API names them).
pub fn list(storage: &Storage, prefix: &str, out: &mut dyn std::io::Write) -> Result<usize, TransferError> {
    writeln!(out, "name\tcontent_type\ttail_offset\tclosed\tttl_secs\texpires_at")?;
    let mut n = 0;
    for_each_stream(storage, prefix, |l| {
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
        Ok(())
    })?;
    Ok(n)
}
