//! What happens to a delivery: an attempt made, and the state it leaves the delivery in.
//! Every transition that closes a delivery without an attempt is built by [`DeliveryUpdate::closed`].

use chrono::{DateTime, Utc};

use super::DeliveryStatus;

/// One HTTP attempt of a delivery, as the recorder stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: String,
    /// Its webhook.
    pub webhook_id: i64,
    /// 1 for the first attempt.
    pub attempt_number: i64,
    /// The receiver's status code (None: no answer).
    pub status_code: Option<i64>,
    /// Why it failed, when it did.
    pub error_message: Option<String>,
    /// The receiver's body, cut to size.
    pub response_body: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// When it started.
    pub attempted_at: DateTime<Utc>,
    /// The batch the attempt carried it in (None outside batches).
    pub batch_id: Option<String>,
}

/// The state a delivery is left in (by an attempt, or closed without one). Every field is
/// written: `None` clears the column.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    /// The new status.
    pub status: DeliveryStatus,
    /// Status code of the last answer.
    pub status_code: Option<i64>,
    /// Body of the last answer.
    pub response_body: Option<String>,
    /// Why the last attempt failed, or why the delivery was closed.
    pub error_message: Option<String>,
    /// Attempts made so far.
    pub attempt_number: i64,
    /// When the next attempt is due (`retrying` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When this happened.
    pub updated_at: DateTime<Utc>,
    /// When it succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryUpdate {
    /// Closes a delivery without an attempt (`cancelled` when its webhook is gone, `failed` when
    /// there is nothing to send), keeping its attempt count.
    pub fn closed(
        status: DeliveryStatus,
        reason: &str,
        attempt_number: i64,
        now: DateTime<Utc>,
    ) -> Self {
        debug_assert!(!status.is_open(), "a closed delivery has a final status");
        Self {
            status,
            status_code: None,
            response_body: None,
            error_message: Some(reason.to_string()),
            attempt_number,
            next_attempt_at: None,
            updated_at: now,
            delivered_at: None,
        }
    }
}
