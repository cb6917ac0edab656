//! The checks: a history and the final state of every stream in, every violation out, each with
//! the operations involved. Bodies of appends are unique in a history, so where each landed is
//! found by searching the final content. Streams that were deleted in the history are checked
//! only for what does not need their content (creates, expiry, wakes).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Final, FinalStream, Kind, Op, Outcome, Stamp};

/// What a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An acknowledged append is not in the stream at the offset it was acknowledged with.
    AckedAppendMissing,
    /// An append's bytes are in the stream more than once.
    AppendedTwice,
    /// Acknowledged appends are stored out of their real-time order.
    AckOrder,
    /// A read returned bytes that the stream does not hold there (they vanished or changed).
    ReadNotPrefix,
    /// One producer sequence was applied twice (with two different bodies).
    ProducerSeqTwice,
    /// A producer's sequences are stored out of their order.
    ProducerOutOfOrder,
    /// Bytes past a close's acknowledged tail, or an append accepted after a close.
    AcceptedAfterClose,
    /// An operation saw an earlier tail than one that finished before it began.
    TailWentBack,
    /// Two creates of one name were both answered 201 (no delete between).
    CreatedTwice,
    /// A stream answered "not found" before its TTL ran out since its last access.
    ExpiredEarly,
    /// One subscription lease generation was delivered by two hosts.
    WakeByTwoHosts,
}

/// One violation, with the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: Rule,
    pub stream: String,
    pub ops: Vec<u64>,
    pub detail: String,
}

/// What was checked and what was found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub operations: usize,
    /// Acknowledged appends whose place in the final content was checked.
    pub acked_appends: usize,
    /// Appends without a definite answer, and how many of them were stored (once).
    pub indeterminate_appends: usize,
    pub indeterminate_stored: usize,
    pub violations: Vec<Violation>,
}

impl Report {
    /// The one-line summary `make partitions` prints per fault.
    pub fn line(&self, fault: &str) -> String {
        format!(
            "{fault}: {} operations, {} acknowledged appends checked, {} indeterminate, violations {}",
            self.operations,
            self.acked_appends,
            self.indeterminate_appends,
            self.violations.len()
        )
    }
}

fn violation(rule: Rule, stream: &str, ops: Vec<u64>, detail: String) -> Violation {
    Violation {
        rule,
        stream: stream.to_string(),
        ops,
        detail,
    }
}

/// A producer append answered 204 repeated an earlier one: nothing new was stored by it.
fn is_duplicate(op: &Op) -> bool {
    matches!(&op.kind, Kind::Append { producer: Some(_), .. }) && op.answer.status == Some(204)
}

/// Checks `ops` against `fin`.
pub fn check(ops: &[Op], fin: &Final) -> Report {
    let mut report = Report {
        operations: ops.len(),
        ..Default::default()
    };
    let mut by_stream: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if !matches!(op.kind, Kind::Wake { .. }) {
            by_stream.entry(op.stream.as_str()).or_default().push(op);
        }
    }
    let missing = FinalStream::default();
    for (name, ops) in &by_stream {
        let deleted = ops
            .iter()
            .any(|o| matches!(o.kind, Kind::Delete) && o.outcome() != Outcome::Refused);
        creates(name, ops, deleted, &mut report);
        expiry(name, ops, &mut report);
        if !deleted {
            content(name, ops, fin.get(*name).unwrap_or(&missing), &mut report);
        }
    }
    wakes(ops, &mut report);
    report.violations.sort_by(|a, b| (a.rule, &a.stream).cmp(&(b.rule, &b.stream)));
    report
}

fn creates(name: &str, ops: &[&Op], deleted: bool, report: &mut Report) {
    let made: Vec<u64> = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Create { .. }) && o.answer.status == Some(201))
        .map(|o| o.id)
        .collect();
    if made.len() > 1 && !deleted {
        let detail = format!("{} creates answered 201", made.len());
        report.violations.push(violation(Rule::CreatedTwice, name, made, detail));
    }
}

