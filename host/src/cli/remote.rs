//! `export --url` / `import --url` / `list --url`: the same export format (and listing), taken from or given to a running
//! server over its admin routes (`{base}/__ds/export`, `{base}/__ds/import`), so backups need no
//! stop. Knows HTTP only as a client; the server side is `http::admin`.

use std::io::Write;
use std::path::Path;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::transfer::{Conflict, TransferError};

/// A running server to export from or import into.
pub struct RemoteTarget {
    /// Its scheme, host and port (the stream base path may follow).
    pub url: String,
    /// An access token (`--token` / `DS_TOKEN`) for a server in `auth.mode = "token"`; the
    /// routes need `admin` over every name.
    pub token: Option<String>,
}

impl RemoteTarget {
    fn authorized(&self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

fn client() -> Result<reqwest::blocking::Client, TransferError> {
    reqwest::blocking::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(None)
        .build()
        .map_err(|e| TransferError::Remote(format!("HTTP client: {e}")))
}

/// The problem+json `detail` of a refusal, or its body.
fn refusal(resp: reqwest::blocking::Response) -> TransferError {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or(text);
    TransferError::Remote(format!("the server answered {status}: {detail}"))
}

/// Sends `req` (`what`: its method and URL, for the error) and returns a successful answer; a
/// refusal is the server's problem+json `detail`.
fn send(req: reqwest::blocking::RequestBuilder, what: &str) -> Result<reqwest::blocking::Response, TransferError> {
    let resp = req.send().map_err(|e| TransferError::Remote(format!("{what}: {e}")))?;
    if !resp.status().is_success() {
        return Err(refusal(resp));
    }
    Ok(resp)
}

/// A JSON answer's body (`what`: what it is, for the error).
fn json_of(resp: reqwest::blocking::Response, what: &str) -> Result<serde_json::Value, TransferError> {
    let text = resp.text().map_err(|e| TransferError::Remote(format!("{what}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| TransferError::Remote(format!("{what}: {e}")))
}

/// The URL of a control route of `server`, whether `--url` gave the scheme, host and port only
/// or included the stream base path (`http://host:4437/v1/stream`): both are accepted.
fn route(server: &RemoteTarget, base: &str, route: &str) -> String {
    let url = server.url.trim_end_matches('/');
    let base = base.trim_end_matches('/');
    if !base.is_empty() && url.ends_with(base) {
        format!("{url}/__ds/{route}")
    } else {
        format!("{url}{base}/__ds/{route}")
    }
}

/// Prints the running server's streams under `prefix` as `list` does (through the listing
/// API, page by page; needs `admin` in token mode); returns how many.
pub fn remote_list(server: &RemoteTarget, base: &str, prefix: &str, out: &mut dyn Write) -> Result<usize, TransferError> {
    writeln!(out, "name\tcontent_type\ttail_offset\tclosed\tttl_secs\texpires_at")?;
    let c = client()?;
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let mut target = format!(
            "{}?limit=1000&prefix={}",
            route(server, base, "streams"),
            utf8_percent_encode(prefix, NON_ALPHANUMERIC)
        );
        if let Some(a) = &after {
            target.push_str(&format!("&start_after={}", utf8_percent_encode(a, NON_ALPHANUMERIC)));
        }
        let page = json_of(send(server.authorized(c.get(&target)), &format!("GET {target}"))?, "the listing")?;
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for s in page["streams"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                text(&s["name"]),
                text(&s["content_type"]),
                text(&s["tail_offset"]),
                text(&s["closed"]),
                text(&s["ttl_secs"]),
                text(&s["expires_at"])
            )?;
            n += 1;
        }
        match page["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(n),
        }
    }
}

/// Copies the export of the server (streams under `prefix`) to `out`; returns its size.
pub fn remote_export(server: &RemoteTarget, base: &str, prefix: &str, out: &mut dyn Write) -> Result<u64, TransferError> {
    let target = format!(
        "{}?prefix={}",
        route(server, base, "export"),
        utf8_percent_encode(prefix, NON_ALPHANUMERIC)
    );
    let mut resp = send(server.authorized(client()?.get(&target)), &format!("GET {target}"))?;
    let n = std::io::copy(&mut resp, out).map_err(|e| TransferError::Remote(format!("the export broke off: {e}")))?;
    out.flush()?;
    Ok(n)
}

/// Gives the export at `path` to the server; returns its report (JSON).
pub fn remote_import(server: &RemoteTarget, base: &str, path: &Path, on_conflict: Conflict) -> Result<serde_json::Value, TransferError> {
    let conflict = match on_conflict {
        Conflict::Fail => "fail",
        Conflict::Skip => "skip",
        Conflict::Replace => "replace",
    };
    let target = format!("{}?on_conflict={conflict}", route(server, base, "import"));
    let file = std::fs::File::open(path).map_err(|source| TransferError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let req = server
        .authorized(client()?.post(&target))
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::blocking::Body::new(file));
    json_of(send(req, &format!("POST {target}"))?, "the server's report")
}
