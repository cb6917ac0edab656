//! A store's periodic background threads (the file engines' fsync and compaction, the acid
//! engine's compaction): stopped and joined when dropped, so that an engine owner holding one
//! beside the engine has released its files when its drop returns. Knows nothing of what the
//! threads do. Keep it outside the engine the threads reach (through a `Weak`): a thread must
//! never be the one dropping it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Periodic threads sharing one stop signal.
#[derive(Default)]
pub struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    /// Runs `tick` every `interval_ms` until stopped or until it returns false.
    pub fn every(&mut self, name: &str, interval_ms: u64, tick: impl Fn() -> bool + Send + 'static) {
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || loop {
            {
                let (flag, cv) = &*stop;
                let mut stopped = flag.lock();
                if !*stopped {
                    cv.wait_for(&mut stopped, Duration::from_millis(interval_ms));
                }
                if *stopped {
                    return;
                }
            }
            if !tick() {
                return;
            }
        });
        if let Ok(h) = spawned {
            self.threads.push(h);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
