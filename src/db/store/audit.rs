//! `sys_audit_log`: who changed what (README, Audit log). An entry is written by the same
//! transaction as the change it records, so [`record`] takes whatever connection that transaction
//! runs on: a pooled [`DbConn`], the backend connection inside a `with_conn!` transaction, or (in a
//! `spawn_blocking` SQLite transaction) the plain connection through [`record_blocking`].

use std::future::Future;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::db::json::Json;
use crate::db::schema::sys_audit_log as a;
use crate::db::{DbConn, SqliteConn};
use crate::with_conn;

/// An entry to record; `audit_seq` and `at` come from the database.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = a)]
pub struct NewAuditEntry {
    /// Public id of the entry.
    pub audit_id: String,
    /// `admin`, the `key_id` of a tenant key, or `system`.
    pub actor: String,
    /// `webhook.created`, ... (see [`crate::domain::audit::action`]).
    pub action: String,
    /// The tenant of the changed resource (None for event types).
    pub tenant_id: Option<String>,
    /// The changed webhook.
    pub webhook_id: Option<i64>,
    /// The changed key.
    pub key_id: Option<String>,
    /// The changed fields before (None: created).
    pub before: Option<Json<Value>>,
    /// The changed fields after (None: deleted).
    pub after: Option<Json<Value>>,
}

impl NewAuditEntry {
    /// An entry with a fresh id and nothing but its actor and action.
    pub fn new(actor: impl Into<String>, action: &str) -> Self {
        Self {
            audit_id: uuid::Uuid::now_v7().to_string(),
            actor: actor.into(),
            action: action.into(),
            tenant_id: None,
            webhook_id: None,
            key_id: None,
            before: None,
            after: None,
        }
    }

    /// With `before` and `after` (None for the side that does not exist).
    pub fn states(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before.as_ref().map(Json::new);
        self.after = after.as_ref().map(Json::new);
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = a)]
pub struct AuditRow {
    pub audit_seq: i64,
    pub audit_id: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub tenant_id: Option<String>,
    pub webhook_id: Option<i64>,
    pub key_id: Option<String>,
    pub before: Option<Json<Value>>,
    pub after: Option<Json<Value>>,
}

/// A connection an entry can be written on, inside or outside a transaction.
pub trait AuditConn {
    /// Inserts `entry`.
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send;
}

impl AuditConn for AsyncPgConnection {
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send {
        let q = diesel::insert_into(a::table).values(entry.clone());
        async move { q.execute(self).await.map(|_| ()) }
    }
}

impl AuditConn for SqliteConn {
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send {
        let q = diesel::insert_into(a::table).values(entry.clone());
        async move { q.execute(self).await.map(|_| ()) }
    }
}

impl AuditConn for DbConn {
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send {
        let entry = entry.clone();
        async move { with_conn!(self, c => c.insert_audit(&entry).await) }
    }
}

/// A pooled PostgreSQL connection (the `c` of a transaction begun on the pool object).
impl AuditConn for Object<AsyncPgConnection> {
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send {
        (**self).insert_audit(entry)
    }
}

/// A pooled SQLite connection (the `c` of a transaction begun on the pool object).
impl AuditConn for Object<SqliteConn> {
    fn insert_audit(
        &mut self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = QueryResult<()>> + Send {
        (**self).insert_audit(entry)
    }
}

/// Records `entry` on `conn` (in the caller's transaction, when it runs one).
pub async fn record<C: AuditConn>(conn: &mut C, entry: &NewAuditEntry) -> QueryResult<()> {
    conn.insert_audit(entry).await
}

/// Records `entry` on a plain SQLite connection (a transaction run in `spawn_blocking`).
pub fn record_blocking(conn: &mut SqliteConnection, entry: &NewAuditEntry) -> QueryResult<()> {
    diesel::RunQueryDsl::execute(diesel::insert_into(a::table).values(entry), conn).map(|_| ())
}

/// Filters and paging of `GET /api/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this webhook.
    pub webhook_id: Option<i64>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries recorded before this one (the cursor).
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A page of entries, newest first.
pub async fn list(conn: &mut DbConn, f: &AuditFilter) -> QueryResult<Vec<AuditRow>> {
    with_conn!(conn, c => {
        let mut q = a::table.into_boxed();
        if let Some(t) = &f.tenant_id {
            q = q.filter(a::tenant_id.eq(t.clone()));
        }
        if let Some(w) = f.webhook_id {
            q = q.filter(a::webhook_id.eq(w));
        }
        if let Some(act) = &f.action {
            q = q.filter(a::action.eq(act.clone()));
        }
        if let Some(s) = f.before_seq {
            q = q.filter(a::audit_seq.lt(s));
        }
        q.order(a::audit_seq.desc()).limit(f.limit).select(AuditRow::as_select()).load(c).await
    })
}
