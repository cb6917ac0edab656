//! Forks: shared prefix, divergence, errors, fresh writer state, soft delete and cascade.

use durable_streams_core::abi::*;

use crate::support::*;

pub fn fork_shares_prefix_and_diverges(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"abc",
            ..Create::new("src")
        }
        .run(e),
        "create",
    )?;
    ok(Append::new("src", b"def").run(e), "append")?;
    let f = ok(
        Create {
            ct: None,
            fork: Some(("src", 3)),
            ..Create::new("fork")
        }
        .run(e),
        "fork",
    )?;
    check(f.meta.tail == 3 && f.meta.content_type.as_str() == "text/plain", || {
        "fork tail / inherited type".into()
    })?;
    ok(Append::new("fork", b"XY").run(e), "fork append")?;
    ok(Append::new("src", b"ghi").run(e), "source append")?;
    check(read_all(e, "fork", 0, 1 << 20, NOW)? == b"abcXY", || {
        "fork reads prefix then own data".into()
    })?;
    check(read_all(e, "fork", 0, 2, NOW)? == b"abcXY", || "fork reads in small chunks".into())?;
    check(read_all(e, "src", 0, 1 << 20, NOW)? == b"abcdefghi", || "source unaffected".into())?;
    let again = ok(
        Create {
            ct: None,
            fork: Some(("src", 3)),
            ..Create::new("fork")
        }
        .run(e),
        "same fork again",
    )?;
    check(!again.created, || "an identical fork PUT is idempotent".into())?;
    code(
        Create {
            ct: None,
            fork: Some(("src", 6)),
            ..Create::new("fork")
        }
        .run(e),
        ErrorCode::CONFIG_CONFLICT,
        "fork at another position",
    )?;
    Ok(())
}

pub fn fork_at_mid_record_position(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"hello",
            ..Create::new("src")
        }
        .run(e),
        "create",
    )?;
    ok(
        Create {
            ct: None,
            fork: Some(("src", 3)),
            initial: b"XY",
            ..Create::new("f1")
        }
        .run(e),
        "fork mid-record",
    )?;
    check(read_all(e, "f1", 0, 1 << 20, NOW)? == b"helXY", || {
        "fork cuts the source record".into()
    })?;
    ok(
        Create {
            ct: None,
            fork: Some(("f1", 2)),
            ..Create::new("f2")
        }
        .run(e),
        "fork of fork",
    )?;
    ok(Append::new("f2", b"Z").run(e), "append")?;
    check(read_all(e, "f2", 0, 1 << 20, NOW)? == b"heZ", || "chained fork".into())
}

pub fn fork_errors(e: &EngineBox) -> Result<(), Failure> {
    code(
        Create {
            ct: None,
            fork: Some(("missing", 0)),
            ..Create::new("f")
        }
        .run(e),
        ErrorCode::FORK_SOURCE_NOT_FOUND,
        "missing source",
    )?;
    ok(
        Create {
            initial: b"abc",
            ..Create::new("src")
        }
        .run(e),
        "create",
    )?;
    code(
        Create {
            ct: None,
            fork: Some(("src", 4)),
            ..Create::new("f")
        }
        .run(e),
        ErrorCode::OFFSET_BEYOND_TAIL,
        "past tail",
    )?;
    code(
        Create {
            ct: Some("application/json"),
            fork: Some(("src", 0)),
            ..Create::new("f")
        }
        .run(e),
        ErrorCode::CONTENT_TYPE_MISMATCH,
        "type mismatch",
    )?;
    // A rejected fork holds no reference: the source deletes outright.
    ok(delete(e, "src", NOW), "delete source")?;
    code(head(e, "src", NOW), ErrorCode::NOT_FOUND, "source gone after rejected forks")?;
    Ok(())
}

