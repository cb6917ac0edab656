//! Listing (a scan of the catalogue), the sweeper's expired names, and the change listener fed
//! by the republished append headers.

use abi_stable::std_types::{RStr, RString, RVec};
use durable_streams_core::abi::*;
use futures_util::StreamExt;

use super::JetStreamStorage;
use crate::catalog::{self, State};
use crate::cluster::unavailable;
use crate::data::{self};

/// How long a listing's sorted names serve the following pages.
const SNAPSHOT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl JetStreamStorage {
    /// A page of live streams under a prefix, in name order. The first page scans the
    /// catalogue once and keeps the sorted matching names (names only) for `SNAPSHOT_FOR`, so
    /// paging through every stream costs one scan, not one per page; each listed stream's record
    /// and tail are read fresh.
    pub(super) async fn list(&self, req: &ListRequest<'_>) -> Result<RVec<StreamListing>, EngineError> {
        let prefix = req.prefix.as_str();
        let after = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let reuse = after.is_some()
            && self
                .list_snapshot
                .lock()
                .as_ref()
                .is_some_and(|(p, _, at)| p == prefix && at.elapsed() < SNAPSHOT_FOR);
        let names = if reuse {
            self.list_snapshot.lock().as_ref().map(|(_, n, _)| n.clone()).unwrap_or_default()
        } else {
            let mut names = Vec::new();
            catalog::scan(&self.c, |r| {
                if r.state == State::Live && r.name.starts_with(prefix) && !Self::expired(&r, self.local_access(&r.name), req.now_ms) {
                    names.push(r.name);
                }
            })
            .await?;
            names.sort_unstable();
            let names = std::sync::Arc::new(names);
            *self.list_snapshot.lock() = Some((prefix.to_string(), names.clone(), std::time::Instant::now()));
            names
        };
        let from = after.as_ref().map_or(0, |a| names.partition_point(|n| n.as_str() <= a.as_str()));
        let limit = req.limit as usize;
        let mut out = RVec::new();
        let mut at = from;
        while out.len() < limit && at < names.len() {
            // Records and tails of the next names, 64 requests in flight.
            let want = (limit - out.len()).min(names.len() - at);
            let batch = &names[at..at + want];
            at += want;
            let found: Vec<Option<StreamListing>> = futures_util::stream::iter(batch.iter())
                .map(|name| self.listing_of(name, req.now_ms))
                .buffered(64)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            out.extend(found.into_iter().flatten());
        }
        Ok(out)
    }

    /// A live stream's listing (record and tail read now), `None` when it is gone or empty.
    async fn listing_of(&self, name: &str, now: u64) -> Result<Option<StreamListing>, EngineError> {
        let Some((rec, _)) = catalog::get(&self.c, name).await? else {
            return Ok(None);
        };
        if rec.state != State::Live || Self::expired(&rec, self.local_access(name), now) {
            return Ok(None);
        }
        let tail = data::tail(&self.c, &self.subject(&rec)).await?;
        if tail.seq == 0 || tail.state.deleted.is_some() {
            return Ok(None);
        }
        Ok(Some(StreamListing {
            name: rec.name.as_str().into(),
            meta: Self::meta(&rec, &tail),
        }))
    }

    /// Expired names for the sweeper. Expired streams already answer `NOT_FOUND` to every
    /// request, so removing them is only reclaiming space: a host scans the catalogue for them
    /// at most every `jetstream.sweep_scan_secs`, whatever the host's sweep interval.
    pub(super) async fn list_expired(&self, req: &ExpiredRequest) -> Result<RVec<RString>, EngineError> {
        {
            let mut last = self.last_sweep_scan.lock();
            let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(self.sweep_scan_secs));
            if !due {
                return Ok(RVec::new());
            }
            *last = Some(std::time::Instant::now());
        }
        let mut names = Vec::new();
        let limit = req.limit as usize;
        catalog::scan(&self.c, |r| {
            if names.len() < limit && r.state == State::Live && self.sweepable(&r, req.now_ms) {
                names.push(RString::from(r.name));
            }
        })
        .await?;
        if names.len() >= limit {
            // More to remove: the next sweep scans again at once.
            *self.last_sweep_scan.lock() = None;
        }
        Ok(RVec::from(names))
    }

    /// The number of live streams, for `/metrics`: a scan at most every `sweep_scan_secs`.
    pub(super) async fn live_count(&self) -> Result<u64, EngineError> {
        if let Some((n, at)) = *self.live_count.lock() {
            if at.elapsed() < std::time::Duration::from_secs(self.sweep_scan_secs) {
                return Ok(n);
            }
        }
        let mut n = 0u64;
        catalog::scan(&self.c, |r| {
            if r.state == State::Live {
                n += 1;
            }
        })
        .await?;
        *self.live_count.lock() = Some((n, std::time::Instant::now()));
        Ok(n)
    }

    pub(super) fn listen(&self, listener: ChangeListenerBox) -> Result<(), EngineError> {
        let mut started = self.listening.lock();
        if *started {
            return Ok(());
        }
        let client = self.c.client.clone();
        let subject = self.c.notify_wildcard();
        let mut sub = self
            .c
            .block(client.subscribe(subject.clone()))
            .map_err(|e| unavailable(format!("subscribe {subject}: {e}")))?;
        let listener = std::sync::Arc::new(listener);
        let told = listener.clone();
        self.c.rt.spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(name) = m.headers.as_ref().and_then(|h| h.get("DS-Name")) {
                    told.stream_changed(RStr::from(name.as_str()));
                }
            }
        });
        // Notifications published while this host was disconnected are lost: after every
        // reconnection tell the host that anything may have changed (an empty name), at once
        // and again a second later (once the subscription is surely back).
        let reconnected = self.c.reconnected.clone();
        self.c.rt.spawn(async move {
            loop {
                reconnected.notified().await;
                listener.stream_changed(RStr::from(""));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                listener.stream_changed(RStr::from(""));
            }
        });
        *started = true;
        Ok(())
    }
}
