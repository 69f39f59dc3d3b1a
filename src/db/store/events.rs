//! `sys_webhook_events`: the durable intake, with idempotency on (tenant, id) for 24 hours.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::batch::BatchWrite;
use crate::db::models::{DeliveryRow, EventRow};
use crate::db::schema::sys_webhook_events as e;
use crate::db::store::cluster::{id_payloads, Notify, DELIVERIES_CHANNEL};
use crate::db::DbConn;
use crate::with_conn;

/// An event ready to be stored with one delivery per matching webhook.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// The event row (its `idempotency_key` is the publisher's `id`).
    pub event: EventRow,
    /// Its deliveries, `pending`.
    pub deliveries: Vec<DeliveryRow>,
}

/// What the intake committed for one event.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// The stored event id (the first one's, for an idempotent repeat).
    pub event_id: String,
    /// Deliveries created now (empty for a repeat).
    pub deliveries: Vec<DeliveryRow>,
}

/// Stores events and deliveries in one transaction. An event whose (tenant, idempotency key) was
/// accepted after `window_start` is not stored again: its first event id is returned instead.
pub async fn commit_events(
    conn: &mut DbConn,
    events: Vec<PendingEvent>,
    window_start: NaiveDateTime,
    owned_elsewhere: impl Fn(i64) -> bool + Send,
) -> QueryResult<Vec<CommittedEvent>> {
    let keys: Vec<String> = events
        .iter()
        .filter_map(|p| p.event.idempotency_key.clone())
        .collect();
    // PostgreSQL with no idempotency key to look up and no other node to tell: the intake's one
    // statement is atomic alone, so it goes without BEGIN and COMMIT (two round trips fewer).
    if let DbConn::Pg(c) = conn {
        let remote = events
            .iter()
            .flat_map(|p| &p.deliveries)
            .any(|d| owned_elsewhere(d.webhook_id));
        if keys.is_empty() && !remote {
            let (committed, rows, deliveries) = dedupe(events, &mut HashMap::new());
            c.insert_intake(rows, deliveries).await?;
            return Ok(committed);
        }
    }
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let mut seen: HashMap<(String, String), String> = HashMap::new();
        if !keys.is_empty() {
            // An expired key is released so that its unique index admits the new event.
            diesel::update(e::table.filter(e::idempotency_key.eq_any(&keys)).filter(e::created_at.lt(window_start)))
                .set(e::idempotency_key.eq(None::<String>))
                .execute(c)
                .await?;
            let found: Vec<(String, Option<String>, String)> = e::table
                .filter(e::idempotency_key.eq_any(&keys))
                .select((e::tenant_id, e::idempotency_key, e::event_id))
                .load(c)
                .await?;
            for (tenant, key, id) in found {
                if let Some(key) = key {
                    seen.insert((tenant, key), id);
                }
            }
        }
        let (committed, rows, deliveries) = dedupe(events, &mut seen);
        // The owners of the other webhooks hear of their new deliveries at the commit.
        let mut remote: Vec<i64> = deliveries
            .iter()
            .map(|d| d.webhook_id)
            .filter(|id| owned_elsewhere(*id))
            .collect();
        c.insert_intake(rows, deliveries).await?;
        remote.sort_unstable();
        remote.dedup();
        for payload in id_payloads(&remote) {
            c.notify(DELIVERIES_CHANNEL, payload).await?;
        }
        Ok(committed)
    }).await)
}

/// Splits events into what is new and what repeats an idempotency key (stored or earlier in the batch).
fn dedupe(
    events: Vec<PendingEvent>,
    seen: &mut HashMap<(String, String), String>,
) -> (Vec<CommittedEvent>, Vec<EventRow>, Vec<DeliveryRow>) {
    let mut committed = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(events.len());
    let mut deliveries = Vec::new();
    for p in events {
        if let Some(key) = &p.event.idempotency_key {
            let slot = (p.event.tenant_id.clone(), key.clone());
            if let Some(first) = seen.get(&slot) {
                committed.push(CommittedEvent {
                    event_id: first.clone(),
                    deliveries: Vec::new(),
                });
                continue;
            }
            seen.insert(slot, p.event.event_id.clone());
        }
        committed.push(CommittedEvent {
            event_id: p.event.event_id.clone(),
            deliveries: p.deliveries.clone(),
        });
        deliveries.extend(p.deliveries);
        rows.push(p.event);
    }
    (committed, rows, deliveries)
}

/// The stored payload of an event.
pub async fn find_payload(conn: &mut DbConn, event_id: &str) -> QueryResult<Option<String>> {
    with_conn!(conn, c => e::table
        .filter(e::event_id.eq(event_id))
        .select(e::payload)
        .first(c)
        .await
        .optional())
}
