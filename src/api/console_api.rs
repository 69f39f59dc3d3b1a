//! The JSON calls the ops console needs (console contract §6): `GET /api/whoami`, `GET /api/stats`
//! and `POST /api/webhooks/{id}/recover`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{self, Admin};
use super::body::{from_value, path_id, read_json, Query};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::actors::messages::{Dispatch, Job};
use crate::db::store::recover::{payloads, reopen_failed_batch};
use crate::db::store::stats::{
    attempt_groups, delivery_counts, Histogram, StatsScope, StatusCount,
};
use crate::domain::ALL_STATUSES;

/// Routes of this resource (after the delivery routes, like every `/api/webhooks/{id}/…`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/whoami").route(web::get().to(whoami)))
        .service(web::resource("/api/stats").route(web::get().to(stats)))
        .service(web::resource("/api/webhooks/{id}/recover").route(web::post().to(recover)));
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

async fn whoami(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
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

async fn stats(req: HttpRequest, st: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let q = Query::parse(&req, &["window", "tenant_id", "webhook_id", "event_type"])?;
    let window = q.str("window").unwrap_or("1h").to_string();
    let seconds = window_seconds(&window)?;
    if let Some(t) = q.str("event_type") {
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
        tenant_id: scope_tenant(&admin, q.str("tenant_id"))?,
        webhook_id: q.int("webhook_id")?,
        event_type: q.str("event_type").map(str::to_string),
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
    for status in ALL_STATUSES {
        let n: i64 = counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.n)
            .sum();
        doc.insert(status.into(), json!(n));
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

/// Enabled webhooks in scope by breaker state, from the live registry.
fn circuits(st: &AppState, s: &StatsScope) -> Value {
    let reg = st.actors.registry.read().unwrap_or_else(|p| p.into_inner());
    let mut counts = [0u64; 3];
    for w in reg.all(s.tenant_id.as_deref()) {
        let wanted_type = s
            .event_type
            .as_deref()
            .is_none_or(|t| w.event_type == t || w.event_type == "*");
        if !w.enabled || s.webhook_id.is_some_and(|id| id != w.id) || !wanted_type {
            continue;
        }
        let Some(status) = reg.status(w.id) else {
            continue;
        };
        match status.view(w.id, None, 0).circuit.state.as_str() {
            "open" => counts[1] += 1,
            "half_open" => counts[2] += 1,
            _ => counts[0] += 1,
        }
    }
    json!({ "closed": counts[0], "open": counts[1], "half_open": counts[2] })
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

async fn recover(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = auth::admin(&req, &st).await?;
    let id = path_id(&id, "id")?;
    let input: RecoverInput = from_value(
        read_json(&req, payload, st.config.max_body_bytes).await?,
        "",
    )?;
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
        jobs.push((
            r.webhook_id,
            Job {
                delivery_id: r.delivery_id.clone(),
                event_id: r.event_id.clone(),
                event_type: r.event_type.clone(),
                payload: Arc::from(payload.as_str()),
                attempts_made: u32::try_from(r.attempt_number).unwrap_or(0),
                due: None,
            },
        ));
    }
    st.actors.router.do_send(Dispatch { jobs, force: true });
    Ok(())
}

/// An RFC 3339 query parameter as a stored (UTC) time; malformed → 400 (the deliveries' time filters).
pub fn time_param(v: Option<&str>, name: &str) -> ApiResult<Option<NaiveDateTime>> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.naive_utc())
            .map_err(|_| ApiError::bad_param(name, format!("`{s}` is not an RFC 3339 time")))
    })
    .transpose()
}
