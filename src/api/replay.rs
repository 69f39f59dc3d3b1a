//! `POST /api/webhooks/{id}/replay` (README, Recovering after an outage): a new delivery for every
//! stored event of a window that the webhook matches now, committed page by page so that a replay
//! of 100,000 events holds one page in memory and no giant transaction.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Admin;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::openapi::{op, Op};
use super::{validate, AppState};
use crate::actors::messages::Job;
use crate::db::models::DeliveryRow;
use crate::db::store::replay::{self as store, Cursor, ReplayScope, StoredEvent};
use crate::domain::ops::{about_of, is_ops_type, replays_to, OPS_TENANT};
use crate::domain::{DeliveryStatus, Webhook};

/// The longest window a replay takes.
pub const MAX_WINDOW_DAYS: i64 = 7;
/// The most events (of the tenant, in the window, before matching) a replay takes.
pub const MAX_EVENTS: i64 = 100_000;
/// Events read, matched and committed at a time.
const PAGE: i64 = 1000;

/// Operations of this resource.
pub fn operations() -> Vec<Op> {
    vec![op(__path_replay, replay)]
}

/// Body of `POST /api/webhooks/{id}/replay`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReplayInput {
    /// Events accepted at or after this time (RFC 3339).
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Events accepted before this time (RFC 3339; default now).
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Only events of this exact type.
    #[schema(pattern = r"^[A-Za-z0-9_.:/-]{1,256}$")]
    pub event_type: Option<String>,
}

/// The `{id}` of the path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)] // describes the path for the document; the handler parses it itself
struct WebhookId(#[param(minimum = 1)] i64);

/// A validated request: the window and the optional exact type.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Inclusive start.
    pub since: NaiveDateTime,
    /// Exclusive end.
    pub until: NaiveDateTime,
    /// Only this type.
    pub event_type: Option<String>,
}

fn rfc3339(field: &str, v: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::validation(field, "must be an RFC 3339 date-time"))
}

/// Checks a request against the rules of README, Recovering after an outage (the event count
/// aside).
pub fn window(input: &ReplayInput, now: DateTime<Utc>) -> ApiResult<Window> {
    let since = match &input.since {
        Some(s) => rfc3339("since", s)?,
        None => return Err(ApiError::validation("since", "is required")),
    };
    let until = match &input.until {
        Some(u) => rfc3339("until", u)?,
        None => now,
    };
    if until <= since {
        return Err(ApiError::validation("until", "must be after `since`"));
    }
    if until - since > chrono::Duration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::validation(
            "since",
            format!("the window is over {MAX_WINDOW_DAYS} days: narrow it"),
        ));
    }
    if let Some(ty) = &input.event_type {
        validate::event_name(ty).map_err(|_| {
            ApiError::validation("event_type", "must be an exact event type (no pattern)")
        })?;
    }
    Ok(Window {
        since: since.naive_utc(),
        until: until.naive_utc(),
        event_type: input.event_type.clone(),
    })
}

/// Whether a stored event goes to `w` when replayed: the one place replay matches (tenant, event
/// type and patterns, operational events' routing; a webhook's `filter` belongs here too).
pub fn replay_matches(w: &Webhook, ev: &StoredEvent) -> bool {
    let about = is_ops_type(&ev.event_type)
        .then(|| about_of(&ev.payload))
        .flatten();
    replays_to(w, &ev.tenant_id, &ev.event_type, about)
        && (w.filter.is_none()
            || serde_json::from_str(&ev.payload).is_ok_and(|p: serde_json::Value| w.passes(&p)))
}

/// Replay events of a window to this webhook as new deliveries.
#[utoipa::path(post, path = "/api/webhooks/{id}/replay", params(WebhookId),
    request_body = ReplayInput,
    responses((status = 202, description = "`{\"deliveries\": n}` once committed"),
        (status = 503, description = "failed part-way; what was committed stays")))]
