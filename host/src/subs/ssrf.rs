//! Webhook URL validation (SSRF): https only, unless the development setting allows plain http
//! to localhost / 127.0.0.x; private, loopback, link-local and metadata targets refused, also
//! after DNS resolution (checked again before every delivery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

fn is_dev_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.octets()[..3] == [127, 0, 0])
}

/// Whether an address is off limits (unless the loopback exception covers it).
pub fn forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let loopback = v4.is_loopback();
            (loopback && !allow_loopback)
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4), allow_loopback);
            }
            let seg = v6.segments();
            (v6 == Ipv6Addr::LOCALHOST && !allow_loopback)
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Static checks on the URL; returns the host and port to resolve.
pub fn check_url(raw: &str, allow_loopback_http: bool) -> Result<(String, u16), Rejected> {
    let url = url::Url::parse(raw).map_err(|e| Rejected(format!("not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| Rejected("the URL has no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let dev = allow_loopback_http && is_dev_loopback_host(&host);
    match url.scheme() {
        "https" => {}
        "http" if dev => {}
        "http" => return Err(Rejected("webhook URLs must use https".into())),
        other => return Err(Rejected(format!("scheme '{other}' is not allowed"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Rejected("credentials in webhook URLs are not allowed".into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if forbidden(ip, dev) {
            return Err(Rejected(format!("{ip} is a private, loopback, link-local or reserved address")));
        }
    }
    if host == "localhost" && !dev {
        return Err(Rejected("localhost is not allowed".into()));
    }
    Ok((host, url.port_or_known_default().unwrap_or(443)))
}

/// Full check, including every address the name resolves to.
pub async fn check(raw: &str, allow_loopback_http: bool) -> Result<(), Rejected> {
    let (host, port) = check_url(raw, allow_loopback_http)?;
    let dev = allow_loopback_http && is_dev_loopback_host(&host);
    let addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Rejected(format!("cannot resolve {host}: {e}")))?;
    for a in addrs {
        if forbidden(a.ip(), dev) {
            return Err(Rejected(format!(
                "{host} resolves to {}, a private, loopback, link-local or reserved address",
                a.ip()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check_url("http://10.0.0.1/hook", false).is_err());
        assert!(check_url("https://10.0.0.1/hook", false).is_err());
        assert!(check_url("https://169.254.169.254/latest", false).is_err());
        assert!(check_url("https://[::1]/x", false).is_err());
        assert!(check_url("https://[fd00::1]/x", false).is_err());
        assert!(check_url("http://example.com/x", false).is_err());
        assert!(check_url("https://example.com/x", false).is_ok());
        assert!(check_url("http://localhost:8080/x", false).is_err());
        assert!(check_url("http://localhost:8080/x", true).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", true).is_ok());
        assert!(check_url("http://192.168.1.5/x", true).is_err());
        assert!(check_url("https://user:pw@example.com/x", false).is_err());
    }
}
