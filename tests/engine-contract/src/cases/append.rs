//! Appends: ordering, closure, content type, Stream-Seq, idempotent producers, batches.

use abi_stable::std_types::{RSlice, RStr};
use durable_streams_core::abi::*;

use crate::support::*;

pub fn appends_advance_tail_and_read_back(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    let a = ok(Append::new("s", b"one").run(e), "append 1")?;
    let b = ok(Append::new("s", b"two!").run(e), "append 2")?;
    check(a.tail == 3 && b.tail == 7 && !a.duplicate, || {
        format!("tails {} {}", a.tail, b.tail)
    })?;
    let data = read_all(e, "s", 0, 1 << 20, NOW)?;
    check(data == b"onetwo!", || "data must read back in order".into())
}

pub fn close_is_atomic_with_final_append(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    let out = ok(
        Append {
            close: true,
            ..Append::new("s", b"last")
        }
        .run(e),
        "append+close",
    )?;
    check(out.closed && out.tail == 4, || {
        "append-with-close must close and include the data".into()
    })?;
    let m = ok(head(e, "s", NOW), "head")?;
    check(m.closed && m.tail == 4, || "closure and data must be visible together".into())
}

pub fn closed_stream_refuses_appends_with_tail(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"abc",
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    ok(
        Append {
            close: true,
            ..Append::new("s", b"")
        }
        .run(e),
        "close",
    )?;
    let err = code(Append::new("s", b"more").run(e), ErrorCode::CLOSED, "append after close")?;
    check(err.detail.tail == 3 && err.detail.closed, || {
        format!("CLOSED detail must carry the final tail, got {}", err.detail.tail)
    })
}

pub fn repeated_close_only_is_duplicate(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    ok(
        Append {
            close: true,
            ..Append::new("s", b"")
        }
        .run(e),
        "close",
    )?;
    let again = ok(
        Append {
            close: true,
            ..Append::new("s", b"")
        }
        .run(e),
        "close again",
    )?;
    check(again.duplicate && again.closed, || {
        "a repeated close-only is a duplicate success".into()
    })
}

pub fn content_type_mismatch(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    code(
        Append {
            ct: Some("application/json"),
            ..Append::new("s", b"1,")
        }
        .run(e),
        ErrorCode::CONTENT_TYPE_MISMATCH,
        "mismatch",
    )?;
    ok(
        Append {
            ct: Some("Text/Plain; charset=utf-8"),
            ..Append::new("s", b"x")
        }
        .run(e),
        "same essence",
    )?;
    Ok(())
}

pub fn stream_seq_is_bytewise_increasing(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    ok(
        Append {
            seq: Some("2"),
            ..Append::new("s", b"a")
        }
        .run(e),
        "seq 2",
    )?;
    code(
        Append {
            seq: Some("10"),
            ..Append::new("s", b"b")
        }
        .run(e),
        ErrorCode::STREAM_SEQ_REGRESSION,
        "seq 10 after 2",
    )?;
    code(
        Append {
            seq: Some("2"),
            ..Append::new("s", b"b")
        }
        .run(e),
        ErrorCode::STREAM_SEQ_REGRESSION,
        "duplicate seq",
    )?;
    ok(
        Append {
            seq: Some("3"),
            ..Append::new("s", b"c")
        }
        .run(e),
        "seq 3",
    )?;
    let data = read_all(e, "s", 0, 1 << 20, NOW)?;
    check(data == b"ac", || "rejected appends must not be stored".into())
}

pub fn producer_dedupe_and_fencing(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    let first = ok(
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("s", b"a")
        }
        .run(e),
        "p0/0",
    )?;
    check(!first.duplicate && first.producer.into_option().map(|p| p.seq) == Some(0), || {
        "first producer append".into()
    })?;
    ok(
        Append {
            producer: Some(("p", 0, 1)),
            ..Append::new("s", b"b")
        }
        .run(e),
        "p0/1",
    )?;
    let dup = ok(
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("s", b"a")
        }
        .run(e),
        "retry p0/0",
    )?;
    check(dup.duplicate && dup.producer.into_option().map(|p| p.seq) == Some(1), || {
        "retry must be a duplicate reporting the highest seq".into()
    })?;
    let gap = code(
        Append {
            producer: Some(("p", 0, 5)),
            ..Append::new("s", b"x")
        }
        .run(e),
        ErrorCode::SEQUENCE_GAP,
        "gap",
    )?;
    check(gap.detail.expected_seq == 2 && gap.detail.received_seq == 5, || "gap detail".into())?;
    code(
        Append {
            producer: Some(("p", 1, 3)),
            ..Append::new("s", b"x")
        }
        .run(e),
        ErrorCode::NEW_EPOCH_SEQ_NOT_ZERO,
        "new epoch seq 3",
    )?;
    ok(
        Append {
            producer: Some(("p", 1, 0)),
            ..Append::new("s", b"c")
        }
        .run(e),
        "p1/0",
    )?;
    let stale = code(
        Append {
            producer: Some(("p", 0, 2)),
            ..Append::new("s", b"x")
        }
        .run(e),
        ErrorCode::STALE_EPOCH,
        "stale",
    )?;
    check(stale.detail.producer_epoch == 1, || "stale detail carries the current epoch".into())?;
    let data = read_all(e, "s", 0, 1 << 20, NOW)?;
    check(data == b"abc", || format!("stored {:?}", String::from_utf8_lossy(&data)))
}