fn expiry(name: &str, ops: &[&Op], report: &mut Report) {
    let Some(ttl) = ops.iter().find_map(|o| match o.kind {
        Kind::Create { ttl_secs: Some(t) } if o.outcome() == Outcome::Ok => Some(t),
        _ => None,
    }) else {
        return;
    };
    let accesses: Vec<&&Op> = ops
        .iter()
        .filter(|o| o.outcome() == Outcome::Ok && matches!(o.kind, Kind::Create { .. } | Kind::Append { .. } | Kind::Read { .. }))
        .collect();
    for gone in ops
        .iter()
        .filter(|o| o.answer.status == Some(404) && matches!(o.kind, Kind::Append { .. } | Kind::Read { .. }))
    {
        // The latest access that surely happened before the 404 was decided: it reached the
        // server no earlier than its invocation, and the 404 was decided no later than its
        // completion, so this is early by the harness's (the cluster's) clock.
        let last = accesses.iter().filter(|a| a.precedes(gone)).max_by_key(|a| a.invoked_ms);
        if let Some(last) = last {
            let due = last.invoked_ms + ttl * 1000;
            if gone.completed_ms < due {
                let detail = format!(
                    "TTL {ttl} s: not found by {} ms, {} ms before the TTL ran out since the access at {} ms",
                    gone.completed_ms,
                    due - gone.completed_ms,
                    last.invoked_ms
                );
                report
                    .violations
                    .push(violation(Rule::ExpiredEarly, name, vec![last.id, gone.id], detail));
            }
        }
    }
}

fn wakes(ops: &[Op], report: &mut Report) {
    let mut by_lease: BTreeMap<(&str, u64), BTreeMap<&str, u64>> = BTreeMap::new();
    for op in ops {
        if let Kind::Wake { subscription, generation } = &op.kind {
            by_lease
                .entry((subscription.as_str(), *generation))
                .or_default()
                .insert(op.host.as_str(), op.id);
        }
    }
    for ((sub, generation), hosts) in by_lease {
        if hosts.len() > 1 {
            let detail = format!(
                "lease generation {generation} delivered by {}",
                hosts.keys().copied().collect::<Vec<_>>().join(", ")
            );
            report
                .violations
                .push(violation(Rule::WakeByTwoHosts, sub, hosts.values().copied().collect(), detail));
        }
    }
}

/// An append found in the final content.
struct Placed<'a> {
    op: &'a Op,
    at: usize,
}

fn content(name: &str, ops: &[&Op], fin: &FinalStream, report: &mut Report) {
    let text = fin.content.as_str();
    let mut placed: Vec<Placed<'_>> = Vec::new();
    for op in ops {
        let Kind::Append { body, .. } = &op.kind else { continue };
        let outcome = op.outcome();
        if body.is_empty() || outcome == Outcome::Refused {
            continue;
        }
        let found: Vec<usize> = text.match_indices(body.as_str()).map(|(i, _)| i).collect();
        if found.len() > 1 {
            let detail = format!("stored {} times, at {:?}", found.len(), found);
            report.violations.push(violation(Rule::AppendedTwice, name, vec![op.id], detail));
        }
        match outcome {
            Outcome::Indeterminate => {
                report.indeterminate_appends += 1;
                report.indeterminate_stored += usize::from(found.len() == 1);
            }
            _ => {
                report.acked_appends += 1;
                let want = op.answer.next.map(|n| n as usize).filter(|_| !is_duplicate(op));
                let right = match want {
                    Some(end) => end >= body.len() && text.get(end - body.len()..end) == Some(body.as_str()),
                    None => found.len() == 1,
                };
                if !right {
                    let detail = format!("acknowledged with next offset {:?}, found at {found:?}", op.answer.next);
                    report
                        .violations
                        .push(violation(Rule::AckedAppendMissing, name, vec![op.id], detail));
                }
            }
        }
        if let [at] = found[..] {
            placed.push(Placed { op, at });
        }
    }
    ack_order(name, &placed, report);
    producers(name, &placed, report);
    reads(name, ops, text, report);
    closes(name, ops, fin, report);
    tails(name, ops, report);
}

/// An operation and a value it saw (a position, a tail).
type Seen<'a> = (&'a Op, u64);

/// For each of `items` (an operation and a value), the item with the largest value among those
/// that finished before it began, when that value exceeds its own: a sweep in time order.
fn earlier_larger<'a>(items: &[Seen<'a>]) -> Vec<(Seen<'a>, Seen<'a>)> {
    let mut by_end: Vec<&(&Op, u64)> = items.iter().collect();
    by_end.sort_by_key(|(o, _)| o.completed_ms);
    let mut by_start: Vec<&(&Op, u64)> = items.iter().collect();
    by_start.sort_by_key(|(o, _)| o.invoked_ms);
    let (mut done, mut best): (usize, Option<(&Op, u64)>) = (0, None);
    let mut out = Vec::new();
    for &&(later, v) in &by_start {
        while done < by_end.len() && by_end[done].0.completed_ms < later.invoked_ms {
            let (o, w) = *by_end[done];
            if best.is_none_or(|(_, b)| w > b) {
                best = Some((o, w));
            }
            done += 1;
        }
        if let Some((e, w)) = best.filter(|(_, w)| *w > v) {
            out.push(((e, w), (later, v)));
        }
    }
    out
}

