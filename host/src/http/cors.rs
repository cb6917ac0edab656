//! CORS from header values prepared once (`http.cors_origins`): preflights answered, and the
//! allow-origin, expose and vary headers added to every other answer, as tower-http's
//! `CorsLayer` did, without cloning a configuration per request. Knows no protocol operation.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::headers::EXPOSED;

/// The prepared CORS answer.
pub struct Cors {
    /// `*`: any origin; else the allowed origins, each exactly as a browser sends it.
    any: bool,
    origins: Vec<HeaderValue>,
    expose: HeaderValue,
}

const ANY: HeaderValue = HeaderValue::from_static("*");
const METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD,PUT,POST,DELETE,OPTIONS");
const MAX_AGE: HeaderValue = HeaderValue::from_static("86400");
/// Every answer may differ by these (caches must keep them apart).
const VARY: HeaderValue = HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers");
/// What an answer other than a preflight depends on, with a list of origins.
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("origin");

impl Cors {
    /// From `http.cors_origins`: "*" or a comma-separated list of origins.
    pub fn new(origins: &str) -> Cors {
        let any = origins.trim() == "*";
        let origins = if any {
            Vec::new()
        } else {
            origins.split(',').filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect()
        };
        let expose = HeaderValue::from_str(&EXPOSED.join(",")).expect("exposed header names are ASCII");
        Cors { any, origins, expose }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        if self.any {
            return Some(ANY);
        }
        let origin = origin?;
        self.origins.iter().any(|o| o == origin).then(|| origin.clone())
    }

    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`) answered here: 200 with the
    /// methods, the requested headers mirrored, a day's max-age; `None` for any other request.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::OK;
        let out = resp.headers_mut();
        if let Some(v) = self.allow(headers.get(header::ORIGIN)) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS);
        if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        out.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        out.append(header::VARY, VARY);
        Some(resp)
    }

    /// The CORS headers of an answer to a request from `origin` (none: not a browser's). With
    /// any origin allowed the answer is the same for every origin, so it carries no `Vary`
    /// (which would split a shared cache by origin for nothing); with a list it says `Vary:
    /// origin`, so a cache tells origins apart.
    ///
    /// An answer that no cache keeps (`cacheable` false: not GET or HEAD) to a request without
    /// `Origin` gets none: a browser sends `Origin` with every such request, so it is not a
    /// browser's, and no browser will read this answer from a cache later.
    pub fn decorate(&self, origin: Option<&HeaderValue>, cacheable: bool, out: &mut HeaderMap) {
        if origin.is_none() && !cacheable {
            return;
        }
        if let Some(v) = self.allow(origin) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, self.expose.clone());
        }
        if !self.any {
            out.append(header::VARY, VARY_ORIGIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn any_origin_and_a_list() {
        let any = Cors::new("*");
        let mut h = HeaderMap::new();
        any.decorate(None, true, &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .contains("stream-next-offset"));
        assert!(
            !h.contains_key(header::VARY),
            "the same answer for every origin: no Vary to split caches"
        );

        let list = Cors::new("https://a.example, https://b.example");
        let mut h = HeaderMap::new();
        list.decorate(Some(&origin("https://b.example")), false, &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://b.example");
        let mut h = HeaderMap::new();
        list.decorate(Some(&origin("https://evil.example")), true, &mut h);
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(h.contains_key(header::VARY), "a cache must tell origins apart");
    }

    #[test]
    fn an_uncached_answer_to_no_browser_gets_no_cors_headers() {
        for c in [Cors::new("*"), Cors::new("https://a.example")] {
            let mut h = HeaderMap::new();
            c.decorate(None, false, &mut h);
            assert!(h.is_empty(), "a POST without Origin: {h:?}");
            let mut h = HeaderMap::new();
            c.decorate(Some(&origin("https://a.example")), false, &mut h);
            assert_eq!(
                h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                if c.any { "*" } else { "https://a.example" }
            );
        }
    }

    #[test]
    fn preflights_mirror_the_requested_headers() {
        let c = Cors::new("*");
        let mut req = HeaderMap::new();
        assert!(
            c.preflight(&Method::OPTIONS, &req).is_none(),
            "an OPTIONS without a requested method is no preflight"
        );
        req.insert(header::ORIGIN, origin("https://a.example"));
        req.insert(header::ACCESS_CONTROL_REQUEST_METHOD, origin("POST"));
        req.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, origin("authorization, if-none-match"));
        let r = c.preflight(&Method::OPTIONS, &req).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS], "authorization, if-none-match");
        assert_eq!(r.headers()[header::ACCESS_CONTROL_MAX_AGE], "86400");
        assert!(c.preflight(&Method::GET, &req).is_none());
    }
}
