//! Recover (README, Recovering after an outage): failed deliveries of a webhook put back to
//! `pending`, a bounded batch per transaction, so a large window never holds the writer for long.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::RunQueryDsl;

use crate::db::models::DeliveryRow;
use crate::db::schema::{sys_webhook_deliveries as d, sys_webhook_events as e};
use crate::db::DbConn;
use crate::domain::DeliveryStatus;
use crate::with_conn;

/// Deliveries re-opened per statement.
pub const RECOVER_BATCH: i64 = 500;

/// Re-opens up to [`RECOVER_BATCH`] `failed` deliveries of `webhook_id` created in `[since,
/// until)`, oldest first, with ids above `after`. Returns them as they are now (`pending`, same
/// ids) and the cursor for the next batch (None: nothing was left).
pub async fn reopen_failed_batch(
    conn: &mut DbConn,
    webhook_id: i64,
    since: NaiveDateTime,
    until: NaiveDateTime,
    after: &str,
    now: NaiveDateTime,
) -> QueryResult<(Vec<DeliveryRow>, Option<String>)> {
    let after = after.to_string();
    let ids: Vec<String> = with_conn!(conn, c => d::table
        .filter(d::webhook_id.eq(webhook_id))
        .filter(d::status.eq(DeliveryStatus::Failed))
        .filter(d::created_at.ge(since))
        .filter(d::created_at.lt(until))
        .filter(d::delivery_id.gt(after.clone()))
        .order(d::delivery_id.asc())
        .limit(RECOVER_BATCH)
        .select(d::delivery_id)
        .load(c)
        .await)?;
    let Some(last) = ids.last().cloned() else {
        return Ok((Vec::new(), None));
    };
    // `status = 'failed'` again: a delivery retried by hand meanwhile is not sent twice.
    let mut rows: Vec<DeliveryRow> = with_conn!(conn, c => diesel::update(
            d::table.filter(d::delivery_id.eq_any(&ids)).filter(d::status.eq(DeliveryStatus::Failed)))
        .set((d::status.eq(DeliveryStatus::Pending), d::next_attempt_at.eq(None::<NaiveDateTime>), d::updated_at.eq(now)))
        .returning(DeliveryRow::as_returning())
        .get_results(c)
        .await)?;
    rows.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    Ok((rows, Some(last)))
}

/// The stored payloads of these events.
pub async fn payloads(
    conn: &mut DbConn,
    event_ids: &[&str],
) -> QueryResult<HashMap<String, String>> {
    if event_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = with_conn!(conn, c => e::table
        .filter(e::event_id.eq_any(event_ids))
        .select((e::event_id, e::payload))
        .load(c)
        .await)?;
    Ok(rows.into_iter().collect())
}
