//! `export --url` / `import --url`: the same export format, taken from or given to a running
//! server over its admin routes (`{base}/__ds/export`, `{base}/__ds/import`), so backups need no
//! stop. Knows HTTP only as a client; the server side is `http::admin`.

use std::io::Write;
use std::path::Path;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::transfer::{Conflict, TransferError};

/// A running server to export from or import into.
pub struct RemoteTarget {
    /// Its scheme, host and port.
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

/// Copies the export of the server (streams under `prefix`) to `out`; returns its size.
pub fn remote_export(server: &RemoteTarget, base: &str, prefix: &str, out: &mut dyn Write) -> Result<u64, TransferError> {
    let target = format!(
        "{}{}/__ds/export?prefix={}",
        server.url.trim_end_matches('/'),
        base.trim_end_matches('/'),
        utf8_percent_encode(prefix, NON_ALPHANUMERIC)
    );
    let mut resp = server
        .authorized(client()?.get(&target))
        .send()
        .map_err(|e| TransferError::Remote(format!("GET {target}: {e}")))?;
    if !resp.status().is_success() {
        return Err(refusal(resp));
    }
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
    let target = format!(
        "{}{}/__ds/import?on_conflict={conflict}",
        server.url.trim_end_matches('/'),
        base.trim_end_matches('/')
    );
    let file = std::fs::File::open(path).map_err(|source| TransferError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let resp = server
        .authorized(client()?.post(&target))
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::blocking::Body::new(file))
        .send()
        .map_err(|e| TransferError::Remote(format!("POST {target}: {e}")))?;
    if !resp.status().is_success() {
        return Err(refusal(resp));
    }
    let text = resp
        .text()
        .map_err(|e| TransferError::Remote(format!("the server's report: {e}")))?;
    serde_json::from_str(&text).map_err(|e| TransferError::Remote(format!("the server's report: {e}")))
}