/// Acknowledged appends, in real-time order, are stored in that order.
fn ack_order(name: &str, placed: &[Placed<'_>], report: &mut Report) {
    let acked: Vec<(&Op, u64)> = placed
        .iter()
        .filter(|p| p.op.outcome() == Outcome::Ok && !is_duplicate(p.op))
        .map(|p| (p.op, p.at as u64))
        .collect();
    for ((earlier, at1), (later, at2)) in earlier_larger(&acked) {
        let detail = format!("acknowledged before the other began, stored after it ({at1} > {at2})");
        report
            .violations
            .push(violation(Rule::AckOrder, name, vec![earlier.id, later.id], detail));
    }
}

/// A producer's sequences are stored once each, in their order.
fn producers(name: &str, placed: &[Placed<'_>], report: &mut Report) {
    // (id, epoch) -> (seq, position, operation, body) of each applied append.
    type Applied<'a> = Vec<(u64, usize, u64, &'a str)>;
    let mut by_producer: BTreeMap<(&str, u64), Applied<'_>> = BTreeMap::new();
    for p in placed {
        if let Kind::Append {
            producer: Some(Stamp { id, epoch, seq }),
            body,
            ..
        } = &p.op.kind
        {
            by_producer
                .entry((id.as_str(), *epoch))
                .or_default()
                .push((*seq, p.at, p.op.id, body.as_str()));
        }
    }
    for ((id, epoch), mut applied) in by_producer {
        applied.sort();
        for pair in applied.windows(2) {
            let ((s1, at1, op1, b1), (s2, at2, op2, b2)) = (pair[0], pair[1]);
            if s1 == s2 && b1 != b2 {
                let detail = format!("producer {id} epoch {epoch} seq {s1} applied twice");
                report
                    .violations
                    .push(violation(Rule::ProducerSeqTwice, name, vec![op1, op2], detail));
            } else if s1 < s2 && at1 > at2 {
                let detail = format!("producer {id} epoch {epoch}: seq {s1} stored at {at1}, after seq {s2} at {at2}");
                report
                    .violations
                    .push(violation(Rule::ProducerOutOfOrder, name, vec![op1, op2], detail));
            }
        }
    }
}

/// Every read returned what the stream holds at its offset.
fn reads(name: &str, ops: &[&Op], text: &str, report: &mut Report) {
    for op in ops {
        let Kind::Read { offset } = op.kind else { continue };
        if op.outcome() != Outcome::Ok {
            continue;
        }
        let data = op.answer.data.as_deref().unwrap_or("");
        let at = offset as usize;
        let held = text.get(at..at + data.len());
        let next_right = op.answer.next.is_none_or(|n| n as usize == at + data.len());
        if held != Some(data) || !next_right {
            let detail = format!(
                "read {} bytes at {offset} (next {:?}); the stream holds {:?} there",
                data.len(),
                op.answer.next,
                held.map(|h| h.len())
            );
            report.violations.push(violation(Rule::ReadNotPrefix, name, vec![op.id], detail));
        }
    }
}

/// Nothing is accepted after a close.
fn closes(name: &str, ops: &[&Op], fin: &FinalStream, report: &mut Report) {
    for close in ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Append { close: true, .. }) && o.outcome() == Outcome::Ok)
    {
        let Some(end) = close.answer.next else { continue };
        if fin.content.len() as u64 != end || !fin.closed {
            let detail = format!("closed at {end}; the stream ends at {} (closed: {})", fin.content.len(), fin.closed);
            report
                .violations
                .push(violation(Rule::AcceptedAfterClose, name, vec![close.id], detail));
        }
        for later in ops.iter().filter(|o| {
            matches!(o.kind, Kind::Append { close: false, .. }) && o.outcome() == Outcome::Ok && !is_duplicate(o) && close.precedes(o)
        }) {
            let detail = "an append was accepted after the close was acknowledged".to_string();
            report
                .violations
                .push(violation(Rule::AcceptedAfterClose, name, vec![close.id, later.id], detail));
        }
    }
}

/// Tails seen (acknowledged appends, up-to-date reads) never go back in real-time order.
fn tails(name: &str, ops: &[&Op], report: &mut Report) {
    let seen: Vec<(&Op, u64)> = ops
        .iter()
        .filter(|o| o.outcome() == Outcome::Ok)
        .filter_map(|o| match (&o.kind, o.answer.next) {
            (Kind::Append { .. }, Some(n)) if !is_duplicate(o) => Some((*o, n)),
            (Kind::Read { .. }, Some(n)) if o.answer.up_to_date => Some((*o, n)),
            _ => None,
        })
        .collect();
    for ((earlier, t1), (later, t2)) in earlier_larger(&seen) {
        let detail = format!("tail {t1} seen, then {t2} by an operation begun after");
        report
            .violations
            .push(violation(Rule::TailWentBack, name, vec![earlier.id, later.id], detail));
    }
}
