//! Serving: our accept loop (`accept`) over plain TCP or rustls (HTTP/2 by ALPN), a header read timeout, and a
//! graceful drain on SIGINT / SIGTERM: out of rotation first (`/readyz` 503 while still accepting
//! for `server.drain_delay_secs`), then live readers released, accepting stopped and open
//! requests given `server.shutdown_grace_secs`; requests cut at that deadline are logged.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::TokioTimer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::state::AppState;

mod accept;
mod conn;
pub mod inflight;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {path}: {reason}")]
pub struct TlsError {
    pub path: String,
    pub reason: String,
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `SIGHUP` (`systemctl reload`) re-reads what can change without a restart: the token and
/// JWT keys files (also followed on their own, within a second). Everything else in the
/// configuration needs a restart; the log says so. Without this, a hangup would end the process.
pub fn spawn_reload_on_hangup(state: Arc<AppState>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("no SIGHUP handler: a reload would stop the server");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                state.auth.reload();
                tracing::info!("reload (SIGHUP): token and JWT keys files read again; other settings take a restart");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            }
        });
    }
}

/// A rustls configuration from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(cert: &Path, key: &Path) -> Result<RustlsConfig, TlsError> {
    let err = |p: &Path, r: String| TlsError {
        path: p.display().to_string(),
        reason: r,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(key, e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(cfg)))
}

/// Serves `state` on `listener` (TLS when `tls` is given) until `shutdown` completes, then
/// drains: readiness off, long-polls answered, SSE streams ended, connections given a grace period.
pub async fn serve(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let inflight = state.inflight.clone();
    let service = crate::http::service(state.clone());
    let conns = accept::Connections::default();
    let delay = Duration::from_secs(state.config.server.drain_delay_secs);
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    let header_timeout = Duration::from_secs(state.config.server.header_read_timeout_secs.max(1));
    {
        let conns = conns.clone();
        let state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            state.readiness.leave_rotation();
            if !delay.is_zero() {
                tracing::info!(
                    drain_delay_secs = delay.as_secs(),
                    "shutting down: /readyz answers 503, still accepting"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: stopped accepting, draining");
            state.readiness.start_draining();
            conns.graceful_shutdown();
            tokio::time::sleep(grace).await;
            inflight.deadline_reached(conns.count());
            // The cut comes a moment after the deadline, so that requests still open at the
            // deadline are known (and logged) as cut.
            tokio::time::sleep(Duration::from_millis(200)).await;
            conns.cut();
        });
    }
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // The peer address reaches handlers only when the per-client quotas count by it.
    let make = conn::MakeConn::new(service, state.auth.quotas.counts_clients());
    accept::serve(listener, make, tls, builder, conns).await
}

/// The placeholder server that answers while the engine opens.
pub struct Starting {
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Starting {
    /// Stops accepting and closes its connections, freeing the listener for the real server.
    pub async fn stop(self) {
        self.handle.shutdown();
        let _ = self.task.await;
    }
}

/// Serves `/healthz` (200) and everything else 503 (`/readyz` included) on `listener`.
pub fn serve_starting(listener: std::net::TcpListener, tls: Option<RustlsConfig>) -> std::io::Result<Starting> {
    use axum::response::IntoResponse;
    let not_ready = || async {
        crate::http::error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "the storage engine is starting",
        )
        .into_response()
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { r#"{"status":"starting"}"# }))
        .fallback(not_ready);
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let service = app.into_make_service();
    let task = match tls {
        Some(cfg) => tokio::spawn(axum_server::from_tcp_rustls(listener, cfg).handle(handle.clone()).serve(service)),
        None => tokio::spawn(axum_server::from_tcp(listener).handle(handle.clone()).serve(service)),
    };
    Ok(Starting { handle, task })
}
