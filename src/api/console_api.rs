//! The JSON calls the ops console needs (README, Console): `GET /api/whoami`, `GET /api/stats`
//! and `POST /api/webhooks/{id}/recover`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::body::path_id;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::openapi::{op, Op};
use super::AppState;
use crate::actors::messages::Job;
use crate::db::store::recover::{payloads, reopen_failed_batch};
use crate::db::store::stats::{
    attempt_groups, delivery_counts, Histogram, StatsScope, StatusCount,
};
use crate::domain::DeliveryStatus;

/// Operations of this resource (after the delivery routes, like every `/api/webhooks/{id}/…`).
pub fn operations() -> Vec<Op> {
    vec![
        op(__path_whoami, whoami),
        op(__path_stats, stats),
        op(__path_recover, recover),
    ]
}

/// Buckets in every stats answer.
pub const BUCKETS: i64 = 60;

/// The windows `/api/stats` accepts, with their length in seconds.
pub const WINDOWS: [(&str, i64); 6] = [
    ("5m", 300),
    ("15m", 900),
    ("1h", 3600),
    ("6h", 21_600),
    ("24h", 86_400),
    ("7d", 604_800),
];

/// Who the caller is, as `GET /api/whoami` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiView {
    /// Always `admin`: only admins may sign in to the console.
    pub role: String,
    /// The key's tenant; null for the global admin.
    pub tenant_id: Option<String>,
    /// The tenant key used (absent for the global admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Who the caller is (the console's sign-in check).
#[utoipa::path(get, path = "/api/whoami",
    responses((status = 200, description = "The caller", body = WhoamiView)))]
async fn whoami(admin: Admin) -> ApiResult<HttpResponse> {
    // The global admin's `X-Tenant-ID` is a choice of view, not who it is.
    let tenant_id = if admin.global { None } else { admin.tenant };
    Ok(HttpResponse::Ok().json(WhoamiView {
        role: "admin".into(),
        tenant_id,
        key_id: admin.key_id,
    }))
}

/// The tenant a scoped read covers: `tenant_id` (checked), else the caller's.
fn scope_tenant(admin: &Admin, asked: Option<&str>) -> ApiResult<Option<String>> {
    match asked {
        Some(t) => {
            super::validate::tenant_id(t).map_err(|m| ApiError::bad_param("tenant_id", m))?;
            admin.check_tenant(t)?;
            Ok(Some(t.to_string()))
        }
        None => Ok(admin.tenant.clone()),
    }
}

fn window_seconds(w: &str) -> ApiResult<i64> {
    WINDOWS
        .iter()
        .find(|(name, _)| *name == w)
        .map(|(_, s)| *s)
        .ok_or_else(|| ApiError::bad_param("window", "must be one of 5m, 15m, 1h, 6h, 24h, 7d"))
}

/// Query of `GET /api/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The window, ending now (default `1h`).
    #[param(pattern = r"^(5m|15m|1h|6h|24h|7d)$")]
    pub window: Option<String>,
    /// Only this tenant (the global admin; a tenant key sees its own).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub tenant_id: Option<String>,
    /// Only this webhook.
    pub webhook_id: Option<i64>,
    /// Only this event type.
    pub event_type: Option<String>,
}

/// Delivery and attempt figures over a window, in 60 buckets (computed in the database).
#[utoipa::path(get, path = "/api/stats", params(StatsQuery),
    responses((status = 200, description = "Counts, success rate, latency percentiles and 60 buckets")))]
async fn stats(
    admin: Admin,
    Query(q): Query<StatsQuery>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let window = q.window.clone().unwrap_or_else(|| "1h".to_string());
    let seconds = window_seconds(&window)?;
    if let Some(t) = &q.event_type {
        super::validate::event_name(t).map_err(|m| ApiError::bad_param("event_type", m))?;
    }
    // Now, rounded up to a whole second so that buckets start on whole seconds (see
    // `stats::attempts_sql`) and what happened this very second is in the window.
    let now = Utc::now();
    let to = now.trunc_subsecs(0)
        + if now.timestamp_subsec_nanos() > 0 {
            Duration::seconds(1)
        } else {
            Duration::zero()
        };
    let from = to - Duration::seconds(seconds);
    let scope = StatsScope {
        from: from.naive_utc(),
        to: to.naive_utc(),
        bucket_seconds: seconds / BUCKETS,
        tenant_id: scope_tenant(&admin, q.tenant_id.as_deref())?,
        webhook_id: q.webhook_id,
        event_type: q.event_type,
    };
    let mut conn = st.db.read().await?;
    let counts = delivery_counts(&mut conn, &scope).await?;
    let groups = attempt_groups(&mut conn, &scope).await?;
    drop(conn);
    let mut doc = json!({
        "window": window, "from": from, "to": to, "bucket_seconds": scope.bucket_seconds,
        "circuits": circuits(&st, &scope),
    });
    let deliveries = delivery_doc(&counts);
    let (attempts, latency, buckets) = attempt_doc(&scope, &groups, from);
    let (ok, failed) = (
        deliveries["success"].as_i64(),
        deliveries["failed"].as_i64(),
    );
    let rate = match (ok.unwrap_or(0), failed.unwrap_or(0)) {
        (0, 0) => Value::Null,
        (s, f) => json!(s as f64 / (s + f) as f64),
    };
    if let Some(o) = doc.as_object_mut() {
        o.insert("deliveries".into(), deliveries);
        o.insert("success_rate".into(), rate);
        o.insert("attempts".into(), attempts);
        o.insert("latency_ms".into(), latency);
        o.insert("buckets".into(), buckets);
    }
    Ok(HttpResponse::Ok().json(doc))
}

