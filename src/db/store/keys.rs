//! `sys_api_keys`: tenant API keys, stored as SHA-256 hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::RunQueryDsl;

use crate::db::models::ApiKeyRow;
use crate::db::schema::sys_api_keys as k;
use crate::db::store::audit::{self, NewAuditEntry};
use crate::db::DbConn;
use crate::with_conn;

/// Keys that are not revoked, oldest first.
pub async fn list_keys(conn: &mut DbConn) -> QueryResult<Vec<ApiKeyRow>> {
    with_conn!(conn, c => k::table
        .filter(k::revoked_at.is_null())
        .order(k::created_at.asc())
        .select(ApiKeyRow::as_select())
        .load(c)
        .await)
}

/// The live key with this hash.
pub async fn find_by_hash(conn: &mut DbConn, hash: &str) -> QueryResult<Option<ApiKeyRow>> {
    with_conn!(conn, c => k::table
        .filter(k::key_hash.eq(hash))
        .filter(k::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())
}

/// Stores a new key and its audit entry in one transaction.
pub async fn insert_key_audited(
    conn: &mut DbConn,
    row: &ApiKeyRow,
    entry: &NewAuditEntry,
) -> QueryResult<()> {
    use diesel_async::AsyncConnection;
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        diesel::insert_into(k::table).values(row).execute(c).await?;
        audit::record(c, entry).await
    }).await)
}

/// Revokes a key and records the entry `audit` makes of it, in one transaction; None when no live
/// key has that id.
pub async fn revoke_key_audited(
    conn: &mut DbConn,
    key_id: &str,
    now: NaiveDateTime,
    audit: impl FnOnce(&ApiKeyRow) -> NewAuditEntry + Send,
) -> QueryResult<Option<ApiKeyRow>> {
    use diesel_async::AsyncConnection;
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let revoked = diesel::update(k::table.filter(k::key_id.eq(key_id)).filter(k::revoked_at.is_null()))
            .set(k::revoked_at.eq(Some(now)))
            .returning(ApiKeyRow::as_returning())
            .get_result(c)
            .await
            .optional()?;
        if let Some(row) = &revoked {
            audit::record(c, &audit(row)).await?;
        }
        Ok(revoked)
    }).await)
}
