//! Create, head, delete and the extension call.

use abi_stable::std_types::{RResult, RSlice, RStr};
use durable_streams_core::abi::*;

use crate::support::*;

pub fn create_then_head(e: &EngineBox) -> Result<(), Failure> {
    let out = ok(
        Create {
            initial: b"hello",
            ..Create::new("a/b")
        }
        .run(e),
        "create",
    )?;
    check(out.created, || "first create must report created".into())?;
    let m = ok(head(e, "a/b", NOW), "head")?;
    check(m.content_type.as_str() == "text/plain", || {
        format!("content type {}", m.content_type)
    })?;
    check(m.tail == 5 && !m.closed, || format!("tail {} closed {}", m.tail, m.closed))?;
    Ok(())
}

pub fn create_is_idempotent_on_same_config(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    let again = ok(
        Create {
            ct: Some("TEXT/PLAIN; charset=utf-8"),
            ..Create::new("s")
        }
        .run(e),
        "re-create",
    )?;
    check(!again.created, || "a matching re-create must report created=false".into())
}

pub fn create_conflicts_on_other_config(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("s").run(e), "create")?;
    code(
        Create {
            ct: Some("application/json"),
            ..Create::new("s")
        }
        .run(e),
        ErrorCode::CONFIG_CONFLICT,
        "other content type",
    )?;
    let lt = Lifetime {
        ttl_secs: Some(60).into(),
        expires_at_ms: None.into(),
    };
    code(
        Create {
            lifetime: lt,
            ..Create::new("s")
        }
        .run(e),
        ErrorCode::CONFIG_CONFLICT,
        "other ttl",
    )?;
    code(
        Create {
            closed: true,
            ..Create::new("s")
        }
        .run(e),
        ErrorCode::CONFIG_CONFLICT,
        "other closure",
    )?;
    Ok(())
}

pub fn create_closed_with_body(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            closed: true,
            initial: b"final",
            ..Create::new("c")
        }
        .run(e),
        "create closed",
    )?;
    let m = ok(head(e, "c", NOW), "head")?;
    check(m.closed && m.tail == 5, || {
        "created-closed stream must be closed with its body".into()
    })?;
    let again = ok(
        Create {
            closed: true,
            ..Create::new("c")
        }
        .run(e),
        "re-create closed",
    )?;
    check(!again.created, || "matching closed re-create is idempotent".into())?;
    code(
        Create::new("c").run(e),
        ErrorCode::CONFIG_CONFLICT,
        "open re-create of a closed stream",
    )?;
    Ok(())
}

pub fn delete_removes_and_name_is_reusable(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"old",
            ..Create::new("d")
        }
        .run(e),
        "create",
    )?;
    ok(delete(e, "d", NOW), "delete")?;
    code(head(e, "d", NOW), ErrorCode::NOT_FOUND, "head after delete")?;
    code(delete(e, "d", NOW), ErrorCode::NOT_FOUND, "second delete")?;
    ok(
        Create {
            initial: b"new",
            ..Create::new("d")
        }
        .run(e),
        "re-create",
    )?;
    let data = read_all(e, "d", 0, 1 << 20, NOW)?;
    check(data == b"new", || {
        format!("re-created stream holds {:?}", String::from_utf8_lossy(&data))
    })
}

pub fn recreated_stream_gets_new_incarnation(e: &EngineBox) -> Result<(), Failure> {
    let a = ok(Create::new("r").run(e), "create")?.meta.incarnation;
    ok(delete(e, "r", NOW), "delete")?;
    let b = ok(Create::new("r").run(e), "re-create")?.meta.incarnation;
    check(a != b, || "incarnation must change when a name is re-created".into())
}

pub fn missing_stream_is_not_found(e: &EngineBox) -> Result<(), Failure> {
    code(head(e, "nope", NOW), ErrorCode::NOT_FOUND, "head")?;
    code(Append::new("nope", b"x").run(e), ErrorCode::NOT_FOUND, "append")?;
    code(
        e.read(&ReadRequest {
            name: RStr::from("nope"),
            start: ReadStart::At,
            position: 0,
            max_bytes: 10,
            now_ms: NOW,
        }),
        ErrorCode::NOT_FOUND,
        "read",
    )?;
    Ok(())
}

pub fn extension_unknown_op_is_unsupported(e: &EngineBox) -> Result<(), Failure> {
    code(
        e.extension(RStr::from("no-such-op"), RSlice::from(&b""[..])),
        ErrorCode::UNSUPPORTED,
        "unknown extension",
    )?;
    Ok(())
}

/// Creates from many threads at once (engines may decide them together): every name is created
/// exactly once, a racing create of the same name with the same configuration re-confirms it,
/// one with another configuration conflicts, and each stream holds its own initial bytes.
pub fn concurrent_creates_are_each_decided_once(e: &EngineBox) -> Result<(), Failure> {
    const THREADS: usize = 8;
    const SHARED: usize = 20;
    let answers: Vec<Vec<(String, RResult<CreateOutcome, EngineError>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..SHARED {
                        // Every thread creates the shared names (same configuration)...
                        let name = format!("shared/{i}");
                        let body = format!("init-{i}");
                        let c = Create {
                            initial: body.as_bytes(),
                            ..Create::new(&name)
                        };
                        out.push((name.clone(), c.run(e)));
                        // ...and names of its own.
                        let own = format!("own/{t}/{i}");
                        let body = format!("{t}:{i}");
                        let c = Create {
                            initial: body.as_bytes(),
                            ..Create::new(&own)
                        };
                        out.push((own.clone(), c.run(e)));
                    }
                    // One thread re-creates a shared name with another content type.
                    if t == 0 {
                        let c = Create {
                            ct: Some("application/json"),
                            ..Create::new("shared/0")
                        };
                        out.push(("conflict".into(), c.run(e)));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("creator thread")).collect()
    });
    let mut created = std::collections::HashMap::<String, usize>::new();
    for (name, r) in answers.into_iter().flatten() {
        if name == "conflict" {
            code(r, ErrorCode::CONFIG_CONFLICT, "a racing create with another content type")?;
            continue;
        }
        let out = ok(r, &format!("create {name}"))?;
        *created.entry(name).or_default() += usize::from(out.created);
    }
    check(created.len() == SHARED + THREADS * SHARED, || {
        format!("{} names answered", created.len())
    })?;
    if let Some((name, n)) = created.iter().find(|(_, n)| **n != 1) {
        return Err(Failure::new(format!("{name} was reported created {n} times, not once")));
    }
    for i in 0..SHARED {
        let got = read_all(e, &format!("shared/{i}"), 0, 1 << 20, NOW)?;
        check(got == format!("init-{i}").as_bytes(), || format!("shared/{i} holds {got:?}"))?;
        let t = i % THREADS;
        let got = read_all(e, &format!("own/{t}/{i}"), 0, 1 << 20, NOW)?;
        check(got == format!("{t}:{i}").as_bytes(), || format!("own/{t}/{i} holds {got:?}"))?;
    }
    Ok(())
}