pub fn fork_does_not_inherit_writer_state(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("src").run(e), "create")?;
    ok(
        Append {
            producer: Some(("p", 0, 0)),
            seq: Some("5"),
            ..Append::new("src", b"a")
        }
        .run(e),
        "producer append",
    )?;
    ok(
        Append {
            close: true,
            ..Append::new("src", b"")
        }
        .run(e),
        "close source",
    )?;
    let f = ok(
        Create {
            ct: None,
            fork: Some(("src", 1)),
            ..Create::new("f")
        }
        .run(e),
        "fork",
    )?;
    check(!f.meta.closed, || "a fork of a closed stream starts open".into())?;
    let o = ok(
        Append {
            producer: Some(("p", 0, 0)),
            seq: Some("1"),
            ..Append::new("f", b"b")
        }
        .run(e),
        "fresh producer on fork",
    )?;
    check(!o.duplicate, || "fork must not inherit producer state".into())
}

pub fn soft_delete_while_forked_then_cascade(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            initial: b"abc",
            ..Create::new("a")
        }
        .run(e),
        "create",
    )?;
    ok(
        Create {
            ct: None,
            fork: Some(("a", 3)),
            ..Create::new("b")
        }
        .run(e),
        "fork b",
    )?;
    ok(
        Create {
            ct: None,
            fork: Some(("b", 3)),
            ..Create::new("c")
        }
        .run(e),
        "fork c",
    )?;
    ok(delete(e, "a", NOW), "delete a")?;
    code(head(e, "a", NOW), ErrorCode::GONE, "a soft-deleted")?;
    code(delete(e, "a", NOW), ErrorCode::GONE, "delete soft-deleted")?;
    code(Append::new("a", b"x").run(e), ErrorCode::GONE, "append soft-deleted")?;
    code(Create::new("a").run(e), ErrorCode::CONFIG_CONFLICT, "re-create soft-deleted")?;
    code(
        Create {
            ct: None,
            fork: Some(("a", 0)),
            ..Create::new("d")
        }
        .run(e),
        ErrorCode::FORK_SOURCE_GONE,
        "fork of soft-deleted",
    )?;
    ok(delete(e, "b", NOW), "delete b")?;
    code(head(e, "b", NOW), ErrorCode::GONE, "b soft-deleted")?;
    check(read_all(e, "c", 0, 1 << 20, NOW)? == b"abc", || {
        "leaf still reads inherited data".into()
    })?;
    ok(delete(e, "c", NOW), "delete c")?;
    code(head(e, "c", NOW), ErrorCode::NOT_FOUND, "c gone")?;
    code(head(e, "b", NOW), ErrorCode::NOT_FOUND, "b collected")?;
    code(head(e, "a", NOW), ErrorCode::NOT_FOUND, "a collected")?;
    ok(Create::new("a").run(e), "name reusable after collection")?;
    Ok(())
}

pub fn fork_inherits_content_type_and_lifetime(e: &EngineBox) -> Result<(), Failure> {
    let ttl = Lifetime {
        ttl_secs: Some(3600).into(),
        expires_at_ms: None.into(),
    };
    ok(
        Create {
            ct: Some("application/json"),
            lifetime: ttl,
            ..Create::new("src")
        }
        .run(e),
        "create",
    )?;
    let f = ok(
        Create {
            ct: None,
            fork: Some(("src", 0)),
            ..Create::new("f")
        }
        .run(e),
        "fork",
    )?;
    check(f.meta.content_type.as_str() == "application/json" && f.meta.lifetime == ttl, || {
        "fork inherits type and TTL".into()
    })?;
    let own = Lifetime {
        ttl_secs: Some(7200).into(),
        expires_at_ms: None.into(),
    };
    let g = ok(
        Create {
            ct: None,
            lifetime: own,
            fork: Some(("src", 0)),
            ..Create::new("g")
        }
        .run(e),
        "fork with ttl",
    )?;
    check(g.meta.lifetime == own, || "a requested TTL wins".into())
}
