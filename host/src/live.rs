//! Live tail: wakes long-poll and SSE readers of a stream after the engine acknowledges a write.
//!
//! A std mutex, not a tokio one: no await happens while it is held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RStr;
use durable_streams_core::abi::{ChangeListener, ChangeListenerBox};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Per-stream wake-up registry. Entries exist while someone waits, and an entry holding recent
/// reads lingers `LINGER` after its last reader leaves: long-polls all answered by one write
/// come back within milliseconds and find the chunk they need.
#[derive(Default)]
pub struct LiveTail {
    waiters: Mutex<HashMap<String, Arc<Entry>>>,
    /// When idle entries were last dropped.
    pruned: Mutex<Option<std::time::Instant>>,
}

/// Shared reads kept per stream: one per position readers were at lately.
const FLIGHTS: usize = 16;

/// How long an idle entry with recent reads is kept.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The most recent live read of a stream, shared by readers woken by the same write.
pub type Cached = Arc<dyn std::any::Any + Send + Sync>;

/// One watched stream.
pub struct Entry {
    pub notify: Arc<Notify>,
    /// Incremented by every wake, before waiters are notified.
    generation: AtomicU64,
    /// Recent reads, newest last: (generation when the read began, start, next, chunk).
    cache: Mutex<std::collections::VecDeque<(u64, u64, u64, Cached)>>,
    /// Reads in progress (or just done), newest last, at most [`FLIGHTS`]: readers woken by the
    /// same write join the one from their position instead of each reading, and readers at
    /// different positions do not replace each other's.
    flights: Mutex<std::collections::VecDeque<Arc<Flight>>>,
    /// Since when nobody waits (kept for its recent reads), if so.
    idle_since: Mutex<Option<std::time::Instant>>,
}

/// One engine read shared by every reader that may use its result.
pub struct Flight {
    /// The wake generation when the read began.
    pub generation: u64,
    pub start: u64,
    /// The chunk, or `None` when the read failed (each reader then reads for its own error).
    pub result: tokio::sync::OnceCell<Option<Cached>>,
}

impl Entry {
    /// The wake generation now (load it after registering, before reading).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A recent chunk covering `pos`, and its start. A chunk read at or after wake generation
    /// `at_least` holds everything a fresh read would (later writes wake the reader again), so
    /// it serves any `pos` within `[start, next]`; an older one serves only a reader behind its
    /// end (that reader moves on by it and reads again), so lagging readers catch up without
    /// each reading the engine.
    /// Answers the chunk and whether it is fresh.
    pub fn covering(&self, pos: u64, at_least: u64) -> Option<(Cached, bool)> {
        let cache = self.cache.lock();
        if let Some((_, _, _, c)) = cache.iter().rev().find(|(g, s, n, _)| *g >= at_least && *s <= pos && pos <= *n) {
            return Some((c.clone(), true));
        }
        cache
            .iter()
            .filter(|(_, s, n, _)| *s <= pos && pos < *n)
            .max_by_key(|(_, _, n, _)| *n)
            .map(|(_, _, _, c)| (c.clone(), false))
    }

    /// The read from `start` to join: one that began at or after wake generation `at_least`, or
    /// a new one (the caller runs it through `Flight::result`).
    pub fn flight(&self, start: u64, at_least: u64) -> Arc<Flight> {
        let mut f = self.flights.lock();
        if let Some(cur) = f.iter().rev().find(|c| c.start == start && c.generation >= at_least) {
            return cur.clone();
        }
        let new = Arc::new(Flight {
            generation: self.generation(),
            start,
            result: tokio::sync::OnceCell::new(),
        });
        // A read from the same position begun before a later write is of no more use.
        f.retain(|c| c.start != start);
        if f.len() >= FLIGHTS {
            f.pop_front();
        }
        f.push_back(new.clone());
        new
    }

