//! `sys_webhook_deliveries` and `sys_webhook_attempts`: the delivery log and the dispatcher's queue.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::RunQueryDsl;

use crate::db::models::{AttemptRow, DeliveryRow};
use crate::db::schema::{
    sys_webhook_attempts as a, sys_webhook_deliveries as d, sys_webhook_events as e,
};
use crate::db::status::is_open;
use crate::db::DbConn;
use crate::domain::DeliveryStatus;
use crate::with_conn;

/// Filters and paging of a delivery listing (newest first).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this tenant (None: all).
    pub tenant_id: Option<String>,
    /// Only this webhook.
    pub webhook_id: Option<i64>,
    /// Only this event.
    pub event_id: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Created at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Created before this time.
    pub until: Option<NaiveDateTime>,
    /// Older than this delivery id (the cursor).
    pub before: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// A page of deliveries, newest first (delivery ids are UUIDv7, so id order is time order).
pub async fn list_deliveries(
    conn: &mut DbConn,
    f: &DeliveryFilter,
) -> QueryResult<Vec<DeliveryRow>> {
    with_conn!(conn, c => {
        let mut q = d::table.into_boxed();
        if let Some(t) = &f.tenant_id {
            q = q.filter(d::tenant_id.eq(t.clone()));
        }
        if let Some(w) = f.webhook_id {
            q = q.filter(d::webhook_id.eq(w));
        }
        if let Some(ev) = &f.event_id {
            q = q.filter(d::event_id.eq(ev.clone()));
        }
        if let Some(s) = f.status {
            q = q.filter(d::status.eq(s));
        }
        if let Some(t) = &f.event_type {
            q = q.filter(d::event_type.eq(t.clone()));
        }
        if let Some(t) = f.since {
            q = q.filter(d::created_at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(d::created_at.lt(t));
        }
        if let Some(b) = &f.before {
            q = q.filter(d::delivery_id.lt(b.clone()));
        }
        q.order(d::delivery_id.desc()).limit(f.limit).select(DeliveryRow::as_select()).load(c).await
    })
}

/// One delivery.
pub async fn find_delivery(conn: &mut DbConn, id: &str) -> QueryResult<Option<DeliveryRow>> {
    with_conn!(conn, c => d::table
        .filter(d::delivery_id.eq(id))
        .select(DeliveryRow::as_select())
        .first(c)
        .await
        .optional())
}

/// A delivery's attempts, oldest first.
pub async fn list_attempts(conn: &mut DbConn, delivery_id: &str) -> QueryResult<Vec<AttemptRow>> {
    with_conn!(conn, c => a::table
        .filter(a::delivery_id.eq(delivery_id))
        .order(a::attempt_id.asc())
        .select(AttemptRow::as_select())
        .load(c)
        .await)
}

/// Inserts one delivery record (`POST /api/webhooks/deliveries`: a result recorded from outside).
pub async fn insert_delivery(conn: &mut DbConn, row: &DeliveryRow) -> QueryResult<DeliveryRow> {
    with_conn!(conn, c => diesel::insert_into(d::table)
        .values(row)
        .returning(DeliveryRow::as_returning())
        .get_result(c)
        .await)
}

/// Puts a finished delivery back to `pending` (same delivery id); None when it is not finished.
pub async fn reopen_delivery(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<DeliveryRow>> {
    with_conn!(conn, c => diesel::update(d::table.filter(d::delivery_id.eq(id)).filter(d::status.ne_all(DeliveryStatus::OPEN)))
        .set((d::status.eq(DeliveryStatus::Pending), d::next_attempt_at.eq(None::<NaiveDateTime>), d::updated_at.eq(now)))
        .returning(DeliveryRow::as_returning())
        .get_result(c)
        .await
        .optional())
}

/// Deliveries of a webhook that are not final, oldest first, after a cursor, with their payloads.
pub async fn load_open(
    conn: &mut DbConn,
    webhook_id: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<(DeliveryRow, Option<String>)>> {
    let after = after.unwrap_or("").to_string();
    let rows: Vec<DeliveryRow> = with_conn!(conn, c => d::table
        .filter(d::webhook_id.eq(webhook_id))
        .filter(is_open())
        .filter(d::delivery_id.gt(after))
        .order(d::delivery_id.asc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(c)
        .await)?;
    with_payloads(conn, rows).await
}

/// PostgreSQL's queue of one webhook: its oldest open deliveries in commit order (the inserting
/// transaction, then the order within it), at most `limit`. `ordered`: only rows below the oldest
/// running transaction, so that nothing committed later can sort before them; the flag answered
/// is true when newer open rows wait behind such a transaction. SQLite: [`load_open`] from the
/// start (one process writes the file, so id order is commit order).
pub async fn load_queue(
    conn: &mut DbConn,
    webhook_id: i64,
    limit: i64,
    ordered: bool,
) -> QueryResult<(Vec<(DeliveryRow, Option<String>)>, bool)> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool};
    let DbConn::Pg(c) = conn else {
        return Ok((load_open(conn, webhook_id, None, limit).await?, false));
    };
    let xmin = match ordered {
        true => Some(crate::db::store::cluster::xmin(c).await?),
        false => None,
    };
    let mut q = d::table
        .filter(d::webhook_id.eq(webhook_id))
        .filter(is_open())
        .into_boxed();
    if let Some(x) = xmin {
        q = q.filter(sql::<Bool>("commit_xid < ").bind::<BigInt, _>(x));
    }
    let rows: Vec<DeliveryRow> = q
        .order_by(sql::<BigInt>("commit_xid, seq"))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(&mut **c)
        .await?;
    let held_back = match xmin {
        Some(x) => {
            diesel::select(diesel::dsl::exists(
                d::table
                    .filter(d::webhook_id.eq(webhook_id))
                    .filter(is_open())
                    .filter(sql::<Bool>("commit_xid >= ").bind::<BigInt, _>(x)),
            ))
            .get_result(&mut **c)
            .await?
        }
        None => false,
    };
    Ok((with_payloads(conn, rows).await?, held_back))
}

/// Each delivery with its event's payload (None when the event row is gone).
async fn with_payloads(
    conn: &mut DbConn,
    rows: Vec<DeliveryRow>,
) -> QueryResult<Vec<(DeliveryRow, Option<String>)>> {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let payloads: HashMap<String, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        with_conn!(conn, c => e::table
            .filter(e::event_id.eq_any(&ids))
            .select((e::event_id, e::payload))
            .load::<(String, String)>(c)
            .await)?
        .into_iter()
        .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let p = payloads.get(&r.event_id).cloned();
            (r, p)
        })
        .collect())
}

