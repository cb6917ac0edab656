//! `token issue | list | revoke`: the operator's side of the token file (`crate::auth::tokens`).
//! Prints; owns no format of its own.

use std::path::Path;

use crate::auth::tokens::{self, FileError};

/// A `--ttl` value: a number with `s`, `m`, `h` or `d`.
#[derive(Debug, thiserror::Error)]
#[error("--ttl '{0}' is not a duration (a number with s, m, h or d, e.g. 90s, 30m, 1h, 7d)")]
pub struct BadTtl(String);

/// Errors of the token commands.
#[derive(Debug, thiserror::Error)]
pub enum TokenCommandError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Ttl(#[from] BadTtl),
}

pub fn parse_ttl_ms(text: &str) -> Result<u64, BadTtl> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| BadTtl(text.into()))?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(BadTtl(text.into())),
    };
    n.checked_mul(mult).ok_or_else(|| BadTtl(text.into()))
}

fn when(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) => {
            let now = crate::clock::now_ms();
            if ms <= now {
                "expired".into()
            } else {
                format!("in {}s", (ms - now) / 1000)
            }
        }
    }
}

pub fn issue(path: &Path, scopes: &[String], ttl: Option<&str>, label: &str) -> Result<(), TokenCommandError> {
    let ttl_ms = ttl.map(parse_ttl_ms).transpose()?;
    let (token, record) = tokens::issue(
        path,
        &tokens::Issue {
            scopes,
            ttl_ms,
            label,
            issued_by: None,
            issued_by_jwt: None,
            bound: None,
        },
    )?;
    eprintln!(
        "issued token {} ({}), expires {}; stored in {} (hash only): keep the token now, it is not shown again",
        record.id,
        record.scopes.join(" "),
        when(record.expires_ms),
        path.display()
    );
    println!("{token}");
    Ok(())
}

pub fn list(path: &Path) -> Result<(), TokenCommandError> {
    println!("id\tscopes\texpires\trevoked\tlabel\tissued_by");
    for r in tokens::list(path)? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.scopes.join(" "),
            when(r.expires_ms),
            r.revoked,
            r.label,
            r.issuer()
        );
    }
    Ok(())
}

pub fn revoke(path: &Path, id: &str) -> Result<(), TokenCommandError> {
    tokens::revoke(path, id)?;
    eprintln!("revoked {id}; a running server refuses it within a second");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttl() {
        assert_eq!(super::parse_ttl_ms("90s").unwrap(), 90_000);
        assert_eq!(super::parse_ttl_ms("1h").unwrap(), 3_600_000);
        assert_eq!(super::parse_ttl_ms("7d").unwrap(), 7 * 86_400_000);
        assert!(super::parse_ttl_ms("1w").is_err());
        assert!(super::parse_ttl_ms("h").is_err());
    }
}