    /// The most recent chunk offered, if any.
    pub fn newest(&self) -> Option<Cached> {
        self.cache.lock().back().map(|(_, _, _, c)| c.clone())
    }

    /// Offers a chunk covering `[start, next)` read by a read that began at wake generation
    /// `generation`.
    pub fn offer(&self, generation: u64, start: u64, next: u64, chunk: Cached) {
        let mut c = self.cache.lock();
        if c.iter().any(|(g, s, n, _)| *g == generation && *s == start && *n == next) {
            return;
        }
        c.push_back((generation, start, next, chunk));
        // At most 16 chunks (readers lagging by different amounts each find theirs) and about
        // 1 MiB per stream (the newest is always kept).
        while c.len() > 16 || (c.len() > 1 && c.iter().map(|(_, s, n, _)| n - s).sum::<u64>() > 1 << 20) {
            c.pop_front();
        }
    }
}

/// A registration; dropping it removes the entry once no other waiter holds it.
pub struct Waiter {
    tail: Arc<LiveTail>,
    name: String,
    pub notify: Arc<Notify>,
    pub entry: Arc<Entry>,
}

impl LiveTail {
    /// Registers interest in `name`.
    pub fn watch(self: &Arc<Self>, name: &str) -> Waiter {
        let mut map = self.waiters.lock();
        self.prune(&mut map);
        let entry = map
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    notify: Arc::new(Notify::new()),
                    generation: AtomicU64::new(0),
                    cache: Mutex::new(Default::default()),
                    flights: Mutex::new(Default::default()),
                    idle_since: Mutex::new(None),
                })
            })
            .clone();
        drop(map);
        *entry.idle_since.lock() = None;
        Waiter {
            tail: self.clone(),
            name: name.to_string(),
            notify: entry.notify.clone(),
            entry,
        }
    }

    /// Drops entries idle for longer than `LINGER` (at most once a second).
    fn prune(&self, map: &mut HashMap<String, Arc<Entry>>) {
        let mut last = self.pruned.lock();
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        map.retain(|_, e| Arc::strong_count(e) > 1 || e.idle_since.lock().is_none_or(|t| t.elapsed() < LINGER));
    }

    /// Wakes every reader waiting on `name`.
    pub fn wake(&self, name: &str) {
        let e = self.waiters.lock().get(name).cloned();
        if let Some(e) = e {
            e.generation.fetch_add(1, Ordering::AcqRel);
            e.notify.notify_waiters();
        }
    }

    /// Wakes everyone (shutdown; an engine that may have missed notifications).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Entry>> = self.waiters.lock().values().cloned().collect();
        for e in all {
            e.generation.fetch_add(1, Ordering::AcqRel);
            e.notify.notify_waiters();
        }
    }

    /// Number of streams with waiters.
    pub fn watched(&self) -> usize {
        self.waiters.lock().len()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self.tail.waiters.lock();
        if let Some(e) = map.get(&self.name) {
            // The map and this waiter hold it: nobody else waits. Recent reads keep it a while.
            if Arc::strong_count(e) <= 2 && Arc::ptr_eq(e, &self.entry) {
                if e.cache.lock().is_empty() {
                    map.remove(&self.name);
                } else {
                    *e.idle_since.lock() = Some(std::time::Instant::now());
                }
            }
        }
    }
}

/// Someone else told of every external change (the subscription service), from any thread.
pub type Observer = Arc<dyn Fn(&str) + Send + Sync>;

/// The host side of an `EXTERNAL_WRITERS` engine's change notifications: called from the
/// plugin's own threads, it only touches sync mutexes and `Notify` (no runtime needed).
struct HostListener(Arc<LiveTail>, Option<Observer>);

impl ChangeListener for HostListener {
    fn stream_changed(&self, name: RStr<'_>) {
        if name.is_empty() {
            // Anything may have changed: every waiting reader looks again.
            self.0.wake_all();
        } else {
            self.0.wake(name.as_str());
        }
        if let Some(o) = &self.1 {
            o(name.as_str());
        }
    }
}

