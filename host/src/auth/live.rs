//! Ends a live read (long-poll, SSE) soon after its credential stops being valid: revoked,
//! expired, or resting on a JWT key that was removed. Asks [`Auth::still_valid`] at most every
//! half second; owns no protocol behaviour and knows nothing of HTTP.

use std::time::Duration;

use tokio::time::Instant;

use super::{Auth, Caller};
use crate::auth::tokens::Grant;

/// How often a live read's credential is looked at again.
const EVERY: Duration = Duration::from_millis(500);

/// A live read's credential, looked at again while the read lasts.
pub struct CredentialWatch {
    /// `None`: open access, which never lapses.
    grant: Option<Grant>,
    next: Instant,
}

impl CredentialWatch {
    pub fn new(caller: &Caller) -> CredentialWatch {
        CredentialWatch {
            grant: match caller {
                Caller::Anyone => None,
                Caller::Token(g) => Some(g.clone()),
            },
            next: Instant::now() + EVERY,
        }
    }

    /// `false` once the credential has lapsed; looks at most every [`EVERY`] (cheap between).
    pub fn valid(&mut self, auth: &Auth) -> bool {
        let Some(g) = &self.grant else { return true };
        let now = Instant::now();
        if now < self.next {
            return true;
        }
        self.next = now + EVERY;
        auth.still_valid(g)
    }

    /// Completes when the credential lapses (never, for open access). Safe to drop and call
    /// again: the schedule of looks is kept in `self`, not in the future.
    pub async fn lapsed(&mut self, auth: &Auth) {
        if self.grant.is_none() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep_until(self.next).await;
            if !self.valid(auth) {
                return;
            }
        }
    }
}
