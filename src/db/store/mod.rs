//! Queries, written once for both backends (see [`crate::with_conn!`]); one file per table.

pub mod audit;
pub mod batch;
pub mod cluster;
pub mod deliveries;
pub mod event_types;
pub mod events;
pub mod keys;
pub mod recover;
pub mod replay;
pub mod sent;
pub mod stats;
pub mod webhooks;

/// Current UTC time as stored in the database (timestamps are UTC without a zone).
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
