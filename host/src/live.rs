//! Live tail: wakes long-poll and SSE readers of a stream after the engine acknowledges a write.
//!
//! A std mutex, not a tokio one: no await happens while it is held.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RStr;
use durable_streams_core::abi::{ChangeListener, ChangeListenerBox};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Per-stream wake-up registry. Entries exist only while someone waits.
#[derive(Default)]
pub struct LiveTail {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A registration; dropping it removes the entry once no other waiter holds it.
pub struct Waiter<'a> {
    tail: &'a LiveTail,
    name: String,
    pub notify: Arc<Notify>,
}

impl LiveTail {
    /// Registers interest in `name`.
    pub fn watch(&self, name: &str) -> Waiter<'_> {
        let notify = self
            .waiters
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        Waiter {
            tail: self,
            name: name.to_string(),
            notify,
        }
    }

    /// Wakes every reader waiting on `name`.
    pub fn wake(&self, name: &str) {
        let n = self.waiters.lock().get(name).cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Wakes everyone (shutdown).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self.waiters.lock().values().cloned().collect();
        for n in all {
            n.notify_waiters();
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
        if let Some(n) = map.get(&self.name) {
            // The map and this waiter hold it: nobody else waits.
            if Arc::strong_count(n) <= 2 && Arc::ptr_eq(n, &self.notify) {
                map.remove(&self.name);
            }
        }
    }
}

/// The host side of an `EXTERNAL_WRITERS` engine's change notifications: called from the
/// plugin's own threads, it only touches the sync mutex and `Notify` (no runtime needed).
struct HostListener(Arc<LiveTail>);

impl ChangeListener for HostListener {
    fn stream_changed(&self, name: RStr<'_>) {
        self.0.wake(name.as_str());
    }
}

/// A listener to hand to `Engine::set_change_listener`.
pub fn listener(live: Arc<LiveTail>) -> ChangeListenerBox {
    ChangeListenerBox::from_value(HostListener(live), TD_Opaque)
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
            let l = listener(live.clone());
            std::thread::spawn(move || l.stream_changed(RStr::from("s"))).join().unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(2), notified)
                .await
                .expect("woken by the plugin-thread callback");
        }
        drop(w);
        assert_eq!(live.watched(), 0, "entries go when the last waiter leaves");
    }
}
