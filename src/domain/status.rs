//! `DeliveryStatus`: where a delivery is in its life. Stored as lowercase text (the diesel mapping
//! lives in `db::status`), sent as lowercase JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state of a delivery. `pending` and `retrying` are open (an attempt is still owed); the
/// others are final until a manual retry reopens the delivery as `pending`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[serde(rename_all = "lowercase")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (or reopened by a manual retry).
    Pending,
    /// An attempt failed; the next one is scheduled at `next_attempt_at`.
    Retrying,
    /// The receiver answered 2xx.
    Success,
    /// Attempts are exhausted, the receiver answered 410, or there was nothing to send.
    Failed,
    /// Closed without an attempt because its webhook was deleted (or by an operator).
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in life order (listings and error messages show them in this order).
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Success,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];
    /// The open statuses: the dispatcher still owes an attempt.
    pub const OPEN: [DeliveryStatus; 2] = [DeliveryStatus::Pending, DeliveryStatus::Retrying];

    /// True while the dispatcher still owes an attempt.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Retrying)
    }

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// `"pending, retrying, success, failed, cancelled"`, for messages that list the choices.
    pub fn choices() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no delivery status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_for_every_status() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(
            "Pending".parse::<DeliveryStatus>(),
            Err(UnknownStatus("Pending".into()))
        );
        assert!("".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn json_is_the_lowercase_text() {
        for s in DeliveryStatus::ALL {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::Value::String(s.as_str().into()));
            assert_eq!(serde_json::from_value::<DeliveryStatus>(json).unwrap(), s);
        }
    }

    #[test]
    fn only_pending_and_retrying_are_open() {
        let open: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        assert_eq!(open, DeliveryStatus::OPEN);
        assert_eq!(
            DeliveryStatus::choices(),
            "pending, retrying, success, failed, cancelled"
        );
    }
}
