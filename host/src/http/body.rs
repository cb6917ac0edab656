//! Request bodies read under a byte limit, and response bodies assembled from shared chunks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::error::ApiError;

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Payload Too Large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// Reads the whole body, refusing it up front by its announced length (`Content-Length`, as
/// hyper read it: no header looked up again) and while streaming, so memory stays bounded by
/// `limit`.
pub async fn read_limited(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    if http_body::Body::size_hint(&body).lower() > limit {
        return Err(too_large(limit));
    }
    match axum::body::to_bytes(body, limit as usize).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = src {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large(limit));
                }
                src = s.source();
            }
            Err(ApiError::bad_request(format!("could not read the request body: {e}")))
        }
    }
}

/// A response body made of shared chunks with an exact length (so `Content-Length` is set).
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl ChunkBody {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkBody { chunks, remaining }
    }

    pub fn into_body(self) -> Body {
        Body::new(self)
    }
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.remaining -= c.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
