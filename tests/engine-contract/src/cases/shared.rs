//! What engines shared by several hosts (`EXTERNAL_WRITERS`) offer the hosts: compare-and-set
//! registers (`ext::REGISTER_GET` / `ext::REGISTER_SET`). An engine without them answers
//! `UNSUPPORTED` and the case passes (single-host engines never need them).

use abi_stable::std_types::{RResult, RSlice, RStr};

use crate::support::ext_call as call;
use durable_streams_core::abi::*;

use crate::support::*;

pub fn register_is_compare_and_set(e: &EngineBox) -> Result<(), Failure> {
    let first = call(e, ext::REGISTER_GET, serde_json::json!({"key": "lease/x"}));
    if let RResult::RErr(err) = &first {
        if err.code == ErrorCode::UNSUPPORTED {
            return Ok(());
        }
    }
    let v = ok(first, "get a register never written")?;
    check(v["revision"] == 0 && v["value"] == "", || {
        format!("an unwritten register is revision 0, value \"\": {v}")
    })?;
    let set = |expect: u64, value: &str| {
        call(
            e,
            ext::REGISTER_SET,
            serde_json::json!({"key": "lease/x", "expect": expect, "value": value}),
        )
    };
    let r1 = ok(set(0, "a"), "first write")?["revision"].as_u64().unwrap_or(0);
    check(r1 > 0, || "a write answers a revision above 0".into())?;
    let v = ok(call(e, ext::REGISTER_GET, serde_json::json!({"key": "lease/x"})), "get")?;
    check(v["revision"] == r1 && v["value"] == "a", || format!("read back ({r1}, a): {v}"))?;
    code(set(0, "late"), ErrorCode::CONFIG_CONFLICT, "a write expecting a stale revision")?;
    let r2 = ok(set(r1, "b"), "write at the current revision")?["revision"].as_u64().unwrap_or(0);
    check(r2 > r1, || format!("revisions grow: {r1} then {r2}"))?;
    code(set(r1, "c"), ErrorCode::CONFIG_CONFLICT, "a second write at the same revision")?;
    let other = ok(call(e, ext::REGISTER_GET, serde_json::json!({"key": "lease/y"})), "get another key")?;
    check(other["revision"] == 0, || format!("keys are independent: {other}"))?;
    let bad = e.extension(RStr::from(ext::REGISTER_SET), RSlice::from(&b"{\"key\": 1}"[..]));
    code(bad, ErrorCode::INVALID_ARGUMENT, "an ill-formed register request")?;
    Ok(())
}

/// `ext::CLOCK`: the storage's time as an offset from this process's clock, a lower bound. The
/// contract runs where both clocks are the machine's, so the offset is at most 0 (the storage
/// stamped its answer before it arrived) and no further below than the round trip (plus a
/// second for clock steps). `UNSUPPORTED` passes: the host's clock is the only one.
pub fn clock_is_a_lower_bound_of_the_storage_time(e: &EngineBox) -> Result<(), Failure> {
    let r = call(e, ext::CLOCK, serde_json::Value::Null);
    if let RResult::RErr(err) = &r {
        if err.code == ErrorCode::UNSUPPORTED {
            return Ok(());
        }
    }
    let v = ok(r, "read the storage's clock")?;
    let (Some(offset), Some(round_trip)) = (v["offset_ms"].as_i64(), v["round_trip_ms"].as_u64()) else {
        return Err(Failure::new(format!("a clock answer holds offset_ms and round_trip_ms: {v}")));
    };
    check(offset <= 1, || {
        format!("the offset is a lower bound (at most 0 on one machine): {v}")
    })?;
    check(offset >= -(round_trip as i64) - 1000, || {
        format!("the offset is within the round trip of the true one (0 on one machine): {v}")
    })
}
