//! Reads: bounded, whole records, tail handling.

use abi_stable::std_types::RStr;
use durable_streams_core::abi::*;

use crate::support::*;

fn rd(e: &EngineBox, name: &str, start: ReadStart, pos: u64, max: u64) -> abi_stable::std_types::RResult<ReadChunk, EngineError> {
    e.read(&ReadRequest {
        name: RStr::from(name),
        start,
        position: pos,
        max_bytes: max,
        now_ms: NOW,
    })
}

pub fn reads_are_bounded_and_whole_records(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    for body in [&b"aaaa"[..], b"bbbb", b"cccccccc", b"d"] {
        ok(Append::new("s", body).run(e), "append")?;
    }
    let c = ok(rd(e, "s", ReadStart::At, 0, 9), "read 9")?;
    check(c.data.bytes().as_slice() == b"aaaabbbb" && c.next == 8, || {
        format!("bounded read returned next {}", c.next)
    })?;
    let c = ok(rd(e, "s", ReadStart::At, 8, 1), "read 1")?;
    check(c.data.bytes().as_slice() == b"cccccccc" && c.next == 16, || {
        "a record larger than max_bytes is returned whole".into()
    })?;
    check(read_all(e, "s", 0, 5, NOW)? == b"aaaabbbbccccccccd", || "chunked read-all".into())
}

pub fn read_at_tail_and_beyond(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"xyz",
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    let c = ok(rd(e, "s", ReadStart::At, 3, 100), "read at tail")?;
    check(c.data.bytes().is_empty() && c.next == 3 && c.meta.tail == 3, || {
        "read at tail is empty".into()
    })?;
    code(rd(e, "s", ReadStart::At, 4, 100), ErrorCode::OFFSET_BEYOND_TAIL, "read past tail")?;
    Ok(())
}

pub fn read_tail_start(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"xyz",
            closed: true,
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    let c = ok(rd(e, "s", ReadStart::Tail, 0, 100), "read from tail")?;
    check(c.data.bytes().is_empty() && c.next == 3 && c.meta.closed, || {
        "tail read is empty, at the tail, with closure".into()
    })
}

/// A reader continuing where its last read stopped sees what was appended since, and nothing of
/// an earlier incarnation of the name (engines that fetch ahead must check what they kept).
pub fn continued_reads_see_changes(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    for _ in 0..6 {
        ok(Append::new("s", b"aaaa").run(e), "append")?;
    }
    let c = ok(rd(e, "s", ReadStart::At, 0, 8), "first read")?;
    check(c.next == 8, || format!("first read stopped at {}", c.next))?;
    for _ in 0..2 {
        ok(Append::new("s", b"bbbb").run(e), "append more")?;
    }
    let c = ok(rd(e, "s", ReadStart::At, 8, 100), "continued read")?;
    check(c.data.bytes().as_slice() == b"aaaaaaaaaaaaaaaabbbbbbbb" && c.next == 32, || {
        format!(
            "continued read returned {:?}, next {}",
            String::from_utf8_lossy(c.data.bytes().as_slice()),
            c.next
        )
    })?;
    ok(rd(e, "s", ReadStart::At, 0, 8), "read before delete")?;
    ok(delete(e, "s", NOW), "delete")?;
    ok(Create::new("s").run(e), "re-create")?;
    for _ in 0..6 {
        ok(Append::new("s", b"zzzz").run(e), "append to the new stream")?;
    }
    let c = ok(rd(e, "s", ReadStart::At, 8, 8), "read of the new stream")?;
    check(c.data.bytes().as_slice() == b"zzzzzzzz" && c.next == 16, || {
        format!(
            "the re-created stream read {:?}",
            String::from_utf8_lossy(c.data.bytes().as_slice())
        )
    })
}
