//! The name index: every catalogue name with the sequence and liveness of its latest record, in
//! name order, in this host's memory, so a page of a listing costs its page. Built by one
//! catalogue scan (the first listing after start or after a reconnection), then kept current by
//! the catalogue's republished changes and this host's own writes. An entry only moves to a
//! later record's sequence, so changes may arrive in any order, twice, or before the scan that
//! also saw them. Knows no protocol rule and does no I/O.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::Mutex;

/// What the index knows of one name: its latest record's catalogue sequence, and whether that
/// record is a live stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    seq: u64,
    live: bool,
}

#[derive(Default)]
struct Inner {
    names: BTreeMap<String, Known>,
    live: u64,
    /// The connection epoch the index was built in, once built: changes published while the
    /// connection was down were lost, so another epoch means build again.
    built_in: Option<u64>,
    /// Changes seen while a scan runs, applied to its result.
    pending: Option<Vec<(String, u64, bool)>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct NameIndex {
    inner: Mutex<Inner>,
}

fn apply(names: &mut BTreeMap<String, Known>, live: &mut u64, name: &str, seq: u64, is_live: bool) {
    let new = Known { seq, live: is_live };
    match names.get_mut(name) {
        Some(k) if k.seq >= seq => {}
        Some(k) => {
            if k.live != is_live {
                if is_live {
                    *live += 1;
                } else {
                    *live -= 1;
                }
            }
            *k = new;
        }
        None => {
            if is_live {
                *live += 1;
            }
            names.insert(name.to_string(), new);
        }
    }
}

impl NameIndex {
    /// Whether the index was built in connection epoch `epoch` (and so is current).
    pub fn current(&self, epoch: u64) -> bool {
        self.inner.lock().built_in == Some(epoch)
    }

    /// A record of `name` at catalogue sequence `seq` was written (by anyone).
    pub fn note(&self, name: &str, seq: u64, is_live: bool) {
        let mut g = self.inner.lock();
        if let Some(p) = g.pending.as_mut() {
            p.push((name.to_string(), seq, is_live));
        }
        let Inner { names, live, .. } = &mut *g;
        apply(names, live, name, seq, is_live);
    }

    /// A scan begins: changes from now on are also kept for its result.
    pub fn scan_started(&self) {
        self.inner.lock().pending = Some(Vec::new());
    }

    /// A scan begun in connection epoch `epoch` found `scanned` (name, sequence, live); with the
    /// changes seen meanwhile it becomes the index.
    pub fn scan_done(&self, epoch: u64, scanned: Vec<(String, u64, bool)>) {
        let mut names = BTreeMap::new();
        let mut live = 0;
        for (n, s, l) in &scanned {
            apply(&mut names, &mut live, n, *s, *l);
        }
        let mut g = self.inner.lock();
        for (n, s, l) in g.pending.take().unwrap_or_default() {
            apply(&mut names, &mut live, &n, s, l);
        }
        g.names = names;
        g.live = live;
        g.built_in = Some(epoch);
    }

    /// A scan failed: the index stays as it was (and is built again next time).
    pub fn scan_failed(&self) {
        self.inner.lock().pending = None;
    }

    /// Up to `n` live names starting with `prefix`, after `after` (or from the prefix), in order,
    /// each with the catalogue sequence of its latest record known here.
    pub fn live_names(&self, prefix: &str, after: Option<&str>, n: usize) -> Vec<(String, u64)> {
        let g = self.inner.lock();
        let from = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        g.names
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(_, k)| k.live)
            .take(n)
            .map(|(name, k)| (name.clone(), k.seq))
            .collect()
    }

    /// Live names in the index (expired ones not yet removed included).
    pub fn live_count(&self) -> u64 {
        self.inner.lock().live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: Vec<(String, u64)>) -> Vec<String> {
        found.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn pages_in_name_order_under_a_prefix() {
        let ix = NameIndex::default();
        ix.scan_started();
        ix.scan_done(
            1,
            vec![
                ("a/2".into(), 2, true),
                ("a/1".into(), 1, true),
                ("b/1".into(), 3, true),
                ("a/3".into(), 4, false),
                ("a/4".into(), 5, true),
            ],
        );
        assert!(ix.current(1) && !ix.current(2));
        assert_eq!(names(ix.live_names("a/", None, 10)), ["a/1", "a/2", "a/4"]);
        assert_eq!(names(ix.live_names("a/", Some("a/1"), 1)), ["a/2"]);
        assert_eq!(names(ix.live_names("a/", Some("a/2"), 10)), ["a/4"]);
        assert_eq!(names(ix.live_names("a/", Some("0"), 1)), ["a/1"], "a start before the prefix");
        assert!(names(ix.live_names("a/", Some("z"), 10)).is_empty());
        assert_eq!(names(ix.live_names("", None, 10)), ["a/1", "a/2", "a/4", "b/1"]);
        assert_eq!(ix.live_count(), 4);
    }

    #[test]
    fn only_a_later_record_changes_an_entry_whatever_the_order_of_arrival() {
        let ix = NameIndex::default();
        ix.scan_started();
        // Changes arriving during the scan, one of them older than what the scan saw.
        ix.note("x", 7, false);
        ix.note("y", 2, true);
        ix.scan_done(1, vec![("x".into(), 5, true), ("y".into(), 3, false)]);
        assert_eq!(
            names(ix.live_names("", None, 10)),
            Vec::<String>::new(),
            "x deleted at 7; y's 2 older than 3"
        );
        ix.note("x", 9, true);
        ix.note("x", 8, false); // late and older: ignored
        ix.note("x", 9, true); // twice: no change
        assert_eq!(names(ix.live_names("", None, 10)), ["x"]);
        assert_eq!(ix.live_count(), 1);
    }
}
