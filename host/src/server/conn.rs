//! One connection's service in front of the edge: hyper's request body made axum's, the peer's
//! address attached only when the quotas count clients by it, and an answer marked by the
//! fault-injection endpoint turned into a dropped connection. Owns no protocol behaviour.
//!
//! It replaces axum's `into_make_service_with_connect_info` and two `tower` adapters: the same
//! behaviour with no extension inserted into every request (the address is needed only by the
//! per-client quotas) and one future wrapper instead of three.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use futures_util::FutureExt;
use hyper::body::Incoming;

use crate::http::Service as Edge;

/// Makes one [`Conn`] per accepted connection.
#[derive(Clone)]
pub struct MakeConn {
    edge: Edge,
    /// Whether handlers need the peer's address (`quotas` set).
    attach_peer: bool,
}

impl MakeConn {
    pub fn new(edge: Edge, attach_peer: bool) -> MakeConn {
        MakeConn { edge, attach_peer }
    }
}

impl MakeConn {
    /// The service of a connection from `peer`.
    pub fn conn(&self, peer: SocketAddr) -> Conn {
        Conn {
            edge: self.edge.clone(),
            peer: self.attach_peer.then_some(peer),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Conn {
    edge: Edge,
    peer: Option<SocketAddr>,
}

type Answered = fn(Result<Response, Infallible>) -> Result<Response, DroppedOnPurpose>;

impl tower::Service<Request<Incoming>> for Conn {
    type Response = Response;
    type Error = DroppedOnPurpose;
    type Future = futures_util::future::Map<<Edge as tower::Service<Request<Body>>>::Future, Answered>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DroppedOnPurpose>> {
        match tower::Service::<Request<Body>>::poll_ready(&mut self.edge, cx) {
            Poll::Ready(Err(never)) => match never {},
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        tower::Service::call(&mut self.edge, req).map(drop_marked as Answered)
    }
}

/// An answer marked [`DropConnection`](crate::http::faults::DropConnection) (the
/// fault-injection endpoint's `dropConnection`) becomes a service error: hyper then closes the
/// connection without writing a byte.
fn drop_marked(r: Result<Response, Infallible>) -> Result<Response, DroppedOnPurpose> {
    match r {
        Ok(resp) if resp.extensions().get::<crate::http::faults::DropConnection>().is_some() => Err(DroppedOnPurpose),
        Ok(resp) => Ok(resp),
        Err(never) => match never {},
    }
}

/// See [`drop_marked`].
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub struct DroppedOnPurpose;
