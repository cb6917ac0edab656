//! Many producers on one stream: a group of appends that names some of them leaves the others'
//! states as they were (an engine may decide a group against the named producers alone, but
//! must keep, and on a durable engine persist, every producer's state).

use abi_stable::std_types::{RResult, RSlice};
use durable_streams_core::abi::*;

use crate::support::*;

/// Producers "a", "b", "c" each append once (seq 0) on their own, then one group appends
/// a1, d0 (a producer new to the stream), a2, d0 again (a retry inside the group), b1.
pub fn write_many_producers(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    for (p, body) in [("a", b"a0"), ("b", b"b0"), ("c", b"c0")] {
        ok(
            Append {
                producer: Some((p, 0, 0)),
                ..Append::new("s", body)
            }
            .run(e),
            p,
        )?;
    }
    let group = [
        Append {
            producer: Some(("a", 0, 1)),
            ..Append::new("s", b"a1")
        },
        Append {
            producer: Some(("d", 0, 0)),
            ..Append::new("s", b"d0")
        },
        Append {
            producer: Some(("a", 0, 2)),
            ..Append::new("s", b"a2")
        },
        Append {
            producer: Some(("d", 0, 0)),
            ..Append::new("s", b"d0")
        },
        Append {
            producer: Some(("b", 0, 1)),
            ..Append::new("s", b"b1")
        },
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
        let dup = ok(
            Append {
                producer: Some((p, 0, last)),
                ..Append::new("s", b"xx")
            }
            .run(e),
            p,
        )?;
        check(dup.duplicate, || {
            format!("producer {p}'s seq {last} was taken: a retry is a duplicate")
        })?;
        let gap = Append {
            producer: Some((p, 0, last + 2)),
            ..Append::new("s", b"xx")
        }
        .run(e);
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
