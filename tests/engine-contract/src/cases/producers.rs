//! Many producers on one stream: a group of appends that names some of them leaves the others'
//! states as they were (an engine may decide a group against the named producers alone, but
//! must keep, and on a durable engine persist, every producer's state).

use abi_stable::std_types::{RResult, RSlice};
use durable_streams_core::abi::*;

use crate::support::*;

/// An append of `body` to `s` by producer `id` (epoch 0) with sequence number `seq`.
fn by<'a>(id: &'a str, seq: u64, body: &'a [u8]) -> Append<'a> {
    Append {
        producer: Some((id, 0, seq)),
        ..Append::new("s", body)
    }
}

/// Producers "a", "b", "c" each append once (seq 0) on their own, then one group appends
/// a1, d0 (a producer new to the stream), a2, d0 again (a retry inside the group), b1.
pub fn write_many_producers(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    for (p, body) in [("a", b"a0"), ("b", b"b0"), ("c", b"c0")] {
        ok(by(p, 0, body).run(e), p)?;
    }
    let group = [
        by("a", 1, b"a1"),
        by("d", 0, b"d0"),
        by("a", 2, b"a2"),
        by("d", 0, b"d0"),
        by("b", 1, b"b1"),
    ];
    let reqs: Vec<AppendRequest<'_>> = group.iter().map(|a| a.req()).collect();
    let out = e.append_many(RSlice::from(&reqs[..]));
    check(out.len() == reqs.len(), || "one result per request".into())?;
    for (i, r) in out.iter().enumerate() {
        match r {
            RResult::ROk(o) => check(o.duplicate == (i == 3), || format!("group #{i}: {o:?}"))?,
            RResult::RErr(err) => return Err(Failure::new(format!("group #{i}: {err:?}"))),
        }
    }
    Ok(())
}

/// What [`write_many_producers`] left: every producer's last sequence number, the ones the
/// group did not name included.
pub fn verify_many_producers(e: &EngineBox) -> Result<(), Failure> {
    check(read_all(e, "s", 0, 1 << 20, NOW)? == b"a0b0c0a1d0a2b1", || {
        "the group's appends in order, the retry once".into()
    })?;
    // A retry of each producer's last append is a duplicate; its next one is taken.
    for (p, last) in [("a", 2u64), ("b", 1), ("c", 0), ("d", 0)] {
        let dup = ok(by(p, last, b"xx").run(e), p)?;
        check(dup.duplicate, || {
            format!("producer {p}'s seq {last} was taken: a retry is a duplicate")
        })?;
        let gap = by(p, last + 2, b"xx").run(e);
        check(matches!(&gap, RResult::RErr(err) if err.code == ErrorCode::SEQUENCE_GAP), || {
            format!("producer {p} expects seq {}: {gap:?}", last + 1)
        })?;
    }
    Ok(())
}

/// [`write_many_producers`] then [`verify_many_producers`] on one engine.
pub fn a_group_keeps_the_producers_it_does_not_name(e: &EngineBox) -> Result<(), Failure> {
    write_many_producers(e)?;
    verify_many_producers(e)
}
