//! Crash-and-reopen cases for engines that declare `DURABLE`: everything acknowledged before the
//! engine is dropped (without `shutdown`) is there after reopening the same directory.

use std::path::Path;

use durable_streams_core::abi::*;

use crate::support::*;

/// Opens an engine on a directory (reopening keeps its data).
pub trait DurableFactory {
    fn open_at(&self, dir: &Path) -> EngineBox;
}

impl<F: Fn(&Path) -> EngineBox> DurableFactory for F {
    fn open_at(&self, dir: &Path) -> EngineBox {
        self(dir)
    }
}

/// One durability case: `write` on a fresh engine, then `verify` on a reopened one.
pub struct DurableCase {
    pub name: &'static str,
    pub write: fn(&EngineBox) -> Result<(), Failure>,
    pub verify: fn(&EngineBox) -> Result<(), Failure>,
}

fn write_data_and_state(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"init-",
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    ok(
        Append {
            producer: Some(("p", 3, 0)),
            seq: Some("0005"),
            ..Append::new("s", b"one-")
        }
        .run(e),
        "append 1",
    )?;
    ok(
        Append {
            producer: Some(("p", 3, 1)),
            ..Append::new("s", b"two")
        }
        .run(e),
        "append 2",
    )?;
    ok(
        Create {
            closed: true,
            initial: b"done",
            ..Create::new("closed")
        }
        .run(e),
        "create closed",
    )?;
    ok(Create::new("c2").run(e), "create c2")?;
    ok(
        Append {
            close: true,
            producer: Some(("q", 0, 0)),
            ..Append::new("c2", b"last")
        }
        .run(e),
        "append+close",
    )?;
    Ok(())
}

fn verify_data_and_state(e: &EngineBox) -> Result<(), Failure> {
    check(read_all(e, "s", 0, 1 << 20, NOW)? == b"init-one-two", || {
        "data survives reopen".into()
    })?;
    let dup = ok(
        Append {
            producer: Some(("p", 3, 1)),
            ..Append::new("s", b"two")
        }
        .run(e),
        "retry",
    )?;
    check(dup.duplicate, || "producer state survives reopen (retry is a duplicate)".into())?;
    code(
        Append {
            producer: Some(("p", 2, 0)),
            ..Append::new("s", b"x")
        }
        .run(e),
        ErrorCode::STALE_EPOCH,
        "epoch survives",
    )?;
    code(
        Append {
            seq: Some("0004"),
            ..Append::new("s", b"x")
        }
        .run(e),
        ErrorCode::STREAM_SEQ_REGRESSION,
        "Stream-Seq survives",
    )?;
    let m = ok(head(e, "closed", NOW), "head closed")?;
    check(m.closed && m.tail == 4, || "created-closed survives".into())?;
    let m = ok(head(e, "c2", NOW), "head c2")?;
    check(m.closed && m.tail == 4, || "append-with-close survives atomically".into())?;
    let again = ok(
        Append {
            close: true,
            producer: Some(("q", 0, 0)),
            ..Append::new("c2", b"last")
        }
        .run(e),
        "closing retry",
    )?;
    check(again.duplicate, || "the closing tuple survives".into())?;
    let next = ok(Append::new("s", b"-more").run(e), "append after reopen")?;
    check(next.tail == 17, || format!("tail continues after reopen, got {}", next.tail))
}

fn write_deletes_and_forks(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"abc",
            ..Create::new("gone")
        }
        .run(e),
        "create",
    )?;
    ok(delete(e, "gone", NOW), "delete")?;
    ok(
        Create {
            initial: b"src",
            ..Create::new("src")
        }
        .run(e),
        "create src",
    )?;
    ok(
        Create {
            ct: None,
            fork: Some(("src", 2)),
            initial: b"F",
            ..Create::new("fork")
        }
        .run(e),
        "fork",
    )?;
    ok(delete(e, "src", NOW), "soft delete src")?;
    ok(
        Create {
            initial: b"new",
            ..Create::new("gone")
        }
        .run(e),
        "re-create",
    )?;
    Ok(())
}

fn verify_deletes_and_forks(e: &EngineBox) -> Result<(), Failure> {
    check(read_all(e, "gone", 0, 1 << 20, NOW)? == b"new", || {
        "re-created stream holds only new data".into()
    })?;
    code(head(e, "src", NOW), ErrorCode::GONE, "soft delete survives")?;
    check(read_all(e, "fork", 0, 1 << 20, NOW)? == b"srF", || {
        "fork reads its source after reopen".into()
    })?;
    ok(delete(e, "fork", NOW), "delete fork")?;
    code(head(e, "src", NOW), ErrorCode::NOT_FOUND, "source collected after last fork")?;
    Ok(())
}

fn write_many_streams(e: &EngineBox) -> Result<(), Failure> {
    for i in 0..500 {
        let name = format!("m/{i}");
        ok(Create::new(&name).run(e), "create")?;
        let body = format!("{i}:{}", "x".repeat(i % 50));
        let reqs = [Append::new(&name, body.as_bytes()).req()];
        let r = e.append_many(abi_stable::std_types::RSlice::from(&reqs[..]));
        check(r.iter().all(|x| x.is_ok()), || "append_many".into())?;
    }
    Ok(())
}

