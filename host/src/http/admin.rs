//! Backups of a running server: `GET {base}/__ds/export?prefix=` streams an export (the format of
//! `cli::transfer`, each stream one consistent snapshot taken through the engine) and
//! `POST {base}/__ds/import?on_conflict=fail|skip|replace` restores one, checked whole first and
//! all-or-nothing, its subscriptions through the running subscription service. The work runs on
//! blocking threads; nothing here holds a lock across an await.

use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use tokio::io::AsyncWriteExt;

use super::error::ApiError;
use crate::auth::{Caller, Op};
use crate::cli::{Conflict, SubscriptionSink, TransferError};
use crate::state::AppState;
use crate::subs::model::Sub;
use crate::subs::store::Record;
use crate::subs::Subscriptions;

/// Routes `export` and `import` under `{base}/__ds/`; `None` for other control routes.
/// `caller` has `admin` somewhere: an export holds only the streams it may read (and the
/// subscriptions inside its `admin` scope); an import is refused whole unless it may create
/// every stream in it (and delete those it would replace) and manage every subscription.
pub async fn dispatch(state: &Arc<AppState>, caller: &Caller, rest: &str, parts: &Parts, body: Body) -> Option<Response> {
    let r = match (rest, &parts.method) {
        ("export", &Method::GET) => export(state, caller, parts.uri.query()).await,
        ("import", &Method::POST) => import(state, caller, parts.uri.query(), body).await,
        ("export" | "import", _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "GET __ds/export, POST __ds/import",
        )),
        _ => return None,
    };
    Some(r.unwrap_or_else(IntoResponse::into_response))
}

fn param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())
}

/// Export bytes handed to the response body as they are written.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

