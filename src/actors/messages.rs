//! Messages between the router, the webhook actors and the recorder.

use std::sync::Arc;

use actix::Message;
use chrono::{DateTime, Utc};

use crate::db::models::DeliveryRow;
use crate::domain::{utc, Attempt, DeliveryStatus, DeliveryUpdate, Webhook};

/// A delivery a webhook actor owes an attempt.
#[derive(Debug, Clone)]
pub struct Job {
    /// The delivery (same id on every attempt).
    pub delivery_id: String,
    /// Its event.
    pub event_id: String,
    /// Its event type.
    pub event_type: String,
    /// The exact body.
    pub payload: Arc<str>,
    /// Attempts already made.
    pub attempts_made: u32,
    /// Not before this time (a waiting retry).
    pub due: Option<DateTime<Utc>>,
    /// `payload` is already the transformed body sent by an earlier attempt: retries send the
    /// same bytes.
    pub transformed: bool,
}

impl Job {
    /// The job of an open delivery row (new, re-opened or paged in) with its event's payload;
    /// a `retrying` delivery waits for its `next_attempt_at`.
    pub fn from_row(row: &DeliveryRow, payload: Arc<str>) -> Self {
        let due = match row.status {
            DeliveryStatus::Retrying => row.next_attempt_at.map(utc),
            _ => None,
        };
        Self {
            delivery_id: row.delivery_id.clone(),
            event_id: row.event_id.clone(),
            event_type: row.event_type.clone(),
            payload,
            attempts_made: u32::try_from(row.attempt_number).unwrap_or(0),
            due,
            transformed: false,
        }
    }
}

/// New deliveries for webhooks, just committed by the intake (or re-opened by the API).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch {
    /// (webhook id, job) pairs in acceptance order.
    pub jobs: Vec<(i64, Job)>,
    /// True for deliveries that may sit below the actor's cursor (a retry of an old delivery).
    pub force: bool,
}

/// Jobs for one webhook actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    /// In acceptance order.
    pub jobs: Vec<Job>,
    /// Keep in memory even beyond the window (see [`Dispatch::force`]).
    pub force: bool,
}

/// A webhook was created or changed; answers once the router's registry and actor reflect it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Upsert(pub Arc<Webhook>);

/// A webhook was deleted; its actor stops sending before this answers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove(pub i64);

/// The actor's new settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Configure(pub Arc<Webhook>);

/// Stop for good (webhook deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// A receiver answered 410: the router disables the webhook in the database and registry.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisabledByReceiver {
    /// The webhook.
    pub webhook_id: i64,
    /// Why, for `disabled_reason`.
    pub reason: String,
}

/// Stop starting attempts (shutdown); answers the number still in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain;

/// One attempt's outcome for the recorder.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The attempt (None when only the delivery changes, e.g. a cancellation).
    pub attempt: Option<Attempt>,
    /// The delivery.
    pub delivery_id: String,
    /// Its new state.
    pub update: DeliveryUpdate,
}

impl Outcome {
    /// A delivery closed without an attempt (see [`DeliveryUpdate::closed`]).
    pub fn closed(
        delivery_id: String,
        status: DeliveryStatus,
        reason: &str,
        attempt_number: i64,
    ) -> Self {
        Self {
            attempt: None,
            delivery_id,
            update: DeliveryUpdate::closed(status, reason, attempt_number, Utc::now()),
        }
    }
}

/// Outcomes to write (batched by the recorder). Sent only by
/// [`super::recorder::RecorderHandle::record`], which counts it into the recorder's backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub Outcome);

/// Write everything handed so far; answers when it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;
