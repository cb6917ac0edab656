//! TTL and Expires-At: expiry at access time, sliding renewal, the sweeper's listing. A sliding
//! TTL never expires early; an engine shared by several hosts may call it expired up to
//! [`late_ms`] late (each host renews it in the cluster only that often), so expiry is checked
//! that much after the TTL, and life just before it.

use abi_stable::std_types::RStr;
use durable_streams_core::abi::*;

use crate::support::*;

/// How late a sliding TTL of `secs` may expire: a quarter of it (at least 200 ms) plus a second
/// for the renewal's write and host clocks. Engines on one host expire it on time.
pub fn late_ms(secs: u64) -> u64 {
    (secs * 250).max(200) + 1000
}

fn ttl(secs: u64) -> Lifetime {
    Lifetime {
        ttl_secs: Some(secs).into(),
        expires_at_ms: None.into(),
    }
}

pub fn ttl_expires_and_renews_on_access(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            lifetime: ttl(2),
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    ok(
        Append {
            now: NOW + 1500,
            ..Append::new("s", b"a")
        }
        .run(e),
        "append renews",
    )?;
    ok(head(e, "s", NOW + 3000), "alive after renewal")?;
    ok(
        e.read(&ReadRequest {
            name: RStr::from("s"),
            start: ReadStart::Tail,
            position: 0,
            max_bytes: 10,
            now_ms: NOW + 3400,
        }),
        "read renews",
    )?;
    ok(head(e, "s", NOW + 5000), "alive after read renewal")?;
    let gone = NOW + 5400 + late_ms(2);
    code(head(e, "s", gone), ErrorCode::NOT_FOUND, "expired")?;
    let again = ok(
        Create {
            now: gone,
            ..Create::new("s")
        }
        .run(e),
        "re-create after expiry",
    )?;
    check(again.created, || "an expired name is created afresh".into())
}

pub fn head_does_not_renew(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            lifetime: ttl(1),
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    ok(head(e, "s", NOW + 900), "head")?;
    ok(head(e, "s", NOW + 990), "never early")?;
    // Had the head at 900 renewed it, it would live on past this.
    code(head(e, "s", NOW + 1000 + late_ms(1)), ErrorCode::NOT_FOUND, "expired despite head")?;
    Ok(())
}

pub fn expires_at_is_absolute(e: &EngineBox) -> Result<(), Failure> {
    let lt = Lifetime {
        ttl_secs: None.into(),
        expires_at_ms: Some(NOW + 1000).into(),
    };
    ok(
        Create {
            lifetime: lt,
            ..Create::new("s")
        }
        .run(e),
        "create",
    )?;
    ok(
        Append {
            now: NOW + 900,
            ..Append::new("s", b"a")
        }
        .run(e),
        "append",
    )?;
    code(head(e, "s", NOW + 1000), ErrorCode::NOT_FOUND, "expired at its deadline")?;
    Ok(())
}

pub fn expired_listing_and_sweeper_delete(e: &EngineBox) -> Result<(), Failure> {
    ok(
        Create {
            lifetime: ttl(1),
            ..Create::new("old")
        }
        .run(e),
        "create",
    )?;
    ok(Create::new("keep").run(e), "create")?;
    let names = ok(
        e.list_expired(&ExpiredRequest {
            now_ms: NOW + 1000 + late_ms(1),
            limit: 10,
        }),
        "list expired",
    )?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    check(names == ["old"], || format!("expired listing {names:?}"))?;
    ok(
        e.delete(&DeleteRequest {
            name: RStr::from("keep"),
            now_ms: NOW + 1000 + late_ms(1),
            only_if_expired: true,
        }),
        "conditional delete of live",
    )?;
    ok(head(e, "keep", NOW + 1000 + late_ms(1)), "live stream kept")?;
    ok(
        e.delete(&DeleteRequest {
            name: RStr::from("old"),
            now_ms: NOW + 1000 + late_ms(1),
            only_if_expired: true,
        }),
        "sweep",
    )?;
    let names = ok(
        e.list_expired(&ExpiredRequest {
            now_ms: NOW + 1000 + late_ms(1),
            limit: 10,
        }),
        "list expired again",
    )?;
    check(names.is_empty(), || "swept stream no longer listed".into())
}
