//! Record boundaries (`ext::RECORDS`): where each append to a stream began, for a range of
//! positions, so that a viewer can show one row per append. An engine that merges appends or
//! keeps no boundaries answers `UNSUPPORTED` and the case passes.

use abi_stable::std_types::RResult;
use durable_streams_core::abi::*;

use crate::support::*;

fn starts(e: &EngineBox, name: &str, from: u64, to: u64, limit: u32) -> Result<Option<Vec<u64>>, Failure> {
    let input = serde_json::json!({"name": name, "from": from, "to": to, "limit": limit, "now_ms": NOW});
    match ext_call(e, ext::RECORDS, input) {
        RResult::RErr(err) if err.code == ErrorCode::UNSUPPORTED => Ok(None),
        other => {
            let v = ok(other, &format!("records of {name} in {from}..{to}"))?;
            let list = v["starts"].as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).collect());
            check(list.is_some(), || format!("an answer without a starts list: {v}"))?;
            Ok(list)
        }
    }
}

pub fn records_are_where_each_append_began(e: &EngineBox) -> Result<(), Failure> {
    ok(Create::new("rec").run(e), "create")?;
    for b in [&b"a"[..], b"bc", b"def", b"ghij"] {
        ok(Append::new("rec", b).run(e), "append")?;
    }
    let Some(all) = starts(e, "rec", 0, u64::MAX, 100)? else {
        return Ok(());
    };
    check(all == [0, 1, 3, 6], || {
        format!("the starts of appends of 1, 2, 3, 4 bytes: {all:?}")
    })?;
    let mid = starts(e, "rec", 2, 6, 100)?.unwrap_or_default();
    check(mid == [3], || format!("starts at or after 2 and before 6: {mid:?}"))?;
    let few = starts(e, "rec", 0, u64::MAX, 2)?.unwrap_or_default();
    check(few == [0, 1], || format!("at most 2: {few:?}"))?;
    // A group of appends to one stream keeps each append's own start.
    let bodies: Vec<Vec<u8>> = vec![b"kk".to_vec(), b"lll".to_vec()];
    let reqs: Vec<AppendRequest<'_>> = bodies.iter().map(|b| Append::new("rec", b).req()).collect();
    for r in e.append_many(abi_stable::std_types::RSlice::from(&reqs[..])).into_iter() {
        ok(r, "a grouped append")?;
    }
    let after = starts(e, "rec", 10, u64::MAX, 100)?.unwrap_or_default();
    check(after == [10, 12], || format!("the grouped appends' starts: {after:?}"))?;
    // A fork: the source's starts below the fork position, then its own.
    let mut f = Create::new("rec-fork");
    f.fork = Some(("rec", 6));
    ok(f.run(e), "fork at 6")?;
    ok(Append::new("rec-fork", b"zz").run(e), "append to the fork")?;
    let forked = starts(e, "rec-fork", 0, u64::MAX, 100)?.unwrap_or_default();
    check(forked == [0, 1, 3, 6], || format!("the fork's starts: {forked:?}"))?;
    let missing = ext_call(
        e,
        ext::RECORDS,
        serde_json::json!({"name": "nope", "from": 0, "to": 10, "limit": 10, "now_ms": NOW}),
    );
    code(missing, ErrorCode::NOT_FOUND, "records of a missing stream")?;
    let bad = ext_call(e, ext::RECORDS, serde_json::json!({"name": "rec", "from": "x"}));
    code(bad, ErrorCode::INVALID_ARGUMENT, "an ill-formed records request")?;
    Ok(())
}
