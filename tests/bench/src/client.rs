//! The HTTP client: a hyper-util keep-alive pool plus the protocol calls (create, append, read,
//! delete, open a live response) and the catch-up read loop every verification uses.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// An error carrying a message.
pub fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into().into())
}

/// Idle pooled connections are not reused after this long: servers close idle keep-alive
/// connections (this one after its 10 s header-read timeout), and reusing one that the server is
/// closing fails the request.
const POOL_IDLE: Duration = Duration::from_secs(5);

/// How long one ordinary request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A complete response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub fn flag(h: &HeaderMap, name: &str) -> bool {
    header(h, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

impl Reply {
    pub fn next_offset(&self) -> Option<&str> {
        header(&self.headers, "stream-next-offset")
    }
    pub fn up_to_date(&self) -> bool {
        flag(&self.headers, "stream-up-to-date")
    }
    pub fn cursor(&self) -> Option<&str> {
        header(&self.headers, "stream-cursor")
    }
}

/// Percent-encodes a query value (offsets and cursors are opaque tokens).
pub fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A pooled keep-alive HTTP/1.1 client bound to one server's stream base URL.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpConnector, Full<Bytes>>,
    base: String,
    /// `Authorization` sent with every request (`--token`), for a server in `token` mode.
    auth: Option<http::HeaderValue>,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(10)));
        let pool = Pool::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(POOL_IDLE)
            .build(conn);
        Client {
            pool,
            base: base.trim_end_matches('/').to_string(),
            auth: token.map(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).expect("a token is header text")),
        }
    }

    fn authorize(&self, req: &mut Request<Full<Bytes>>) {
        if let Some(v) = &self.auth {
            req.headers_mut().insert(http::header::AUTHORIZATION, v.clone());
        }
    }

    /// The URL of a stream (names are plain ASCII without reserved characters).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{}", self.base, name)
    }

    /// Sends a request and returns the response head with its streaming body.
    pub async fn open(&self, mut req: Request<Full<Bytes>>) -> Res<Response<Incoming>> {
        self.authorize(&mut req);
        Ok(self.pool.request(req).await?)
    }

    /// Sends a request and collects the whole body.
    pub async fn call(&self, mut req: Request<Full<Bytes>>) -> Res<Reply> {
        self.authorize(&mut req);
        let what = format!("{} {}", req.method(), req.uri());
        let fut = async {
            let resp = self.pool.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r.map_err(|e| format!("{what}: {e}").into()),
            Err(_) => fail(format!("{what}: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }

    pub async fn get(&self, url: &str) -> Res<Reply> {
        let req = Request::get(url).body(Full::new(Bytes::new()))?;
        self.call(req).await
    }

    /// PUT: creates a stream with the content type; 201 (or 200 if it existed) is success.
    pub async fn create(&self, name: &str, content_type: &str) -> Res<StatusCode> {
        let req = Request::put(self.url(name))
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::new()))?;
        let r = self.call(req).await?;
        if r.status != StatusCode::CREATED && r.status != StatusCode::OK {
            return fail(format!(
                "PUT {name}: unexpected status {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        Ok(r.status)
    }

    /// POST one append; `producer` is (id, epoch, seq) for idempotent appends.
    pub async fn append(&self, name: &str, content_type: &str, body: Bytes, producer: Option<(&str, u64, u64)>) -> Res<Reply> {
        let mut b = Request::post(self.url(name)).header(CONTENT_TYPE, content_type);
        if let Some((id, epoch, seq)) = producer {
            b = b
                .header("producer-id", id)
                .header("producer-epoch", epoch)
                .header("producer-seq", seq);
        }
        self.call(b.body(Full::new(body))?).await
    }

    /// HEAD of a stream (status and headers; no body).
    pub async fn head(&self, name: &str) -> Res<Reply> {
        let req = Request::head(self.url(name)).body(Full::new(Bytes::new()))?;
        self.call(req).await
    }

    pub async fn delete(&self, name: &str) -> Res<StatusCode> {
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(self.url(name))
            .body(Full::new(Bytes::new()))?;
        Ok(self.call(req).await?.status)
    }

    /// Catch-up reads from `-1`, following `Stream-Next-Offset` until `Stream-Up-To-Date: true`,
    /// then (with `confirm`) one more read that must come back empty and up to date. Each
    /// non-empty body goes to `on_body`. Returns the number of GETs made.
    pub async fn read_all(&self, name: &str, confirm: bool, mut on_body: impl FnMut(&Bytes) -> Res<()>) -> Res<u64> {
        let url = self.url(name);
        let mut offset = "-1".to_string();
        let mut gets = 0u64;
        let mut confirming = false;
        loop {
            let r = self.get(&format!("{url}?offset={}", enc(&offset))).await?;
            gets += 1;
            if r.status != StatusCode::OK {
                return fail(format!("GET {name} offset={offset}: unexpected status {}", r.status));
            }
            let next = r
                .next_offset()
                .ok_or_else(|| format!("GET {name}: no Stream-Next-Offset"))?
                .to_string();
            if confirming {
                if !r.body.is_empty() && !is_empty_json(&r.body) || !r.up_to_date() || next != offset {
                    return fail(format!("GET {name} at its tail {offset}: expected an empty up-to-date answer"));
                }
                return Ok(gets);
            }
            if !r.body.is_empty() {
                on_body(&r.body)?;
            }
            if r.up_to_date() {
                if !confirm {
                    return Ok(gets);
                }
                confirming = true;
            } else if next == offset {
                return fail(format!("GET {name}: offset {offset} did not advance and not up to date"));
            }
            offset = next;
        }
    }
}

/// An empty JSON array (what a JSON stream answers at its tail).
pub fn is_empty_json(body: &[u8]) -> bool {
    body.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"[]".iter())
}