async fn replay(
    admin: Admin,
    id: web::Path<String>,
    Json(input): Json<ReplayInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let w = super::webhooks::load_owned(&st, &admin, path_id(&id, "id")?).await?;
    let win = window(&input, Utc::now())?;
    let scope = ReplayScope {
        // An `_ops` webhook sees the operational events of every tenant.
        tenant_id: (w.tenant_id != OPS_TENANT).then(|| w.tenant_id.clone()),
        since: win.since,
        until: win.until,
        event_type: win.event_type,
    };
    let mut conn = st.db.read().await?;
    let count = store::count_window(&mut conn, &scope).await?;
    drop(conn);
    if count > MAX_EVENTS {
        return Err(ApiError::validation(
            "since",
            format!("the window holds {count} events, over {MAX_EVENTS}: narrow it"),
        ));
    }
    let mut done = 0usize;
    run(&st, &w, &scope, &mut done).await.map_err(|e| {
        ApiError::unavailable(format!(
            "replay failed after {done} deliveries were committed (they stay): {e}"
        ))
    })?;
    Ok(HttpResponse::Accepted().json(json!({ "deliveries": done })))
}

/// Pages through the window, committing and dispatching each page's deliveries; `done` counts
/// what was committed, also when a later page fails.
async fn run(
    st: &AppState,
    w: &Webhook,
    scope: &ReplayScope,
    done: &mut usize,
) -> Result<(), String> {
    let mut cursor: Option<Cursor> = None;
    let fail_after = crate::testing::replay_fault(&w.tenant_id);
    for page_no in 0usize.. {
        if fail_after == Some(page_no) {
            return Err("injected fault".into());
        }
        let mut conn = st.db.read().await.map_err(|e| e.to_string())?;
        let page = store::page_events(&mut conn, scope, cursor.as_ref(), PAGE)
            .await
            .map_err(|e| e.to_string())?;
        drop(conn);
        let Some(last) = page.last() else {
            return Ok(());
        };
        cursor = Some((last.created_at, last.event_id.clone()));
        let full = page.len() as i64 >= PAGE;
        let (rows, jobs) = deliveries_for(w, page);
        let n = rows.len();
        let mut conn = st.db.write().await.map_err(|e| e.to_string())?;
        store::insert_deliveries(&mut conn, rows)
            .await
            .map_err(|e| e.to_string())?;
        drop(conn);
        *done += n;
        st.dispatcher.dispatch(jobs);
        if !full {
            return Ok(());
        }
    }
    Ok(())
}

/// The new deliveries of one page, and their jobs, in the events' order (their ids are made now,
/// so an ordered webhook sends them after everything already waiting).
fn deliveries_for(w: &Webhook, page: Vec<StoredEvent>) -> (Vec<DeliveryRow>, Vec<(i64, Job)>) {
    let now = Utc::now().naive_utc();
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for ev in page.into_iter().filter(|ev| replay_matches(w, ev)) {
        let row = DeliveryRow {
            delivery_id: Uuid::now_v7().to_string(),
            webhook_id: w.id,
            event_id: ev.event_id,
            event_type: ev.event_type,
            tenant_id: w.tenant_id.clone(),
            status: DeliveryStatus::Pending,
            status_code: None,
            response_body: None,
            error_message: None,
            attempt_number: 0,
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
            delivered_at: None,
        };
        jobs.push((w.id, Job::from_row(&row, Arc::from(ev.payload))));
        rows.push(row);
    }
    (rows, jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(since: Option<&str>, until: Option<&str>, ty: Option<&str>) -> ReplayInput {
        ReplayInput {
            since: since.map(Into::into),
            until: until.map(Into::into),
            event_type: ty.map(Into::into),
        }
    }

    fn field(r: ApiResult<Window>) -> String {
        r.unwrap_err().field.unwrap_or_default()
    }

    #[test]
    fn the_window_is_checked_field_by_field() {
        let now = Utc::now();
        assert_eq!(field(window(&input(None, None, None), now)), "since");
        assert_eq!(
            field(window(&input(Some("yesterday"), None, None), now)),
            "since"
        );
        let s = "2026-11-01T00:00:00Z";
        assert_eq!(
            field(window(&input(Some(s), Some("x"), None), now)),
            "until"
        );
        assert_eq!(field(window(&input(Some(s), Some(s), None), now)), "until");
        let late = "2026-11-08T00:00:01Z";
        assert_eq!(
            field(window(&input(Some(s), Some(late), None), now)),
            "since"
        );
        let ok = "2026-11-08T00:00:00Z";
        assert!(window(&input(Some(s), Some(ok), None), now).is_ok());
        for bad in ["*", "claim/*", "a b"] {
            assert_eq!(
                field(window(&input(Some(s), Some(ok), Some(bad)), now)),
                "event_type"
            );
        }
        let w = window(&input(Some(s), Some(ok), Some("claim/opened")), now).unwrap();
        assert_eq!(w.event_type.as_deref(), Some("claim/opened"));
    }
}