pub fn producer_state_is_per_stream(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s1").run(e), "create")?;
    ok(Create::new("s2").run(e), "create")?;
    ok(
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("s1", b"a")
        }
        .run(e),
        "s1",
    )?;
    let o = ok(
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("s2", b"a")
        }
        .run(e),
        "s2",
    )?;
    check(!o.duplicate, || "producer state must not leak across streams".into())
}

pub fn append_many_equals_sequential_appends(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("x").run(e), "create")?;
    ok(Create::new("y").run(e), "create")?;
    let reqs = [
        Append::new("x", b"1").req(),
        Append::new("y", b"2").req(),
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("x", b"3")
        }
        .req(),
        Append {
            producer: Some(("p", 0, 0)),
            ..Append::new("x", b"3")
        }
        .req(),
        Append::new("missing", b"4").req(),
        Append {
            close: true,
            ..Append::new("y", b"5")
        }
        .req(),
        Append::new("y", b"6").req(),
    ];
    let out = e.append_many(RSlice::from(&reqs[..]));
    check(out.len() == reqs.len(), || "one result per request".into())?;
    let is_ok: Vec<bool> = out.iter().map(|r| r.is_ok()).collect();
    check(is_ok == [true, true, true, true, false, true, false], || {
        format!("results {is_ok:?}")
    })?;
    let dup = out[3].as_ref().map(|o| o.duplicate).unwrap_or(false);
    check(dup, || "a retried producer batch inside a group is a duplicate".into())?;
    check(read_all(e, "x", 0, 1 << 20, NOW)? == b"13", || "x content".into())?;
    check(read_all(e, "y", 0, 1 << 20, NOW)? == b"25", || "y content".into())?;
    let _ = RStr::from("");
    Ok(())
}

/// Many appends to one stream in one group (an engine may store them together): each is
/// decided in order under the rules and told its own tail, a refusal or a duplicate in the middle
/// leaves the others applied, and a read from every acknowledged tail starts exactly there.
pub fn one_streams_appends_in_a_group_are_each_decided(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    let bodies: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    // Producer "p" counts 0, 1, ... except: #10 repeats #9's seq (a duplicate), #20 skips ahead
    // (a gap, refused), #30 has no producer and another content type (refused).
    let mut next_seq = 0u64;
    let appends: Vec<Append<'_>> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let producer = match i {
                10 => Some(("p", 0, next_seq - 1)),
                20 => Some(("p", 0, next_seq + 5)),
                30 => None,
                _ => {
                    next_seq += 1;
                    Some(("p", 0, next_seq - 1))
                }
            };
            Append {
                producer,
                ct: Some(if i == 30 { "application/json" } else { "text/plain" }),
                ..Append::new("s", b.as_bytes())
            }
        })
        .collect();
    let reqs: Vec<AppendRequest<'_>> = appends.iter().map(|a| a.req()).collect();
    let out = e.append_many(RSlice::from(&reqs[..]));
    check(out.len() == reqs.len(), || "one result per request".into())?;
    let mut tail = 0u64;
    let mut tails = Vec::new();
    let mut want = Vec::new();
    for (i, r) in out.iter().enumerate() {
        match (i, r) {
            (10, abi_stable::std_types::RResult::ROk(o)) => check(o.duplicate && o.tail == tail, || {
                format!("#10 should be a duplicate at {tail}: {o:?}")
            })?,
            (20, abi_stable::std_types::RResult::RErr(err)) => check(err.code == ErrorCode::SEQUENCE_GAP, || format!("#20: {err:?}"))?,
            (30, abi_stable::std_types::RResult::RErr(err)) => {
                check(err.code == ErrorCode::CONTENT_TYPE_MISMATCH, || format!("#30: {err:?}"))?
            }
            (_, abi_stable::std_types::RResult::ROk(o)) if !o.duplicate => {
                tail += 3;
                check(o.tail == tail, || format!("#{i}: tail {} wanted {tail}", o.tail))?;
                want.extend_from_slice(bodies[i].as_bytes());
                tails.push(tail);
            }
            (_, other) => return Err(Failure::new(format!("#{i}: {other:?}"))),
        }
    }
    check(read_all(e, "s", 0, 1 << 20, NOW)? == want, || {
        "content in order, refused ones absent".into()
    })?;
    for t in tails {
        let got = read_all(e, "s", t, 1 << 20, NOW)?;
        check(got == want[t as usize..], || {
            format!("a read from acknowledged tail {t} must start there")
        })?;
    }
    Ok(())
}