async fn export(state: &Arc<AppState>, caller: &Caller, query: Option<&str>) -> Result<Response, ApiError> {
    let prefix = param(query, "prefix").unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let storage = state.storage.clone();
    let caller = caller.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(256 << 10),
        };
        match crate::cli::export_where(
            &storage,
            &prefix,
            |name| caller.may(Op::Read, name),
            |sub| crate::subs::sub_within(&caller, sub),
            &mut w,
        ) {
            Ok(done) => tracing::info!(streams = done.streams, bytes = done.bytes, "export served"),
            Err(e) => {
                // The body ends early, without its summary line: an importer refuses it.
                tracing::warn!(error = %e, "export failed part way");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Refuses (403) an import plan that reaches outside `caller`'s scopes: every stream it would
/// create (and delete, replacing), every fork's source (read), every subscription it brings
/// (links included) and every existing subscription of the same id it would replace.
fn import_allowed(caller: &Caller, plan: &crate::cli::Plan, on_conflict: Conflict, existing: &[Sub]) -> Result<(), ApiError> {
    for s in &plan.streams {
        caller.require(Op::Create, &s.name)?;
        if on_conflict == Conflict::Replace {
            caller.require(Op::Delete, &s.name)?;
        }
        if let Some((source, _)) = &s.fork {
            caller.require(Op::Read, source)?;
        }
    }
    for s in &plan.subscriptions {
        let replaced = existing.iter().find(|e| e.id == s.id);
        if !crate::subs::sub_within(caller, s) || replaced.is_some_and(|e| !crate::subs::sub_within(caller, e)) {
            return Err(crate::auth::forbidden(Op::Admin));
        }
    }
    Ok(())
}

/// The running subscription service, for an import.
struct LiveSink {
    subs: Arc<Subscriptions>,
    rt: tokio::runtime::Handle,
}

impl LiveSink {
    fn record(&self, rec: Record) -> Result<(), TransferError> {
        let mut rec = Some(rec);
        self.rt
            .block_on(self.subs.mutate(|_| Ok::<_, ()>((rec.take(), ()))))
            .map_err(|r| match r {
                crate::subs::Refusal::Engine(e) => TransferError::Engine(e),
                crate::subs::Refusal::Refused(()) => TransferError::Incomplete("subscription refused".into()),
            })
    }
}

impl SubscriptionSink for LiveSink {
    fn current(&self) -> Result<Vec<Sub>, TransferError> {
        Ok(self.subs.inner.lock().subs.values().cloned().collect())
    }
    fn put(&self, sub: &Sub) -> Result<(), TransferError> {
        self.record(Record::Put(Box::new(sub.clone())))
    }
    fn delete(&self, id: &str) -> Result<(), TransferError> {
        self.record(Record::Delete(id.to_string()))
    }
}

/// Why an import did not happen: the transfer's own error, or the caller's scope.
enum ImportFailure {
    Transfer(TransferError),
    Refused(ApiError),
}

impl From<TransferError> for ImportFailure {
    fn from(e: TransferError) -> Self {
        ImportFailure::Transfer(e)
    }
}

impl From<std::io::Error> for ImportFailure {
    fn from(e: std::io::Error) -> Self {
        ImportFailure::Transfer(e.into())
    }
}

impl From<ApiError> for ImportFailure {
    fn from(e: ApiError) -> Self {
        ImportFailure::Refused(e)
    }
}

fn transfer_error(e: TransferError) -> ApiError {
    match e {
        TransferError::Engine(e) => e.into(),
        TransferError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string()),
        TransferError::Format { .. } | TransferError::Incomplete(_) => ApiError::bad_request(e.to_string()),
        TransferError::RolledBack { ref cause, .. } => {
            let status = match cause.as_ref() {
                TransferError::Engine(inner) => ApiError::from(inner.clone()).status,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::new(status, "Import Failed", e.to_string())
        }
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Import Failed", other.to_string()),
    }
}

async fn import(state: &Arc<AppState>, caller: &Caller, query: Option<&str>, body: Body) -> Result<Response, ApiError> {
    let on_conflict = match param(query, "on_conflict").as_deref().unwrap_or("fail") {
        "fail" => Conflict::Fail,
        "skip" => Conflict::Skip,
        "replace" => Conflict::Replace,
        other => {
            return Err(ApiError::bad_request(format!(
                "on_conflict must be fail, skip or replace, not {other:?}"
            )))
        }
    };
    // The export is read twice (checked whole, then written): kept in a scratch file.
    let scratch = std::env::temp_dir();
    let path = scratch.join(format!("ds-import-{}-{:016x}.jsonl", std::process::id(), rand::random::<u64>()));
    let spooled = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut data = body.into_data_stream();
        while let Some(chunk) = data.next().await {
            f.write_all(&chunk.map_err(std::io::Error::other)?).await?;
        }
        f.flush().await
    }
    .await;
    if let Err(e) = spooled {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::bad_request(format!("could not receive the export: {e}")));
    }
    let storage = state.storage.clone();
    let sink = state.subs.clone().map(|subs| LiveSink {
        subs,
        rt: tokio::runtime::Handle::current(),
    });
    let file = path.clone();
    let caller = caller.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let plan = crate::cli::check(&mut std::io::BufReader::new(std::fs::File::open(&file)?))?;
        // The subscriptions this import would replace (a token must be allowed to manage them).
        let existing: Vec<Sub> = match (&caller, &sink) {
            (Caller::Token(_), Some(sink)) => {
                let inner = sink.subs.inner.lock();
                plan.subscriptions.iter().filter_map(|s| inner.subs.get(&s.id).cloned()).collect()
            }
            _ => Vec::new(),
        };
        import_allowed(&caller, &plan, on_conflict, &existing)?;
        let Some(sink) = sink.as_ref() else {
            if !plan.subscriptions.is_empty() {
                return Err(ImportFailure::Transfer(TransferError::Engine(
                    durable_streams_core::abi::EngineError::new(
                        durable_streams_core::abi::ErrorCode::UNAVAILABLE,
                        "the export holds subscriptions and this server's subscription service is not available",
                    ),
                )));
            }
            let offline = crate::cli::LogSink(&storage);
            return Ok(crate::cli::import(&storage, &plan, &file, on_conflict, &scratch, &offline).map(|r| (r, plan))?);
        };
        Ok(crate::cli::import(&storage, &plan, &file, on_conflict, &scratch, sink).map(|r| (r, plan))?)
    })
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    let (report, plan) = outcome
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Import Failed", e.to_string()))?
        .map_err(|f| match f {
            ImportFailure::Transfer(e) => transfer_error(e),
            ImportFailure::Refused(e) => e,
        })?;
    // Readers of a replaced stream see what replaced it.
    for s in &plan.streams {
        state.live.wake(&s.name);
    }
    let v = serde_json::json!({
        "imported": report.imported, "skipped": report.skipped, "replaced": report.replaced,
        "subscriptions": report.subscriptions, "without_writer_state": report.without_writer_state,
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response())
}
