//! Read-ahead for catch-up readers: when a read stops below the tail, the batch that follows is
//! fetched in the background and kept, within a memory budget, for the read that asks for that
//! position next. Owns the slots and the budget; what a read returns is decided by `io`, which
//! checks every message taken from here against the tail it read (so nothing past the tail, and
//! nothing of a deleted stream, is ever served from a slot).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use tokio::sync::oneshot;

use crate::data::{self, Subject};

/// Slots kept per stream (readers at different positions of one stream each keep theirs).
const SLOTS_PER_STREAM: usize = 4;

/// Bytes fetched ahead on this host at most, over every stream.
const BUDGET_BYTES: usize = 64 << 20;

/// A batch fetched (or being fetched) for the read at `pos`, from stream sequence `seq` of the
/// subject `subject`.
pub(super) struct Slot {
    pub pos: u64,
    pub seq: u64,
    pub subject: String,
    rx: oneshot::Receiver<Vec<StreamMessage>>,
    _charge: Charge,
}

impl Slot {
    /// The messages, once fetched (empty when the fetch failed or took too long: the read then
    /// asks the cluster itself).
    pub async fn messages(self, timeout: Duration) -> Vec<StreamMessage> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(m)) => m,
            _ => Vec::new(),
        }
    }
}

/// Bytes of the budget held by one slot, given back when the slot is dropped.
struct Charge {
    budget: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The slots of one stream.
#[derive(Default)]
pub(super) struct Slots(parking_lot::Mutex<Vec<Slot>>);

impl Slots {
    /// Takes the slot for a read at `pos` of `subject`, if one was started.
    pub fn take(&self, pos: u64, subject: &str) -> Option<Slot> {
        let mut v = self.0.lock();
        let i = v.iter().position(|s| s.pos == pos && s.subject == subject)?;
        Some(v.swap_remove(i))
    }

    fn put(&self, slot: Slot) {
        let mut v = self.0.lock();
        v.retain(|s| s.pos != slot.pos);
        if v.len() >= SLOTS_PER_STREAM {
            v.remove(0);
        }
        v.push(slot);
    }
}

/// Starts fetches ahead within the budget shared by every stream of this host.
#[derive(Clone, Default)]
pub(super) struct ReadAhead {
    budget: Arc<AtomicUsize>,
}

/// Where a fetch ahead starts and how much it brings.
pub(super) struct Fetch<'a> {
    pub subject: &'a Subject,
    pub pos: u64,
    pub seq: u64,
    pub bytes: usize,
}

impl ReadAhead {
    /// Fetches `f` in the background into a slot of `slots`, unless the budget is spent.
    pub fn start(&self, rt: &tokio::runtime::Runtime, client: &async_nats::Client, timeout: Duration, slots: &Slots, f: Fetch<'_>) {
        let bytes = f.bytes.max(1);
        if self.budget.fetch_add(bytes, Ordering::Relaxed) + bytes > BUDGET_BYTES {
            self.budget.fetch_sub(bytes, Ordering::Relaxed);
            return;
        }
        let charge = Charge {
            budget: self.budget.clone(),
            bytes,
        };
        let (tx, rx) = oneshot::channel();
        let (client, subject, seq) = (client.clone(), f.subject.clone(), f.seq);
        rt.spawn(async move {
            let got = data::batch_with(&client, timeout, &subject, seq, 1024, bytes)
                .await
                .unwrap_or_default();
            let _ = tx.send(got);
        });
        slots.put(Slot {
            pos: f.pos,
            seq: f.seq,
            subject: f.subject.subject.clone(),
            rx,
            _charge: charge,
        });
    }
}