/// Webhook ids that have deliveries not final (recovery at start).
pub async fn webhooks_with_open(conn: &mut DbConn) -> QueryResult<Vec<i64>> {
    with_conn!(conn, c => d::table
        .filter(is_open())
        .select(d::webhook_id)
        .distinct()
        .load(c)
        .await)
}

/// Deliveries not final, per webhook, for the given webhooks.
pub async fn open_counts(conn: &mut DbConn, webhook_ids: &[i64]) -> QueryResult<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = with_conn!(conn, c => d::table
        .filter(is_open())
        .filter(d::webhook_id.eq_any(webhook_ids))
        .group_by(d::webhook_id)
        .select((d::webhook_id, diesel::dsl::count_star()))
        .load(c)
        .await)?;
    Ok(rows.into_iter().collect())
}

/// Deliveries not final, over all webhooks (the queue depth).
pub async fn count_open(conn: &mut DbConn) -> QueryResult<i64> {
    with_conn!(conn, c => d::table
        .filter(is_open())
        .count()
        .get_result(c)
        .await)
}

/// When the oldest delivery not yet final was created (None: no such delivery).
pub async fn oldest_open(conn: &mut DbConn) -> QueryResult<Option<NaiveDateTime>> {
    with_conn!(conn, c => d::table
        .filter(is_open())
        .select(diesel::dsl::min(d::created_at))
        .get_result(c)
        .await)
}
