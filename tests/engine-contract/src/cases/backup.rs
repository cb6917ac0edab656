//! Backups through the engine (`ext::DESCRIBE`, `ext::RESTORE`, `ext::RESTORE_WRITER`): a
//! stream copied as an export does it (described, re-created at its start, bytes appended, writer
//! state set) answers exactly as the original: same offsets and tail, same closure, producer
//! retries recognised as duplicates. An engine without them answers `UNSUPPORTED` and passes.

use abi_stable::std_types::RResult;
use durable_streams_core::abi::*;
use serde_json::json;

use crate::support::*;

pub fn a_restored_stream_answers_like_the_original(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("orig").run(e), "create")?;
    for (i, body) in [&b"one-"[..], b"two-", b"three"].iter().enumerate() {
        let a = Append {
            producer: Some(("p", 2, i as u64)),
            seq: Some(["a", "b", "c"][i]),
            ..Append::new("orig", body)
        };
        ok(a.run(e), "producer append")?;
    }
    ok(
        Append {
            producer: Some(("q", 0, 0)),
            close: true,
            ..Append::new("orig", b"!")
        }
        .run(e),
        "close by another producer",
    )?;
    let described = match ext_call(e, ext::DESCRIBE, json!({"name": "orig", "now_ms": NOW})) {
        RResult::RErr(err) if err.code == ErrorCode::UNSUPPORTED => return Ok(()),
        other => ok(other, "describe")?,
    };
    let trimmed = trim(e, "orig", 4)?.is_some();
    let d = if trimmed {
        ok(
            ext_call(e, ext::DESCRIBE, json!({"name": "orig", "now_ms": NOW})),
            "describe after a trim",
        )?
    } else {
        described
    };
    let start = d["start"].as_u64().unwrap_or(0);
    check(d["tail"] == 14 && start == if trimmed { 4 } else { 0 }, || format!("describe: {d}"))?;
    check(d["writer"]["closed"] == true && d["writer"]["stream_seq"] == "c", || {
        format!("writer: {d}")
    })?;

    // Restore as "copy": created at the start, the bytes, then the writer state.
    let restore = json!({"name": "copy", "content_type": "text/plain", "start": start, "now_ms": NOW});
    let r = ok(ext_call(e, ext::RESTORE, restore.clone()), "restore")?;
    check(r["tail"] == start, || format!("a restored stream starts at {start}: {r}"))?;
    code(
        ext_call(e, ext::RESTORE, restore),
        ErrorCode::CONFIG_CONFLICT,
        "restore over an existing stream",
    )?;
    let bad = ext_call(e, ext::RESTORE, json!({"name": "x", "start": -1}));
    code(bad, ErrorCode::INVALID_ARGUMENT, "an ill-formed restore request")?;
    let bad = ext_call(e, ext::RESTORE_WRITER, json!({"name": "copy", "writer": {"producers": "p"}}));
    code(bad, ErrorCode::INVALID_ARGUMENT, "an ill-formed writer state")?;
    let bytes = read_all(e, "orig", start, 1 << 20, NOW)?;
    ok(Append::new("copy", &bytes).run(e), "the bytes")?;
    ok(
        ext_call(
            e,
            ext::RESTORE_WRITER,
            json!({"name": "copy", "writer": d["writer"], "now_ms": NOW}),
        ),
        "restore the writer state",
    )?;
    let c = ok(
        ext_call(e, ext::DESCRIBE, json!({"name": "copy", "now_ms": NOW})),
        "describe the copy",
    )?;
    check(c == d, || format!("the copy describes as the original: {c} vs {d}"))?;
    if start > 0 {
        read_trimmed(e, "copy", 0, start)?;
    }
    let got = read_all(e, "copy", start, 1 << 20, NOW)?;
    check(got == bytes, || "the copy's bytes at the original offsets".into())?;
    // A producer's retry is a duplicate on the copy; the copy is closed.
    let retry = ok(
        Append {
            producer: Some(("p", 2, 2)),
            ..Append::new("copy", b"three")
        }
        .run(e),
        "retry",
    )?;
    check(retry.duplicate, || "a retried producer append on the copy is a duplicate".into())?;
    code(
        Append::new("copy", b"more").run(e),
        ErrorCode::CLOSED,
        "append to the restored closed stream",
    )?;
    // A fork restored as a fork.
    ok(Create::new("src2").run(e), "create")?;
    ok(Append::new("src2", b"abcd").run(e), "append")?;
    let f = json!({"name": "fork2", "content_type": "text/plain", "fork": ["src2", 2], "now_ms": NOW});
    let r = ok(ext_call(e, ext::RESTORE, f), "restore a fork")?;
    check(r["tail"] == 2, || format!("a fork at 2: {r}"))?;
    let got = read_all(e, "fork2", 0, 1 << 20, NOW)?;
    check(got == b"ab", || format!("the fork inherits: {:?}", String::from_utf8_lossy(&got)))?;
    Ok(())
}
