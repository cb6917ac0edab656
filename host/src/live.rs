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

/// Per-stream wake-up registry. Entries exist only while someone waits.
#[derive(Default)]
pub struct LiveTail {
    waiters: Mutex<HashMap<String, Arc<Entry>>>,
}

/// The most recent live read of a stream, shared by readers woken by the same write.
pub type Cached = Arc<dyn std::any::Any + Send + Sync>;

/// One watched stream.
pub struct Entry {
    pub notify: Arc<Notify>,
    /// Incremented by every wake, before waiters are notified.
    generation: AtomicU64,
    /// (generation when the read began, start position, chunk).
    cache: Mutex<Option<(u64, u64, Cached)>>,
    /// The read in progress, which readers woken by the same write join instead of each reading.
    flight: Mutex<Option<Arc<Flight>>>,
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

    /// A chunk read from `start` by a read that began at or after wake generation `at_least`:
    /// it holds everything a fresh read would (later writes wake the reader again).
    pub fn cached(&self, start: u64, at_least: u64) -> Option<Cached> {
        match &*self.cache.lock() {
            Some((g, s, c)) if *s == start && *g >= at_least => Some(c.clone()),
            _ => None,
        }
    }

    /// The read from `start` to join: one that began at or after wake generation `at_least`, or
    /// a new one (the caller runs it through `Flight::result`).
    pub fn flight(&self, start: u64, at_least: u64) -> Arc<Flight> {
        let mut f = self.flight.lock();
        if let Some(cur) = f.as_ref().filter(|c| c.start == start && c.generation >= at_least) {
            return cur.clone();
        }
        let new = Arc::new(Flight {
            generation: self.generation(),
            start,
            result: tokio::sync::OnceCell::new(),
        });
        *f = Some(new.clone());
        new
    }

    /// Offers a chunk read from `start` that began at wake generation `generation`.
    pub fn offer(&self, generation: u64, start: u64, chunk: Cached) {
        let mut c = self.cache.lock();
        if c.as_ref().is_none_or(|(g, _, _)| *g <= generation) {
            *c = Some((generation, start, chunk));
        }
    }
}

/// A registration; dropping it removes the entry once no other waiter holds it.
pub struct Waiter<'a> {
    tail: &'a LiveTail,
    name: String,
    pub notify: Arc<Notify>,
    pub entry: Arc<Entry>,
}

impl LiveTail {
    /// Registers interest in `name`.
    pub fn watch(&self, name: &str) -> Waiter<'_> {
        let entry = self
            .waiters
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    notify: Arc::new(Notify::new()),
                    generation: AtomicU64::new(0),
                    cache: Mutex::new(None),
                    flight: Mutex::new(None),
                })
            })
            .clone();
        Waiter {
            tail: self,
            name: name.to_string(),
            notify: entry.notify.clone(),
            entry,
        }
    }

    /// Wakes every reader waiting on `name`.
    pub fn wake(&self, name: &str) {
        let e = self.waiters.lock().get(name).cloned();
        if let Some(e) = e {
            e.generation.fetch_add(1, Ordering::AcqRel);
            e.notify.notify_waiters();
        }
    }

    /// Wakes everyone (shutdown).
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

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut map = self.tail.waiters.lock();
        if let Some(e) = map.get(&self.name) {
            // The map and this waiter hold it: nobody else waits.
            if Arc::strong_count(e) <= 2 && Arc::ptr_eq(e, &self.entry) {
                map.remove(&self.name);
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
        self.0.wake(name.as_str());
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
