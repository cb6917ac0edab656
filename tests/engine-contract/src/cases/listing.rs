//! Listing streams by prefix with pagination.

use abi_stable::std_types::{ROption, RStr};
use durable_streams_core::abi::*;

use crate::support::*;

pub fn list_prefix_start_after_limit(e: &EngineBox) -> Result<(), Failure> {
    for n in ["a/1", "a/2", "a/3", "b/1"] {
        ok(Create::new(n).run(e), "create")?;
    }
    let list = |prefix: &str, after: Option<&str>, limit| -> Result<Vec<String>, Failure> {
        let r = ok(
            e.list(&ListRequest {
                prefix: RStr::from(prefix),
                start_after: match after {
                    Some(a) => ROption::RSome(RStr::from(a)),
                    None => ROption::RNone,
                },
                limit,
                now_ms: NOW,
            }),
            "list",
        )?;
        Ok(r.iter().map(|l| l.name.to_string()).collect())
    };
    check(list("a/", None, 10)? == ["a/1", "a/2", "a/3"], || "prefix".into())?;
    check(list("a/", Some("a/1"), 1)? == ["a/2"], || "start_after + limit".into())?;
    check(list("", None, 100)?.len() == 4, || "all".into())
}
