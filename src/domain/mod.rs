//! The dispatcher's domain: webhooks with typed settings, the delivery vocabulary and its
//! transitions. Plain types at the bottom of the crate: nothing here imports another module of
//! the crate but the pure `routing` (a webhook carries its compiled filter); storage (`db`) and the HTTP layer (`api`) convert to and from them at their edges.

pub mod audit;
mod delivery;
pub mod ops;
mod status;
mod webhook;

pub use delivery::{Attempt, DeliveryUpdate};
pub use status::{DeliveryStatus, UnknownStatus};
pub use webhook::BatchSettings;
pub use webhook::{
    BreakerSettings, PreviousSecret, RateLimit, RetryConfig, Webhook, DEFAULT_TIMEOUT_MS,
};

use chrono::{DateTime, NaiveDateTime, Utc};

/// Old secrets kept signing during rotation graces.
pub const MAX_PREVIOUS_SECRETS: usize = 10;
/// Stored response bodies are cut to this many characters.
pub const RESPONSE_BODY_CHARS: usize = 1000;

/// True for a plain `http` URL (`BEEMA_REQUIRE_HTTPS` refuses those on enabled webhooks).
pub fn is_plain_http(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("http:"))
}

/// UTC time from a stored timestamp (timestamps are stored without zone, always UTC).
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// Cuts a response body to [`RESPONSE_BODY_CHARS`] characters, without NUL characters (a receiver
/// may send any bytes; PostgreSQL text cannot hold NUL).
pub fn truncate_body(body: &str) -> String {
    body.chars()
        .filter(|c| *c != '\0')
        .take(RESPONSE_BODY_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters() {
        let s = "é".repeat(1500);
        assert_eq!(truncate_body(&s).chars().count(), 1000);
        assert_eq!(truncate_body("a\0b"), "ab");
    }
}
