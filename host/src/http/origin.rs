//! The public origin of a request (scheme and authority), for absolute URLs such as `Location`.
//! Proxy headers (`Forwarded`, `X-Forwarded-Proto`, `X-Forwarded-Host`) are honoured only when
//! `http.trust_proxy_headers` says a trusted proxy sets them; never anything else here.

use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap};

/// Where the request was addressed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub authority: String,
}

/// How to find the origin: whether the listener speaks TLS and whether proxy headers are trusted.
#[derive(Clone, Copy, Debug)]
pub struct OriginRules {
    pub tls: bool,
    pub trust_proxy_headers: bool,
}

fn valid_scheme(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    matches!(s.as_str(), "http" | "https").then_some(s)
}

fn valid_authority(s: &str) -> Option<String> {
    let s = s.trim().trim_matches('"');
    s.parse::<Authority>().ok().filter(|a| !a.host().is_empty()).map(|a| a.to_string())
}

/// The first element of an RFC 7239 `Forwarded` header: (proto, host).
fn forwarded(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(v) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) else {
        return (None, None);
    };
    let first = v.split(',').next().unwrap_or("");
    let (mut proto, mut host) = (None, None);
    for pair in first.split(';') {
        let Some((k, val)) = pair.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = valid_scheme(val.trim().trim_matches('"')),
            "host" => host = valid_authority(val),
            _ => {}
        }
    }
    (proto, host)
}

fn first_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next()?.trim().to_string())
}

/// The request's origin: proxy headers (if trusted), then the URI's own scheme and authority
/// (HTTP/2's `:scheme` / `:authority`), then the `Host` header and the listener's scheme.
pub fn of(parts: &Parts, rules: OriginRules) -> Option<Origin> {
    let (mut scheme, mut authority) = (None, None);
    if rules.trust_proxy_headers {
        (scheme, authority) = forwarded(&parts.headers);
        if scheme.is_none() {
            scheme = first_value(&parts.headers, "x-forwarded-proto").and_then(|s| valid_scheme(&s));
        }
        if authority.is_none() {
            authority = first_value(&parts.headers, "x-forwarded-host").and_then(|s| valid_authority(&s));
        }
    }
    let scheme = scheme
        .or_else(|| parts.uri.scheme_str().and_then(valid_scheme))
        .unwrap_or_else(|| if rules.tls { "https" } else { "http" }.to_string());
    let authority = authority.or_else(|| parts.uri.authority().map(|a| a.to_string())).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(valid_authority)
    })?;
    Some(Origin { scheme, authority })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    const PLAIN: OriginRules = OriginRules {
        tls: false,
        trust_proxy_headers: false,
    };

    #[test]
    fn host_header_and_listener_scheme() {
        let p = parts("/v1/stream/a", &[("host", "example.com:8080")]);
        assert_eq!(of(&p, PLAIN).unwrap().authority, "example.com:8080");
        assert_eq!(of(&p, PLAIN).unwrap().scheme, "http");
        let tls = OriginRules { tls: true, ..PLAIN };
        assert_eq!(of(&p, tls).unwrap().scheme, "https");
    }

    #[test]
    fn h2_authority_wins_over_missing_host() {
        let p = parts("https://h2.example:9443/v1/stream/a", &[]);
        let o = of(&p, PLAIN).unwrap();
        assert_eq!((o.scheme.as_str(), o.authority.as_str()), ("https", "h2.example:9443"));
    }

    #[test]
    fn proxy_headers_only_when_trusted() {
        let hs = [
            ("host", "10.0.0.5:4437"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "streams.example.com, other"),
        ];
        let p = parts("/v1/stream/a", &hs);
        assert_eq!(of(&p, PLAIN).unwrap().authority, "10.0.0.5:4437");
        let trusted = OriginRules {
            trust_proxy_headers: true,
            ..PLAIN
        };
        let o = of(&p, trusted).unwrap();
        assert_eq!((o.scheme.as_str(), o.authority.as_str()), ("https", "streams.example.com"));
        let p = parts(
            "/v1/stream/a",
            &[
                ("host", "x"),
                ("forwarded", "for=1.2.3.4;proto=https;host=\"fw.example\", for=5.6.7.8"),
            ],
        );
        let o = of(&p, trusted).unwrap();
        assert_eq!((o.scheme.as_str(), o.authority.as_str()), ("https", "fw.example"));
        // Garbage in a trusted header falls back rather than producing a broken URL.
        let p = parts(
            "/v1/stream/a",
            &[("host", "h:1"), ("x-forwarded-proto", "gopher"), ("x-forwarded-host", "a b")],
        );
        let o = of(&p, trusted).unwrap();
        assert_eq!((o.scheme.as_str(), o.authority.as_str()), ("http", "h:1"));
    }
}
