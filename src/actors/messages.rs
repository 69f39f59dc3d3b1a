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
    /// Non-empty for a batch (README, Routing and payloads): `delivery_id` is the batch id,
    /// `payload` its body, and these are the deliveries it carries, in acceptance order.
    pub members: Vec<Job>,
    /// Re-opened by hand (a manual retry): batched only with others like it, and such a batch
    /// gets one attempt.
    pub manual: bool,
    /// `payload` is not the event's payload (a batch body or a transform's output): a retry
    /// needs it stored.
    pub custom_body: bool,
    /// Its body is in `sys_webhook_sent_bodies`.
    pub stored: bool,
}

impl Job {
    /// A new batch of `members` (plain jobs, in acceptance order) with a new id; its body is
    /// `{"type": "batch", "deliveries": [...]}`, each entry the member's payload with its
    /// `delivery_id` first.
    pub fn batch(members: Vec<Job>) -> Self {
        let mut body = String::from(r#"{"type":"batch","deliveries":["#);
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            push_entry(&mut body, m);
        }
        body.push_str("]}");
        Self {
            delivery_id: uuid::Uuid::new_v4().to_string(),
            event_id: String::new(),
            event_type: "batch".into(),
            payload: Arc::from(body),
            attempts_made: 0,
            due: None,
            transformed: false,
            manual: members.first().is_some_and(|m| m.manual),
            members,
            custom_body: true,
            stored: false,
        }
    }

    /// Bytes this job adds to a batch body.
    pub fn batch_entry_len(&self) -> usize {
        self.payload.len() + self.delivery_id.len() + 20
    }

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
            members: Vec::new(),
            manual: false,
            custom_body: false,
            stored: false,
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
    /// The body a `transform` produced on this send, with the id it went out under (the delivery,
    /// or its batch): kept in the same transaction, for the delivery log.
    pub transformed: Option<(String, Arc<str>)>,
    /// (webhook id, lease epoch) of the owner that made the attempt (PostgreSQL): written only
    /// while the lease still has that epoch, so a node that lost the webhook records nothing.
    pub fence: Option<(i64, i64)>,
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
            transformed: None,
            fence: None,
        }
    }
}

/// Outcomes to write (batched by the recorder). Sent only by
/// [`super::recorder::RecorderHandle::record`], which counts it into the recorder's backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub Outcome);

/// This node took a webhook over (PostgreSQL): start its actor, which pages in everything open.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Own {
    /// The webhook.
    pub webhook_id: i64,
    /// The lease epoch its outcomes are fenced with.
    pub epoch: i64,
    /// The breaker as the previous owner left it.
    pub breaker: Option<crate::delivery::breaker::BreakerSnapshot>,
}

/// This node gives webhooks up: their actors start nothing more, finish what is in flight (at
/// most `drain`), and stop; answers their last health snapshots, in the order of `ids`.
#[derive(Message)]
#[rtype(result = "Vec<Option<String>>")]
pub struct Disown {
    /// The webhooks.
    pub ids: Vec<i64>,
    /// Longest wait for attempts in flight.
    pub drain: std::time::Duration,
}

/// The database has new or re-opened deliveries for these webhooks: their actors page them in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Page(pub Vec<i64>);

/// To one webhook actor: page in from the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PageIn;

/// The registry as the database has it: every webhook in a snapshot read after the registry had
/// `since` changes (see [`super::registry::Registry::reload_plan`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload {
    pub snapshot: Vec<std::sync::Arc<crate::domain::Webhook>>,
    pub since: u64,
}

/// Write everything handed so far; answers when it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Appends `{"delivery_id": ..., <the payload's fields>}`: the payload is spliced as stored (its
/// keys in their order), not re-serialized.
fn push_entry(body: &mut String, m: &Job) {
    push_batch_entry(body, &m.delivery_id, &m.payload);
}

/// A delivery's entry in a batch body: its event's payload with its `delivery_id` first.
pub fn batch_entry(delivery_id: &str, payload: &str) -> String {
    let mut entry = String::with_capacity(payload.len() + delivery_id.len() + 20);
    push_batch_entry(&mut entry, delivery_id, payload);
    entry
}

fn push_batch_entry(body: &mut String, delivery_id: &str, payload: &str) {
    let id = serde_json::to_string(delivery_id).unwrap_or_else(|_| "\"\"".into());
    let payload = payload.trim();
    match payload.strip_prefix('{') {
        Some(rest) if !rest.trim_start().starts_with('}') => {
            body.push_str(r#"{"delivery_id":"#);
            body.push_str(&id);
            body.push(',');
            body.push_str(rest);
        }
        _ => {
            body.push_str(r#"{"delivery_id":"#);
            body.push_str(&id);
            body.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, payload: &str) -> Job {
        Job {
            delivery_id: id.into(),
            event_id: "e".into(),
            event_type: "t".into(),
            payload: Arc::from(payload),
            attempts_made: 0,
            due: None,
            transformed: false,
            members: vec![],
            manual: false,
            custom_body: false,
            stored: false,
        }
    }

    #[test]
    fn a_batch_body_lists_members_in_order_with_their_delivery_ids() {
        let b = Job::batch(vec![
            job("d1", r#"{"id":"e1","event":"a","data":{"x":1}}"#),
            job("d2", r#"{"id":"e2","event":"b"}"#),
        ]);
        let v: serde_json::Value = serde_json::from_str(&b.payload).unwrap();
        assert_eq!(v["type"], "batch");
        assert_eq!(v["deliveries"][0]["delivery_id"], "d1");
        assert_eq!(v["deliveries"][0]["data"]["x"], 1);
        assert_eq!(v["deliveries"][1]["id"], "e2");
        assert!(b
            .payload
            .starts_with(r#"{"type":"batch","deliveries":[{"delivery_id":"d1","id":"e1""#));
        assert_eq!(b.event_type, "batch");
        assert_eq!(
            uuid::Uuid::parse_str(&b.delivery_id)
                .unwrap()
                .get_version_num(),
            4
        );
    }
}