/// A listener to hand to `Engine::set_change_listener`.
pub fn listener(live: Arc<LiveTail>, observer: Option<Observer>) -> ChangeListenerBox {
    ChangeListenerBox::from_value(HostListener(live, observer), TD_Opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_chunks_serve_fresh_readers_anywhere_and_lagging_readers_behind_their_end() {
        let live = Arc::new(LiveTail::default());
        let w = live.watch("s");
        let chunk = |tag: &str| -> Cached { Arc::new(tag.to_string()) };
        let tag = |c: Option<(Cached, bool)>| c.map(|(c, fresh)| (c.downcast::<String>().unwrap().to_string(), fresh));
        w.entry.offer(0, 0, 10, chunk("old"));
        live.wake("s"); // generation 1
        w.entry.offer(1, 10, 20, chunk("new"));
        let g = w.entry.generation();
        assert_eq!(tag(w.entry.covering(15, g)), Some(("new".into(), true)));
        assert_eq!(
            tag(w.entry.covering(20, g)),
            Some(("new".into(), true)),
            "fresh at its end: nothing more"
        );
        assert_eq!(
            tag(w.entry.covering(5, g)),
            Some(("old".into(), false)),
            "a lagging reader moves on by an old chunk"
        );
        assert_eq!(
            tag(w.entry.covering(10, g + 1)),
            Some(("new".into(), false)),
            "older than a later wake: stale"
        );
        assert_eq!(tag(w.entry.covering(20, g + 1)), None, "a stale chunk is no use at its end");
        assert_eq!(tag(w.entry.covering(25, g)), None);
    }

    #[test]
    fn readers_at_different_positions_share_their_own_reads() {
        let live = Arc::new(LiveTail::default());
        let w = live.watch("s");
        let g = w.entry.generation();
        let a = w.entry.flight(10, g);
        let b = w.entry.flight(20, g);
        assert!(Arc::ptr_eq(&a, &w.entry.flight(10, g)), "a reader at 10 joins the read from 10");
        assert!(Arc::ptr_eq(&b, &w.entry.flight(20, g)), "and one at 20 the read from 20");
        live.wake("s");
        let g2 = w.entry.generation();
        let a2 = w.entry.flight(10, g2);
        assert!(!Arc::ptr_eq(&a, &a2), "after a later write, a new read");
        assert!(
            Arc::ptr_eq(&b, &w.entry.flight(20, g)),
            "readers woken before it still share theirs"
        );
        for p in 100..100 + FLIGHTS as u64 {
            w.entry.flight(p, g2);
        }
        assert!(!Arc::ptr_eq(&a2, &w.entry.flight(10, g2)), "bounded: the oldest went");
    }

    #[test]
    fn an_entry_with_recent_reads_outlives_its_last_reader_briefly() {
        let live = Arc::new(LiveTail::default());
        {
            let w = live.watch("s");
            w.entry.offer(0, 0, 10, Arc::new(()));
        }
        assert_eq!(live.watched(), 1, "kept for the readers coming back");
        let w = live.watch("s");
        assert!(
            w.entry.covering(10, 0).is_some_and(|(_, fresh)| fresh),
            "the next long-poll finds the chunk"
        );
        drop(w);
        {
            let _empty = live.watch("t");
        }
        assert_eq!(live.watched(), 1, "an entry without reads goes at once");
    }

    #[tokio::test]
    async fn external_change_from_a_plain_thread_wakes_waiters() {
        let live = Arc::new(LiveTail::default());
        let w = live.watch("s");
        {
            let notified = w.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let l = listener(live.clone(), None);
            std::thread::spawn(move || l.stream_changed(RStr::from("s"))).join().unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(2), notified)
                .await
                .expect("woken by the plugin-thread callback");
        }
        drop(w);
        assert_eq!(live.watched(), 0, "entries go when the last waiter leaves");
    }
}
