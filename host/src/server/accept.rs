//! The accept loop: TCP (or rustls) connections served by hyper-util's HTTP/1.1 + HTTP/2
//! builder, one task per connection, and their shutdown: graceful (a connection finishes the
//! request in hand, then closes) and, at the deadline, cut. Owns no routes and no drain policy
//! (`server::serve` decides when each step comes).
//!
//! It does what axum-server's `serve` did, but a connection learns of a shutdown from a flag it
//! reads when polled and a waker it registers once, where axum-server polled two `Notify`
//! futures at every wake-up of every connection, each poll under a lock shared by all
//! connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use super::conn::MakeConn;

/// `Shared::phase`: 0 while running, then these.
const GRACEFUL: u8 = 1;
const CUT: u8 = 2;

/// The open connections, and the switch that shuts them down.
#[derive(Clone, Default)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    open: AtomicUsize,
    /// Each open connection's waker, to wake it when the phase changes (a slot per connection).
    wakers: Mutex<slab::Slab<Option<Waker>>>,
    /// Rung when the phase changes and when the last connection closes.
    changed: Notify,
}

impl Connections {
    /// Connections open now.
    pub fn count(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stops accepting, and asks every connection to close once its request in hand is answered.
    pub fn graceful_shutdown(&self) {
        self.set_phase(GRACEFUL);
    }

    /// Closes every connection now.
    pub fn cut(&self) {
        self.set_phase(CUT);
    }

    fn set_phase(&self, phase: u8) {
        self.shared.phase.fetch_max(phase, Ordering::SeqCst);
        // Taken after the phase is set: a connection registering after this reads the new phase.
        let wakers: Vec<Waker> = self.shared.wakers.lock().iter().filter_map(|(_, w)| w.clone()).collect();
        wakers.into_iter().for_each(Waker::wake);
        self.shared.changed.notify_waiters();
    }

    fn phase(&self) -> u8 {
        self.shared.phase.load(Ordering::SeqCst)
    }

    /// Completes once the phase is at least `phase`.
    async fn reached(&self, phase: u8) {
        loop {
            let changed = self.shared.changed.notified();
            if self.phase() >= phase {
                return;
            }
            changed.await;
        }
    }

    /// Completes once no connection is open.
    async fn all_closed(&self) {
        loop {
            let changed = self.shared.changed.notified();
            if self.count() == 0 {
                return;
            }
            changed.await;
        }
    }

    fn enter(&self) -> Open {
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        let slot = self.shared.wakers.lock().insert(None);
        Open {
            conns: self.clone(),
            slot,
            waker: None,
        }
    }
}

/// One open connection's place among [`Connections`].
struct Open {
    conns: Connections,
    slot: usize,
    /// The waker registered in the slot (a task's waker rarely changes: registered once).
    waker: Option<Waker>,
}

impl Open {
    /// The phase, with `cx`'s waker registered to hear of the next change.
    fn watch(&mut self, cx: &Context<'_>) -> u8 {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            self.conns.shared.wakers.lock()[self.slot] = Some(w.clone());
            self.waker = Some(w);
        }
        self.conns.phase()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.conns.shared.wakers.lock().remove(self.slot);
        if self.conns.shared.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.conns.shared.changed.notify_waiters();
        }
    }
}

/// Accepts on `listener` until [`Connections::graceful_shutdown`], then waits for the open
/// connections to close (or be cut).
pub async fn serve(
    listener: std::net::TcpListener,
    make: MakeConn,
    tls: Option<RustlsConfig>,
    builder: Builder<TokioExecutor>,
    conns: Connections,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let acceptor = tls.map(RustlsAcceptor::new);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = conns.reached(GRACEFUL) => break,
            accepted = accept(&listener) => accepted,
        };
        let service = make.conn(peer);
        let open = conns.enter();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let _ = tcp.set_nodelay(true);
                    serve_connection(&builder, tcp, service, open).await;
                }
                Some(acceptor) => {
                    // A handshake is cut with the rest (it has its own timeout too).
                    let all = open.conns.clone();
                    tokio::select! {
                        biased;
                        _ = all.reached(CUT) => {}
                        done = acceptor.accept(tcp, service) => {
                            if let Ok((stream, service)) = done {
                                serve_connection(&builder, stream, service, open).await;
                            }
                        }
                    }
                }
            }
        });
    }
    // Refuse new connections at once rather than leave them waiting in the backlog.
    drop(listener);
    conns.all_closed().await;
    Ok(())
}

/// Serves one connection until it ends, or closes it as the phase says.
async fn serve_connection<I>(builder: &Builder<TokioExecutor>, io: I, service: super::conn::Conn, mut open: Open)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let mut told = false;
    std::future::poll_fn(|cx| {
        match open.watch(cx) {
            CUT => return Poll::Ready(()),
            GRACEFUL if !told => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
            _ => {}
        }
        conn.as_mut().poll(cx).map(|_| ())
    })
    .await
}

/// The next connection; on an error (out of file descriptors, say) a short pause and again.
async fn accept(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying in 50 ms");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