/// Groups in flight at once (the host's lanes for a `CONCURRENT_GROUPS` engine): `append_many`
/// called from several threads, each with its own streams, commits every append once, each
/// stream's in the order of its groups, with the tails each group was told.
pub fn concurrent_groups_keep_each_streams_order(e: &EngineBox) -> Result<(), Failure> {
    const LANES: usize = 4;
    const STREAMS: usize = 3;
    const ROUNDS: usize = 12;
    let names: Vec<Vec<String>> = (0..LANES)
        .map(|l| (0..STREAMS).map(|s| format!("lane{l}/s{s}")).collect())
        .collect();
    for n in names.iter().flatten() {
        ok(Create::new(n).run(e), "create")?;
    }
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|mine| {
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    for round in 0..ROUNDS {
                        // Two appends per stream per group: 2 bytes each, so tails are known.
                        let bodies: Vec<(String, [u8; 2])> = mine
                            .iter()
                            .flat_map(|n| [(n.clone(), [b'a' + round as u8, b'0']), (n.clone(), [b'a' + round as u8, b'1'])])
                            .collect();
                        let reqs: Vec<AppendRequest<'_>> = bodies.iter().map(|(n, b)| Append::new(n, b).req()).collect();
                        let out = e.append_many(RSlice::from(&reqs[..]));
                        for (i, r) in out.iter().enumerate() {
                            let want = (round * 2 + i % 2 + 1) as u64 * 2;
                            match r {
                                abi_stable::std_types::RResult::ROk(o) if o.tail == want => {}
                                other => bad.push(format!("{} round {round}: {other:?}, wanted tail {want}", bodies[i].0)),
                            }
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec!["a lane panicked".into()]))
            .collect()
    });
    check(failures.is_empty(), || failures.join("; "))?;
    let want: Vec<u8> = (0..ROUNDS).flat_map(|r| [b'a' + r as u8, b'0', b'a' + r as u8, b'1']).collect();
    for n in names.iter().flatten() {
        let got = read_all(e, n, 0, 1 << 20, NOW)?;
        check(got == want, || format!("{n}: {:?}", String::from_utf8_lossy(&got)))?;
    }
    Ok(())
}

/// Section 5.2.1: once a producer closed the stream, only its closing tuple is a duplicate;
/// another producer's close-only (or the closer's next seq) is refused as closed, while a
/// close-only without producer headers stays idempotent (section 5.3).
pub fn close_only_from_another_producer_is_refused(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    ok(
        Append {
            close: true,
            producer: Some(("a", 0, 0)),
            ..Append::new("s", b"final")
        }
        .run(e),
        "A closes with a final append",
    )?;
    let other = |id: &'static str, seq: u64| Append {
        close: true,
        producer: Some((id, 0, seq)),
        ..Append::new("s", b"")
    };
    let b = code(other("b", 0).run(e), ErrorCode::CLOSED, "B's close-only")?;
    check(b.detail.tail == 5, || format!("CLOSED detail tail {}", b.detail.tail))?;
    code(other("a", 1).run(e), ErrorCode::CLOSED, "A's close-only with seq 1")?;
    let again = ok(
        Append {
            close: true,
            producer: Some(("a", 0, 0)),
            ..Append::new("s", b"final")
        }
        .run(e),
        "A's closing tuple again",
    )?;
    check(again.duplicate && again.closed, || "the closing tuple is a duplicate".into())?;
    let plain = ok(
        Append {
            close: true,
            ..Append::new("s", b"")
        }
        .run(e),
        "close-only without producer headers",
    )?;
    check(plain.duplicate && plain.closed && plain.tail == 5, || {
        "a plain close-only on a closed stream is a duplicate success".into()
    })
}
