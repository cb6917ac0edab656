//! Listing (pages of the name index, which a catalogue scan builds and the catalogue's changes
//! keep current), the sweeper's expired names, and the change listener fed by the republished
//! append headers.

use abi_stable::std_types::{RStr, RString, RVec};
use durable_streams_core::abi::*;
use futures_util::{StreamExt, TryStreamExt};

use std::collections::HashMap;

use super::JetStreamStorage;
use crate::catalog::{self, hash_of, Record, State};
use crate::cluster::unavailable;
use crate::data::{self, Subject};
use crate::lasts;

impl JetStreamStorage {
    /// A page of live streams under a prefix, in name order, from the name index (built by one
    /// catalogue scan when it is not current): a page costs its names' records and tails,
    /// read fresh, 64 requests in flight, whatever the size of the catalogue.
    pub(super) async fn list(&self, req: &ListRequest<'_>) -> Result<RVec<StreamListing>, EngineError> {
        let prefix = req.prefix.as_str();
        self.index_current().await?;
        let limit = req.limit as usize;
        let mut after = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let mut out = RVec::new();
        while out.len() < limit {
            // Names whose record turns out expired or gone are skipped: ask for the rest.
            let batch = self.c.names.live_names(prefix, after.as_deref(), limit - out.len());
            let Some((last, _)) = batch.last() else { break };
            after = Some(last.clone());
            out.extend(self.listings_of(&batch, req.now_ms).await?);
        }
        Ok(out)
    }

    /// Makes the name index current: subscribed to the catalogue's changes, and built by a scan
    /// in this connection epoch (changes published while disconnected were lost).
    pub(super) async fn index_current(&self) -> Result<(), EngineError> {
        let epoch = self.c.epoch.load(std::sync::atomic::Ordering::Acquire);
        if self.c.names.current(epoch) {
            return Ok(());
        }
        self.follow_catalog().await?;
        // One build at a time (an async lock: the build awaits the scan); a listing that waited
        // finds the index built.
        let _one = self.index_build.lock().await;
        if self.c.names.current(epoch) {
            return Ok(());
        }
        self.c.names.scan_started();
        let mut scanned = Vec::new();
        let r = catalog::scan(&self.c, |r, seq| scanned.push((r.name, seq, r.state == State::Live))).await;
        match r {
            Ok(()) => {
                self.c.names.scan_done(epoch, scanned);
                Ok(())
            }
            Err(e) => {
                self.c.names.scan_failed();
                Err(e)
            }
        }
    }

    /// Feeds the name index from the catalogue's republished changes (subscribed once; the
    /// client renews the subscription after a reconnection).
    async fn follow_catalog(&self) -> Result<(), EngineError> {
        self.following_catalog
            .get_or_try_init(|| async {
                let subject = self.c.catalog_notify_wildcard();
                let mut sub = self
                    .c
                    .client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| unavailable(format!("subscribe {subject}: {e}")))?;
                let names = self.c.names.clone();
                self.c.rt.spawn(async move {
                    while let Some(m) = sub.next().await {
                        let Some(h) = m.headers.as_ref() else { continue };
                        let (Some(name), Some(live), Some(seq)) = (
                            h.get(catalog::NAME_HEADER),
                            h.get(catalog::LIVE_HEADER),
                            h.get("Nats-Sequence").and_then(|v| v.as_str().parse::<u64>().ok()),
                        ) else {
                            continue;
                        };
                        names.note(name.as_str(), seq, live.as_str() == "1");
                    }
                });
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The listings of `names` (each with the catalogue sequence the index knows), in order,
    /// leaving out those gone, expired or empty: their records in one round trip to the
    /// catalogue, their tails in one per data stream (`lasts`). A record older than the one the
    /// index knows (a replica behind), or one not found, is read from the leader; a tail may lag
    /// the newest appends by the replication delay (a listing is a snapshot; HEAD is exact).
    async fn listings_of(&self, names: &[(String, u64)], now: u64) -> Result<Vec<StreamListing>, EngineError> {
        let subjects: Vec<String> = names.iter().map(|(n, _)| self.c.catalog_subject(&hash_of(n))).collect();
        let mut got = lasts::last_of_many(&self.c, &self.c.catalog_stream(), &subjects).await?;
        let recs = names.iter().zip(&subjects).map(|((name, known), subject)| {
            let fresh = got
                .remove(subject)
                .filter(|m| m.sequence >= *known)
                .and_then(|m| serde_json::from_slice::<Record>(&m.payload).ok())
                .filter(|r| r.name == *name);
            async move {
                match fresh {
                    Some(rec) => Ok(Some(rec)),
                    None => catalog::get(&self.c, name).await.map(|v| v.map(|(rec, _)| rec)),
                }
            }
        });
        // Fallbacks to the leader: at most 64 in flight (all of a page when the batch failed).
        let recs: Vec<Record> = futures_util::stream::iter(recs)
            .buffered(64)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .filter(|rec| rec.state == State::Live && !Self::expired(rec, self.local_access(&rec.name), now))
            .collect();
        let mut by_stream: HashMap<String, Vec<String>> = HashMap::new();
        let subjects: Vec<Subject> = recs.iter().map(|rec| self.subject(rec)).collect();
        for s in &subjects {
            by_stream.entry(s.stream.clone()).or_default().push(s.subject.clone());
        }
        let lasts = futures_util::future::try_join_all(
            by_stream
                .iter()
                .map(|(stream, subjects)| lasts::last_of_many(&self.c, stream, subjects)),
        )
        .await?;
        let mut found: HashMap<String, _> = lasts.into_iter().flatten().collect();
        let tails = subjects.iter().map(|s| {
            let last = found.remove(&s.subject);
            async move {
                match last {
                    Some(m) => data::tail_of(&m),
                    None => data::tail(&self.c, s).await,
                }
            }
        });
        let tails: Vec<_> = futures_util::stream::iter(tails).buffered(64).try_collect().await?;
        Ok(recs
            .iter()
            .zip(tails)
            .filter(|(_, tail)| tail.seq != 0 && tail.state.deleted.is_none())
            .map(|(rec, tail)| StreamListing {
                name: rec.name.as_str().into(),
                meta: Self::meta(rec, &tail),
            })
            .collect())
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
        catalog::scan(&self.c, |r, _| {
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
        if self.c.names.current(self.c.epoch.load(std::sync::atomic::Ordering::Acquire)) {
            return Ok(self.c.names.live_count());
        }
        let mut n = 0u64;
        catalog::scan(&self.c, |r, _| {
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
        let origin = self.c.origin.clone();
        self.c.rt.spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(h) = m.headers.as_ref() else { continue };
                // This host's own writes: it woke its readers when it answered them.
                if h.get("DS-Nonce").is_some_and(|n| n.as_str().starts_with(origin.as_str())) {
                    continue;
                }
                if let Some(name) = h.get("DS-Name") {
                    told.stream_changed(RStr::from(name.as_str()));
                }
            }
        });
        // A write whose outcome stayed unknown may be stored: every reader looks again.
        let unsure = self.c.unsure.clone();
        let told = listener.clone();
        self.c.rt.spawn(async move {
            loop {
                unsure.notified().await;
                told.stream_changed(RStr::from(""));
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
