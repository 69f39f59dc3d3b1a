//! Replay's reads and writes (README, Recovering after an outage): the events of a window, paged by
//! acceptance time so that a replay of any size holds one page in memory, and the new deliveries,
//! one transaction per page. Also the marks of `/test` events, which are never replayed.

use chrono::NaiveDateTime;
use diesel::dsl::not;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::batch::BatchWrite;
use crate::db::models::DeliveryRow;
use crate::db::schema::{sys_webhook_events as e, sys_webhook_test_events as t};
use crate::db::DbConn;
use crate::domain::ops::OPS_PREFIX;
use crate::with_conn;

/// Which stored events a replay reads.
#[derive(Debug, Clone)]
pub struct ReplayScope {
    /// The tenant's events; None: every tenant's operational events (an `_ops` webhook).
    pub tenant_id: Option<String>,
    /// Accepted at or after.
    pub since: NaiveDateTime,
    /// Accepted before.
    pub until: NaiveDateTime,
    /// Only this exact type.
    pub event_type: Option<String>,
}

/// A stored event as replay needs it.
#[derive(Debug, Clone, Queryable)]
pub struct StoredEvent {
    /// Its id.
    pub event_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its type.
    pub event_type: String,
    /// The exact body.
    pub payload: String,
    /// When it was accepted (the paging key, with the id).
    pub created_at: NaiveDateTime,
}

/// Where the previous page ended: (accepted at, event id).
pub type Cursor = (NaiveDateTime, String);

fn ops_pattern() -> String {
    format!("{OPS_PREFIX}%")
}

/// The number of events in the scope's window, before any matching (the limit counts these).
pub async fn count_window(conn: &mut DbConn, s: &ReplayScope) -> QueryResult<i64> {
    with_conn!(conn, c => {
        let mut q = e::table
            .filter(e::created_at.ge(s.since))
            .filter(e::created_at.lt(s.until))
            .into_boxed();
        q = match &s.tenant_id {
            Some(tenant) => q.filter(e::tenant_id.eq(tenant.clone())),
            None => q.filter(e::event_type.like(ops_pattern())),
        };
        q.count().get_result(c).await
    })
}

/// Up to `limit` events of the scope after `after`, oldest first, `/test` events left out.
pub async fn page_events(
    conn: &mut DbConn,
    s: &ReplayScope,
    after: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<StoredEvent>> {
    with_conn!(conn, c => {
        let mut q = e::table
            .filter(e::created_at.ge(s.since))
            .filter(e::created_at.lt(s.until))
            .filter(not(e::event_id.eq_any(t::table.select(t::event_id))))
            .into_boxed();
        q = match &s.tenant_id {
            Some(tenant) => q.filter(e::tenant_id.eq(tenant.clone())),
            None => q.filter(e::event_type.like(ops_pattern())),
        };
        if let Some(ty) = &s.event_type {
            q = q.filter(e::event_type.eq(ty.clone()));
        }
        if let Some((at, id)) = after {
            // The plain `>=` lets the index start at the cursor; without it every page would
            // scan the window from its start.
            q = q.filter(e::created_at.ge(*at)).filter(
                e::created_at
                    .gt(*at)
                    .or(e::event_id.gt(id.clone())),
            );
        }
        q.order((e::created_at.asc(), e::event_id.asc()))
            .limit(limit)
            .select((e::event_id, e::tenant_id, e::event_type, e::payload, e::created_at))
            .load(c)
            .await
    })
}

/// Stores one page's new deliveries in one transaction.
pub async fn insert_deliveries(conn: &mut DbConn, rows: Vec<DeliveryRow>) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        c.insert_intake(Vec::new(), rows).await
    }).await)
}

/// Marks an event as a `/test` send (before it is published).
pub async fn mark_test_event(conn: &mut DbConn, event_id: &str) -> QueryResult<()> {
    with_conn!(conn, c => diesel::insert_into(t::table)
        .values(t::event_id.eq(event_id))
        .execute(c)
        .await
        .map(|_| ()))
}
