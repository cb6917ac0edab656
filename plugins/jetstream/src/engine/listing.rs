//! Listing (a scan of the catalogue), the sweeper's expired names, and the change listener fed
//! by the republished append headers.

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
        let mut recs: Vec<Record> = catalog::scan(&self.c)
            .await?
            .into_iter()
            .filter(|r| r.state == State::Live && r.name.starts_with(prefix))
            .filter(|r| after.as_ref().is_none_or(|a| r.name.as_str() > a.as_str()))
            .filter(|r| !Self::expired(r, self.local_access(&r.name), req.now_ms))
            .collect();
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = RVec::new();
        for rec in recs {
            if out.len() >= req.limit as usize {
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

    pub(super) async fn list_expired(&self, req: &ExpiredRequest) -> Result<RVec<RString>, EngineError> {
        let names: Vec<RString> = catalog::scan(&self.c)
            .await?
            .into_iter()
            .filter(|r| r.state == State::Live && self.sweepable(r, req.now_ms))
            .take(req.limit as usize)
            .map(|r| RString::from(r.name))
            .collect();
        Ok(RVec::from(names))
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