fn verify_many_streams(e: &EngineBox) -> Result<(), Failure> {
    for i in 0..500 {
        let want = format!("{i}:{}", "x".repeat(i % 50));
        check(read_all(e, &format!("m/{i}"), 0, 1 << 20, NOW)? == want.as_bytes(), || {
            format!("stream m/{i}")
        })?;
    }
    Ok(())
}

fn write_trimmed(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("t").run(e), "create")?;
    for (i, body) in [b"aaaa", b"bbbb", b"cccc"].iter().enumerate() {
        ok(
            Append {
                producer: Some(("p", 0, i as u64)),
                ..Append::new("t", &body[..])
            }
            .run(e),
            "append",
        )?;
    }
    if trim(e, "t", 8)?.is_none() {
        return Ok(());
    }
    let mut f = Create::new("t-fork");
    f.fork = Some(("t", 12));
    ok(f.run(e), "fork of trimmed data")?;
    ok(Append::new("t", b"dddd").run(e), "append after the trim")?;
    Ok(())
}

fn verify_trimmed(e: &EngineBox) -> Result<(), Failure> {
    if trim(e, "t", 0)?.is_none() {
        return Ok(());
    }
    read_trimmed(e, "t", 0, 8)?;
    let got = read_all(e, "t", 8, 1 << 20, NOW)?;
    check(got == b"ccccdddd", || format!("after reopen: {:?}", String::from_utf8_lossy(&got)))?;
    // The producer's state lives on though its first records are gone.
    let retry = ok(
        Append {
            producer: Some(("p", 0, 2)),
            ..Append::new("t", b"cccc")
        }
        .run(e),
        "producer retry",
    )?;
    check(retry.duplicate, || {
        "a retry of the last producer append is a duplicate after reopen".into()
    })?;
    read_trimmed(e, "t-fork", 4, 8)?;
    let got = read_all(e, "t-fork", 8, 1 << 20, NOW)?;
    check(got == b"cccc", || {
        format!("the fork after reopen: {:?}", String::from_utf8_lossy(&got))
    })
}

fn restored_writer() -> serde_json::Value {
    serde_json::json!({"producers": [["p", 1, 7]], "stream_seq": "z", "closed": true, "closed_by": null})
}

fn write_restored(e: &EngineBox) -> Result<(), Failure> {
    let restore = serde_json::json!({"name": "r", "content_type": "text/plain", "start": 10, "now_ms": NOW});
    match ext_call(e, ext::RESTORE, restore) {
        abi_stable::std_types::RResult::RErr(err) if err.code == ErrorCode::UNSUPPORTED => return Ok(()),
        other => ok(other, "restore")?,
    };
    ok(Append::new("r", b"data").run(e), "append")?;
    let w = serde_json::json!({"name": "r", "writer": restored_writer(), "now_ms": NOW});
    ok(ext_call(e, ext::RESTORE_WRITER, w), "restore the writer")?;
    Ok(())
}

fn verify_restored(e: &EngineBox) -> Result<(), Failure> {
    let d = match ext_call(e, ext::DESCRIBE, serde_json::json!({"name": "r", "now_ms": NOW})) {
        abi_stable::std_types::RResult::RErr(err) if err.code == ErrorCode::UNSUPPORTED => return Ok(()),
        other => ok(other, "describe after reopen")?,
    };
    check(d["start"] == 10 && d["tail"] == 14 && d["writer"] == restored_writer(), || {
        format!("a restored stream after reopen: {d}")
    })?;
    let got = read_all(e, "r", 10, 1 << 20, NOW)?;
    check(got == b"data", || "its bytes at their offsets".into())
}

pub fn cases() -> Vec<DurableCase> {
    vec![
        DurableCase {
            name: "durability::data_and_writer_state",
            write: write_data_and_state,
            verify: verify_data_and_state,
        },
        DurableCase {
            name: "durability::deletes_and_forks",
            write: write_deletes_and_forks,
            verify: verify_deletes_and_forks,
        },
        DurableCase {
            name: "durability::trimmed_head",
            write: write_trimmed,
            verify: verify_trimmed,
        },
        DurableCase {
            name: "durability::restored_stream",
            write: write_restored,
            verify: verify_restored,
        },
        DurableCase {
            name: "durability::many_producers",
            write: crate::cases::producers::write_many_producers,
            verify: crate::cases::producers::verify_many_producers,
        },
        DurableCase {
            name: "durability::many_streams",
            write: write_many_streams,
            verify: verify_many_streams,
        },
    ]
}

/// Runs every durability case in a fresh directory under `root`.
pub fn run(factory: &dyn DurableFactory, root: &Path) -> Summary {
    let mut summary = Summary::default();
    for (i, case) in cases().into_iter().enumerate() {
        let dir = root.join(format!("case-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            {
                let e = factory.open_at(&dir);
                (case.write)(&e)?;
                // Dropped without shutdown: like a process that dies.
            }
            let e = factory.open_at(&dir);
            (case.verify)(&e)
        }));
        match result {
            Ok(Ok(())) => summary.passed.push(case.name),
            Ok(Err(f)) => summary.failed.push((case.name, f)),
            Err(_) => summary.failed.push((case.name, Failure::new("the case panicked"))),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    summary
}
