//! `sys_webhook_sent_bodies`: the body of a batch or a transformed delivery, fixed when first
//! sent, kept while its deliveries wait for a retry so that a restarted (or another) node resends
//! exactly it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::sys_webhook_sent_bodies as s;
use crate::db::schema::sys_webhook_transformed_bodies as t;
use crate::db::DbConn;
use crate::with_conn;

/// A stored body.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = s)]
pub struct SentBodyRow {
    /// The batch id, or the delivery id of a lone delivery.
    pub sent_id: String,
    pub webhook_id: i64,
    /// JSON array of the member delivery ids, in order.
    pub members: String,
    pub body: String,
    /// A batch of manual retries (one attempt).
    pub manual: bool,
    pub created_at: NaiveDateTime,
}

/// Stores a body (once: a second save of the same id is ignored).
pub async fn save(conn: &mut DbConn, row: &SentBodyRow) -> QueryResult<()> {
    with_conn!(conn, c => diesel::insert_into(s::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map(drop)
}

/// Forgets a body whose deliveries are final.
pub async fn delete(conn: &mut DbConn, sent_id: &str) -> QueryResult<()> {
    with_conn!(conn, c => diesel::delete(s::table.filter(s::sent_id.eq(sent_id)))
        .execute(c)
        .await)
    .map(drop)
}

/// The stored bodies of one webhook.
pub async fn list_for_webhook(conn: &mut DbConn, webhook_id: i64) -> QueryResult<Vec<SentBodyRow>> {
    with_conn!(conn, c => s::table
        .filter(s::webhook_id.eq(webhook_id))
        .select(SentBodyRow::as_select())
        .load(c)
        .await)
}

/// The body a `transform` produced for `sent_id`, if one ran.
pub async fn transformed(conn: &mut DbConn, sent_id: &str) -> QueryResult<Option<String>> {
    with_conn!(conn, c => t::table
        .filter(t::sent_id.eq(sent_id))
        .select(t::body)
        .first(c)
        .await
        .optional())
}
