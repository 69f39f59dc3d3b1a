//! `sys_webhooks`: registrations, soft-deleted so that their deliveries stay readable.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::RunQueryDsl;

use crate::db::models::{CloseDelivery, NewWebhookRow, WebhookChanges, WebhookRow};
use crate::db::schema::{sys_webhook_deliveries as d, sys_webhooks as w};
use crate::db::status::is_open;
use crate::db::store::audit::{self, NewAuditEntry};
use crate::db::store::cluster::{Notify, REGISTRY_CHANNEL};
use crate::db::DbConn;
use crate::with_conn;

/// Filters and paging of a webhook listing.
#[derive(Debug, Clone, Default)]
pub struct WebhookFilter {
    /// Only this tenant (None: all tenants).
    pub tenant_id: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only enabled or only disabled.
    pub enabled: Option<bool>,
    /// Ids greater than this.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// One webhook that is not deleted.
pub async fn find_webhook(conn: &mut DbConn, id: i64) -> QueryResult<Option<WebhookRow>> {
    with_conn!(conn, c => w::table
        .filter(w::webhook_id.eq(id))
        .filter(w::deleted_at.is_null())
        .select(WebhookRow::as_select())
        .first(c)
        .await
        .optional())
}

/// A page of webhooks in ascending id.
pub async fn list_webhooks(conn: &mut DbConn, f: &WebhookFilter) -> QueryResult<Vec<WebhookRow>> {
    with_conn!(conn, c => {
        let mut q = w::table.filter(w::deleted_at.is_null()).into_boxed();
        if let Some(t) = &f.tenant_id {
            q = q.filter(w::tenant_id.eq(t.clone()));
        }
        if let Some(e) = &f.event_type {
            q = q.filter(w::event_type.eq(e.clone()));
        }
        if let Some(en) = f.enabled {
            q = q.filter(w::enabled.eq(en));
        }
        if let Some(a) = f.after {
            q = q.filter(w::webhook_id.gt(a));
        }
        q.order(w::webhook_id.asc()).limit(f.limit).select(WebhookRow::as_select()).load(c).await
    })
}

/// Every webhook that is not deleted (the router's registry at start).
pub async fn all_webhooks(conn: &mut DbConn) -> QueryResult<Vec<WebhookRow>> {
    with_conn!(conn, c => w::table
        .filter(w::deleted_at.is_null())
        .order(w::webhook_id.asc())
        .select(WebhookRow::as_select())
        .load(c)
        .await)
}

/// Read-modify-write of one webhook under a write lock (PostgreSQL `SELECT ... FOR UPDATE`, SQLite
/// `BEGIN IMMEDIATE`), with the change's audit entry in the same transaction: `change` sees the row
/// as it is and no other writer can slip in between, so concurrent calls (two secret rotations)
/// apply one after the other. `change` answering None writes nothing (the row is answered as it
/// is); None when the webhook does not exist.
pub async fn update_webhook_audited<E, F, A>(
    conn: &mut DbConn,
    id: i64,
    change: F,
    audit: A,
) -> Result<Option<WebhookRow>, E>
where
    E: From<diesel::result::Error> + Send + 'static,
    F: FnOnce(WebhookRow) -> Result<Option<WebhookChanges>, E> + Send + 'static,
    A: FnOnce(&WebhookRow, &WebhookRow) -> Option<NewAuditEntry> + Send + 'static,
{
    use diesel_async::AsyncConnection;
    let live = move || {
        w::table
            .filter(w::webhook_id.eq(id))
            .filter(w::deleted_at.is_null())
    };
    match conn {
        DbConn::Sqlite(c) => {
            // Nothing is written before `change` runs, so a refusal commits an empty transaction.
            let done = c
                .spawn_blocking(move |c| {
                    c.immediate_transaction(|c| {
                        let Some(row) =
                            diesel::RunQueryDsl::first(live().select(WebhookRow::as_select()), c)
                                .optional()?
                        else {
                            return Ok(Ok(None));
                        };
                        let changes = match change(row.clone()) {
                            Ok(Some(changes)) => changes,
                            Ok(None) => return Ok(Ok(Some(row))),
                            Err(e) => return Ok(Err(e)),
                        };
                        let stored = diesel::RunQueryDsl::get_result(
                            diesel::update(live())
                                .set(&changes)
                                .returning(WebhookRow::as_returning()),
                            c,
                        )?;
                        if let Some(entry) = audit(&row, &stored) {
                            audit::record_blocking(c, &entry)?;
                        }
                        Ok(Ok(Some(stored)))
                    })
                })
                .await?;
            done
        }
        DbConn::Pg(c) => {
            c.transaction::<_, E, _>(async move |c| {
                let Some(row) = live()
                    .select(WebhookRow::as_select())
                    .for_update()
                    .first(c)
                    .await
                    .optional()?
                else {
                    return Ok(None);
                };
                let Some(changes) = change(row.clone())? else {
                    return Ok(Some(row));
                };
                let stored = diesel::update(live())
                    .set(&changes)
                    .returning(WebhookRow::as_returning())
                    .get_result(c)
                    .await?;
                if let Some(entry) = audit(&row, &stored) {
                    audit::record(c, &entry).await?;
                }
                c.notify(REGISTRY_CHANNEL, id.to_string()).await?;
                Ok(Some(stored))
            })
            .await
        }
    }
}

/// Inserts a webhook and the audit entry `audit` makes of it, in one transaction.
pub async fn insert_webhook_audited(
    conn: &mut DbConn,
    row: &NewWebhookRow,
    audit: impl FnOnce(&WebhookRow) -> NewAuditEntry + Send,
) -> QueryResult<WebhookRow> {
    use diesel_async::AsyncConnection;
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let stored = diesel::insert_into(w::table)
            .values(row)
            .returning(WebhookRow::as_returning())
            .get_result(c)
            .await?;
        audit::record(c, &audit(&stored)).await?;
        c.notify(REGISTRY_CHANNEL, stored.webhook_id.to_string()).await?;
        Ok(stored)
    }).await)
}

/// Soft-deletes a webhook, cancels its deliveries that are not final and records `entry`, in one
/// transaction; false when it did not exist.
pub async fn delete_webhook_audited(
    conn: &mut DbConn,
    id: i64,
    now: NaiveDateTime,
    entry: Option<NewAuditEntry>,
) -> QueryResult<bool> {
    use diesel_async::AsyncConnection;
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let n = diesel::update(w::table.filter(w::webhook_id.eq(id)).filter(w::deleted_at.is_null()))
            .set((w::deleted_at.eq(Some(now)), w::enabled.eq(false), w::updated_at.eq(now)))
            .execute(c)
            .await?;
        if n == 0 {
            return Ok(false);
        }
        diesel::update(d::table.filter(d::webhook_id.eq(id)).filter(is_open()))
            .set(CloseDelivery::cancelled("webhook deleted", now))
            .execute(c)
            .await?;
        if let Some(entry) = &entry {
            audit::record(c, entry).await?;
        }
        c.notify(REGISTRY_CHANNEL, id.to_string()).await?;
        Ok(true)
    }).await)
}