fn delivery_doc(counts: &[StatusCount]) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert(
        "total".into(),
        json!(counts.iter().map(|c| c.n).sum::<i64>()),
    );
    for status in DeliveryStatus::ALL {
        let n: i64 = counts
            .iter()
            .filter(|c| c.status == status.as_str())
            .map(|c| c.n)
            .sum();
        doc.insert(status.as_str().into(), json!(n));
    }
    Value::Object(doc)
}

/// Totals, overall percentiles and the 60 buckets from the grouped attempt rows.
fn attempt_doc(
    s: &StatsScope,
    groups: &[crate::db::store::stats::AttemptGroup],
    from: DateTime<Utc>,
) -> (Value, Value, Value) {
    let mut all = Histogram::default();
    let mut per: Vec<(Histogram, u64)> = vec![(Histogram::default(), 0); BUCKETS as usize];
    let mut ok_total = 0;
    for g in groups {
        let n = g.n.max(0) as u64;
        all.add(g.duration_ms, n);
        if g.ok == 1 {
            ok_total += n;
        }
        if let Some(b) = usize::try_from(g.bucket).ok().and_then(|i| per.get_mut(i)) {
            b.0.add(g.duration_ms, n);
            if g.ok == 1 {
                b.1 += n;
            }
        }
    }
    let attempts = json!({ "total": all.len(), "ok": ok_total, "failed": all.len() - ok_total });
    let latency =
        json!({ "p50": all.percentile(50), "p90": all.percentile(90), "p99": all.percentile(99) });
    let buckets: Vec<Value> = per
        .iter()
        .enumerate()
        .map(|(i, (h, ok))| {
            json!({
                "start": from + Duration::seconds(i as i64 * s.bucket_seconds),
                "attempts": h.len(), "ok": ok, "failed": h.len() - ok,
                "latency_ms": { "p50": h.percentile(50), "p99": h.percentile(99) },
            })
        })
        .collect();
    (attempts, latency, Value::Array(buckets))
}

/// Enabled webhooks in scope by breaker state, from the live runtime.
fn circuits(st: &AppState, s: &StatsScope) -> Value {
    let (closed, open, half_open) = st.dispatcher.circuit_counts(|w| {
        s.tenant_id.as_deref().is_none_or(|t| w.tenant_id == t)
            && s.webhook_id.is_none_or(|id| id == w.id)
            && s.event_type
                .as_deref()
                .is_none_or(|t| w.event_type == t || w.event_type == "*")
    });
    json!({ "closed": closed, "open": open, "half_open": half_open })
}

/// Body of `POST /api/webhooks/{id}/recover`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RecoverInput {
    /// RFC 3339; deliveries created at or after it.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339, default now; deliveries created before it.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

fn rfc3339(v: Option<&str>, field: &str) -> ApiResult<Option<NaiveDateTime>> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.naive_utc())
            .map_err(|_| ApiError::validation(field, "must be an RFC 3339 time"))
    })
    .transpose()
}

/// Send every failed delivery of this webhook created in `[since, until)` again, as manual retries.
#[utoipa::path(post, path = "/api/webhooks/{id}/recover", params(("id" = i64, Path, minimum = 1)),
    request_body = RecoverInput,
    responses((status = 202, description = "`{\"deliveries\": N, \"recovered\": N}`")))]
async fn recover(
    admin: Admin,
    id: web::Path<String>,
    Json(input): Json<RecoverInput>,
    st: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id, "id")?;
    let webhook = super::webhooks::load_owned(&st, &admin, id).await?;
    let since = rfc3339(input.since.as_deref(), "since")?
        .ok_or_else(|| ApiError::validation("since", "is required (RFC 3339)"))?;
    let now = Utc::now().naive_utc();
    let until = rfc3339(input.until.as_deref(), "until")?.unwrap_or(now);
    if until <= since {
        return Err(ApiError::validation("until", "must be after since"));
    }
    let mut recovered = 0usize;
    let mut after = String::new();
    loop {
        let mut conn = st.db.write().await?;
        let (rows, next) =
            reopen_failed_batch(&mut conn, webhook.id, since, until, &after, now).await?;
        drop(conn);
        recovered += rows.len();
        hand_over(&st, rows).await?;
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    Ok(HttpResponse::Accepted().json(json!({ "deliveries": recovered, "recovered": recovered })))
}

/// Gives re-opened deliveries to their webhook's actor, as a manual retry does (`force`: they may
/// sit below the actor's paging cursor); one without a stored payload (recorded from outside) goes
/// the retry's own way, which settles it as failed.
async fn hand_over(st: &AppState, rows: Vec<crate::db::models::DeliveryRow>) -> ApiResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let mut conn = st.db.read().await?;
    let found = payloads(&mut conn, &ids).await?;
    drop(conn);
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(payload) = found.get(&r.event_id) else {
            super::deliveries::hand_to_router(st, r).await?;
            continue;
        };
        jobs.push((r.webhook_id, Job::from_row(r, Arc::from(payload.as_str()))));
    }
    st.dispatcher.redispatch_all(jobs);
    Ok(())
}

/// An RFC 3339 query parameter as a stored (UTC) time; malformed → 400 (the deliveries' time
/// filters).
pub fn time_param(v: Option<&str>, name: &str) -> ApiResult<Option<NaiveDateTime>> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.naive_utc())
            .map_err(|_| ApiError::bad_param(name, format!("`{s}` is not an RFC 3339 time")))
    })
    .transpose()
}
