//! Listing (a scan of the catalogue), the sweeper's expired names, and the change listener fed
//! by the republished append headers.

use std::collections::BTreeMap;

use abi_stable::std_types::{RStr, RString, RVec};
use durable_streams_core::abi::*;
use futures_util::StreamExt;

use super::JetStreamStorage;
use crate::catalog::{self, Record, State};
use crate::cluster::unavailable;
use crate::data::{self};

impl JetStreamStorage {
    pub(super) async fn list(&self, req: &ListRequest<'_>) -> Result<RVec<StreamListing>, EngineError> {
        let prefix = req.prefix.as_str();
        let after = req.start_after.map(|s| s.as_str().to_string()).into_option();
        let limit = req.limit as usize;
        // The `limit` smallest matching names, kept in a bounded ordered map while the
        // catalogue streams past: one page costs one scan and memory for one page. Some may
        // turn out empty or deleted below, so a little more is kept than asked.
        let keep = limit.saturating_add(limit / 4 + 8);
        let mut page: BTreeMap<String, Record> = BTreeMap::new();
        catalog::scan(&self.c, |r| {
            let wanted = r.state == State::Live
                && r.name.starts_with(prefix)
                && after.as_ref().is_none_or(|a| r.name.as_str() > a.as_str())
                && !Self::expired(&r, self.local_access(&r.name), req.now_ms);
            if !wanted || (page.len() >= keep && page.last_key_value().is_some_and(|(k, _)| r.name >= *k)) {
                return;
            }
            page.insert(r.name.clone(), r);
            if page.len() > keep {
                page.pop_last();
            }
        })
        .await?;
        let mut out = RVec::new();
        for rec in page.into_values() {
            if out.len() >= limit {
                break;
            }
            let tail = data::tail(&self.c, &self.subject(&rec)).await?;
            if tail.seq == 0 || tail.state.deleted.is_some() {
                continue;
            }
            out.push(StreamListing {
                name: rec.name.as_str().into(),
                meta: Self::meta(&rec, &tail),
            });
        }
        Ok(out)
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
        self.c.rt.spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(name) = m.headers.as_ref().and_then(|h| h.get("DS-Name")) {
                    listener.stream_changed(RStr::from(name.as_str()));
                }
            }
        });
        *started = true;
        Ok(())
    }
}
