//! `sys_event_types`: the declared event types of the catalog, and the figures of every type seen
//! in `sys_webhook_events` (grouped queries over the `(tenant_id, event_type, created_at)` index).

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, max, min};
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::Value;

use crate::db::json::Json;
use crate::db::models::EventTypeRow;
use crate::db::schema::sys_event_types as t;
use crate::db::schema::sys_webhook_events as e;
use crate::db::store::audit::{self, AuditConn, NewAuditEntry};
use crate::db::DbConn;
use crate::domain::audit::action;
use crate::with_conn;

/// The type of the API's test sends; they are not counted (README, API).
pub const TEST_EVENT_TYPE: &str = "webhook/test";

/// Stored events of one type: how many, first and last acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFigures {
    /// The event type.
    pub event_type: String,
    /// Stored events.
    pub count: i64,
    /// The first one's acceptance time.
    pub first_seen: Option<NaiveDateTime>,
    /// The last one's.
    pub last_seen: Option<NaiveDateTime>,
}

/// What a create or update sets; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct EventTypeChange {
    /// New description.
    pub description: Option<Option<String>>,
    /// New schema.
    pub schema: Option<Option<Value>>,
}

/// Every declared type.
pub async fn list_declared(conn: &mut DbConn) -> QueryResult<Vec<EventTypeRow>> {
    with_conn!(conn, c => t::table
        .order(t::name.asc())
        .select(EventTypeRow::as_select())
        .load(c)
        .await)
}

/// The declarations' state: how many, and the last change (compared to see whether another
/// process changed a schema).
pub async fn version(conn: &mut DbConn) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    with_conn!(conn, c => t::table
        .select((count_star(), max(t::updated_at)))
        .first(c)
        .await)
}

/// One declared type.
pub async fn find_declared(conn: &mut DbConn, name: &str) -> QueryResult<Option<EventTypeRow>> {
    with_conn!(conn, c => t::table
        .filter(t::name.eq(name))
        .select(EventTypeRow::as_select())
        .first(c)
        .await
        .optional())
}

/// Creates or updates a declared type in one transaction with its `event_type.updated` audit entry
/// by `actor`; returns the row and whether it was created.
pub async fn upsert_declared(
    conn: &mut DbConn,
    actor: &str,
    name: &str,
    change: EventTypeChange,
    now: NaiveDateTime,
) -> QueryResult<(EventTypeRow, bool)> {
    let name = name.to_string();
    let actor = actor.to_string();
    with_conn!(conn, c => c.transaction::<_, diesel::result::Error, _>(async move |c| {
        let before: Option<EventTypeRow> = t::table
            .filter(t::name.eq(&name))
            .select(EventTypeRow::as_select())
            .first(c)
            .await
            .optional()?;
        let created = before.is_none();
        let row = EventTypeRow {
            name: name.clone(),
            description: match change.description {
                Some(d) => d,
                None => before.as_ref().and_then(|b| b.description.clone()),
            },
            schema: match change.schema {
                Some(s) => s.as_ref().map(Json::new),
                None => before.as_ref().and_then(|b| b.schema.clone()),
            },
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            updated_at: now,
        };
        if created {
            diesel::insert_into(t::table).values(&row).execute(c).await?;
        } else {
            diesel::update(t::table.filter(t::name.eq(&name)))
                .set((
                    t::description.eq(&row.description),
                    t::schema.eq(&row.schema),
                    t::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        record_event_type_change(c, &actor, before.as_ref(), &row).await?;
        Ok((row, created))
    }).await)
}

/// The `event_type.updated` entry of a change, in its transaction: `before: null` for a created
/// type; otherwise `name` and the fields that changed on each side, and no entry when none did.
async fn record_event_type_change<C: AuditConn>(
    c: &mut C,
    actor: &str,
    before: Option<&EventTypeRow>,
    after: &EventTypeRow,
) -> QueryResult<()> {
    let view = |r: &EventTypeRow| {
        serde_json::json!({
            "name": r.name,
            "description": r.description,
            "schema": r.schema.as_ref().and_then(|s| s.parse().ok()),
        })
    };
    let (old, new) = match before {
        None => (None, Some(view(after))),
        Some(b) => {
            let (mut old, mut new) = (view(b), view(after));
            if old == new {
                return Ok(());
            }
            for field in ["description", "schema"] {
                if old[field] == new[field] {
                    old.as_object_mut().map(|o| o.remove(field));
                    new.as_object_mut().map(|o| o.remove(field));
                }
            }
            (Some(old), Some(new))
        }
    };
    let entry = NewAuditEntry::new(actor, action::EVENT_TYPE_UPDATED).states(old, new);
    audit::record(c, &entry).await
}

/// Figures per event type of the stored events of `tenant` (every tenant's when None), only
/// `name` when given; the API's test sends are left out.
pub async fn figures(
    conn: &mut DbConn,
    tenant: Option<&str>,
    name: Option<&str>,
) -> QueryResult<Vec<TypeFigures>> {
    let rows: Vec<(String, i64, Option<NaiveDateTime>, Option<NaiveDateTime>)> = with_conn!(conn, c => {
        let mut q = e::table
            .filter(e::event_type.ne(TEST_EVENT_TYPE))
            .group_by(e::event_type)
            .select((e::event_type, count_star(), min(e::created_at), max(e::created_at)))
            .into_boxed();
        if let Some(tenant) = tenant {
            q = q.filter(e::tenant_id.eq(tenant.to_string()));
        }
        if let Some(name) = name {
            q = q.filter(e::event_type.eq(name.to_string()));
        }
        q.load(c).await
    })?;
    Ok(rows
        .into_iter()
        .map(|(event_type, count, first_seen, last_seen)| TypeFigures {
            event_type,
            count,
            first_seen,
            last_seen,
        })
        .collect())
}
