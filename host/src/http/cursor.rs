//! `Stream-Cursor`: 20-second intervals since 2024-10-09T00:00:00Z, never going backwards.

use rand::Rng;

const EPOCH_SECS: u64 = 1_728_432_000;
const INTERVAL_SECS: u64 = 20;

/// The cursor to return, given the client's `cursor` parameter.
pub fn next_cursor(client: Option<&str>) -> String {
    next_cursor_value(client).to_string()
}

/// [`next_cursor`] as a number (an SSE control event writes it without making a string).
pub fn next_cursor_value(client: Option<&str>) -> u64 {
    let now = crate::clock::now_ms() / 1000;
    let current = now.saturating_sub(EPOCH_SECS) / INTERVAL_SECS;
    let client = client.and_then(|c| c.parse::<u64>().ok());
    match client {
        Some(c) if c >= current => {
            let jitter_secs = rand::thread_rng().gen_range(1..=3600u64);
            c + (jitter_secs / INTERVAL_SECS).max(1)
        }
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_greater_than_a_current_or_future_client_cursor() {
        let now: u64 = next_cursor(None).parse().unwrap();
        for c in [now, now + 5, now + 10_000] {
            let next: u64 = next_cursor(Some(&c.to_string())).parse().unwrap();
            assert!(next > c);
        }
        let old: u64 = next_cursor(Some("1")).parse().unwrap();
        assert_eq!(old, now);
    }
}
