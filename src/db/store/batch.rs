//! Multi-row writes on the hot paths (intake, recorder): the one place where the backends differ.
//!
//! Every async SQLite query is a hop to the blocking pool, so the SQLite arm runs the whole batch as
//! sync diesel in one blocking task, writing one row per statement: single-row statements hit
//! diesel's prepared-statement cache, whereas a multi-row `INSERT` of a new size is parsed again
//! every time (the profile of the steady benchmark showed SQLite's parser at 8% of the server's
//! CPU). diesel caches no `UPDATE` it builds, so the delivery rows' update is a statement of our
//! own with a static query id.
//! PostgreSQL writes each batch as statements over `unnest` arrays: one fixed statement per table,
//! prepared once, one round trip, whatever the batch size (and no bind-parameter limit).

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use diesel::pg::sql_types::Array;
use diesel::pg::Pg;
use diesel::prelude::ExpressionMethods;
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::db::models::{DeliveryOutcome, DeliveryRow, EventRow, NewAttemptRow};
use crate::db::schema::{
    sys_webhook_attempts as a, sys_webhook_deliveries as d, sys_webhook_events as e,
};
use crate::db::SqliteConn;
use crate::domain::DeliveryStatus;

/// Keeps the body a transform produced for `sent_id`; a later send (a manual retry runs the
/// current program) replaces it. A macro: the statement's type differs per backend's runner.
macro_rules! transformed_upsert {
    ($sent_id:expr, $body:expr) => {{
        use crate::db::schema::sys_webhook_transformed_bodies as t;
        let now = crate::db::store::now();
        diesel::insert_into(t::table)
            .values((
                t::sent_id.eq($sent_id),
                t::body.eq($body),
                t::created_at.eq(now),
            ))
            .on_conflict(t::sent_id)
            .do_update()
            .set((t::body.eq($body), t::created_at.eq(now)))
    }};
}

/// Batched writes both backends implement.
pub trait BatchWrite {
    /// Inserts events and their deliveries (inside the caller's transaction; on PostgreSQL as one
    /// statement, which is atomic without one).
    fn insert_intake(
        &mut self,
        events: Vec<EventRow>,
        deliveries: Vec<DeliveryRow>,
    ) -> BoxFuture<'_, QueryResult<()>>;
    /// Writes attempt rows, the resulting delivery states and the bodies transforms produced
    /// (sent id, body) in one transaction of its own. A cancelled delivery stays cancelled.
    /// `fences` (PostgreSQL): (webhook id, lease epoch, delivery ids): those deliveries' rows are
    /// written only while the webhook's lease still has that epoch.
    fn write_outcomes(
        &mut self,
        attempts: Vec<NewAttemptRow>,
        outcomes: Vec<(String, DeliveryOutcome)>,
        transformed: Vec<(String, String)>,
        fences: Vec<Fence>,
    ) -> BoxFuture<'_, QueryResult<()>>;
}

impl BatchWrite for SqliteConn {
    fn insert_intake(
        &mut self,
        events: Vec<EventRow>,
        deliveries: Vec<DeliveryRow>,
    ) -> BoxFuture<'_, QueryResult<()>> {
        self.spawn_blocking(move |c| {
            for row in &events {
                diesel::RunQueryDsl::execute(diesel::insert_into(e::table).values(row), c)?;
            }
            for row in &deliveries {
                diesel::RunQueryDsl::execute(diesel::insert_into(d::table).values(row), c)?;
            }
            Ok(())
        })
    }

    fn write_outcomes(
        &mut self,
        attempts: Vec<NewAttemptRow>,
        outcomes: Vec<(String, DeliveryOutcome)>,
        transformed: Vec<(String, String)>,
        _fences: Vec<Fence>,
    ) -> BoxFuture<'_, QueryResult<()>> {
        // One process serves a SQLite file: nobody else can own its webhooks.
        self.spawn_blocking(move |c| {
            // Outcomes do not wait for the disk (README, Reliability): one fsync per recorder
            // batch kept the one writer connection, and so the intake's next commit, waiting. The
            // WAL is written in order, so the next full commit (an intake's) makes these durable
            // too; a power cut before it loses only outcomes, and those deliveries go again.
            diesel::connection::SimpleConnection::batch_execute(c, SYNC_NORMAL)?;
            let written = c.immediate_transaction(|c| {
                for row in &attempts {
                    diesel::RunQueryDsl::execute(diesel::insert_into(a::table).values(row), c)?;
                }
                for (id, body) in &transformed {
                    diesel::RunQueryDsl::execute(transformed_upsert!(id, body), c)?;
                }
                for (id, outcome) in &latest_per_delivery(outcomes) {
                    diesel::RunQueryDsl::execute(SqliteOutcomeUpdate { id, outcome }, c)?;
                }
                Ok(())
            });
            // Back before anything else uses the connection; a pragma takes no lock, so this
            // does not fail for want of one.
            diesel::connection::SimpleConnection::batch_execute(c, SYNC_FULL)?;
            written
        })
    }
}

impl BatchWrite for diesel_async::AsyncPgConnection {
    fn insert_intake(
        &mut self,
        events: Vec<EventRow>,
        deliveries: Vec<DeliveryRow>,
    ) -> BoxFuture<'_, QueryResult<()>> {
        use diesel_async::RunQueryDsl;
        async move {
            // A replay inserts deliveries of events stored earlier: no event rows.
            if !events.is_empty() || !deliveries.is_empty() {
                pg_intake_insert(events, deliveries)
                    .execute(&mut *self)
                    .await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn write_outcomes(
        &mut self,
        attempts: Vec<NewAttemptRow>,
        outcomes: Vec<(String, DeliveryOutcome)>,
        transformed: Vec<(String, String)>,
        fences: Vec<Fence>,
    ) -> BoxFuture<'_, QueryResult<()>> {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        async move {
            self.transaction::<_, diesel::result::Error, _>(async move |c| {
                // As on SQLite, outcomes do not wait for the disk (README, Reliability): the
                // WAL is flushed in order, so the next intake commit makes them durable too; a
                // crash of PostgreSQL before it loses only outcomes, and those deliveries go again.
                diesel_async::SimpleAsyncConnection::batch_execute(c, PG_RECORDER_SETTINGS).await?;
                let (mut attempts, mut outcomes) = (attempts, outcomes);
                if !fences.is_empty() {
                    let keys: Vec<(i64, i64)> = fences.iter().map(|f| (f.0, f.1)).collect();
                    let held: std::collections::HashSet<i64> =
                        crate::db::store::cluster::fenced(c, &keys)
                            .await?
                            .into_iter()
                            .collect();
                    let stale: std::collections::HashSet<String> = fences
                        .into_iter()
                        .filter(|f| !held.contains(&f.0))
                        .flat_map(|f| f.2)
                        .collect();
                    if !stale.is_empty() {
                        tracing::warn!(
                            deliveries = stale.len(),
                            "outcomes of webhooks this node no longer owns were not recorded"
                        );
                        attempts.retain(|a| !stale.contains(&a.delivery_id));
                        outcomes.retain(|(id, _)| !stale.contains(id));
                    }
                }
                let attempts = pg_attempts_insert(attempts);
                let updates = pg_outcomes_update(latest_per_delivery(outcomes));
                attempts.execute(c).await?;
                updates.execute(c).await?;
                // Only transformed sends have a row here: rare next to the attempts.
                for (id, body) in &transformed {
                    transformed_upsert!(id, body).execute(c).await?;
                }
                Ok(())
            })
            .await
        }
        .boxed()
    }
}

/// The recorder's PostgreSQL transactions commit without waiting for the WAL flush, and find the
/// rows they update by primary key only. Given a batch of a few thousand outcomes, the planner
/// chose a hash join over a scan of the whole deliveries table (160–280 ms a batch at 190,000
/// rows, and growing with the table); a lookup per row costs the same at any table size.
const PG_RECORDER_SETTINGS: &str = "SET LOCAL synchronous_commit = off; \
     SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; \
     SET LOCAL enable_mergejoin = off";

/// The recorder's transactions commit without an fsync.
const SYNC_NORMAL: &str = "PRAGMA synchronous = NORMAL";

/// Every other write on the writer (an acknowledged publish above all) waits for the disk.
const SYNC_FULL: &str = "PRAGMA synchronous = FULL";

/// One delivery's outcome as one `UPDATE` by primary key, a statement with a static query id: diesel
/// prepares it once per connection and keeps it (it caches no `UPDATE` it builds, so one per row
/// was parsed again each time, 7% of the server's CPU in the one-event-per-request profile; one
/// statement over a JSON array of the batch cost 2.8% in decoding the JSON). A cancelled delivery
/// stays cancelled.
struct SqliteOutcomeUpdate<'a> {
    id: &'a str,
    outcome: &'a DeliveryOutcome,
}

/// The query id shared by every [`SqliteOutcomeUpdate`]: its SQL never changes.
struct SqliteOutcomeUpdateId;

impl diesel::query_builder::QueryId for SqliteOutcomeUpdate<'_> {
    type QueryId = SqliteOutcomeUpdateId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for SqliteOutcomeUpdate<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        let o = self.outcome;
        out.push_sql("UPDATE sys_webhook_deliveries SET status = ");
        out.push_bind_param::<Text, _>(&o.status)?;
        out.push_sql(", status_code = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&o.status_code)?;
        out.push_sql(", response_body = ");
        out.push_bind_param::<Nullable<Text>, _>(&o.response_body)?;
        out.push_sql(", error_message = ");
        out.push_bind_param::<Nullable<Text>, _>(&o.error_message)?;
        out.push_sql(", attempt_number = ");
        out.push_bind_param::<BigInt, _>(&o.attempt_number)?;
        out.push_sql(", next_attempt_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&o.next_attempt_at)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&o.updated_at)?;
        out.push_sql(", delivered_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&o.delivered_at)?;
        out.push_sql(" WHERE delivery_id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(" AND status <> ");
        out.push_bind_param::<Text, _>(&DeliveryStatus::Cancelled)?;
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for SqliteOutcomeUpdate<'_> {}

/// (webhook id, lease epoch, delivery ids): outcomes written only while the lease has that epoch.
pub type Fence = (i64, i64, Vec<String>);

/// The boxed statement type of the PostgreSQL `unnest` writes.
type PgQuery = diesel::query_builder::BoxedSqlQuery<'static, Pg, diesel::query_builder::SqlQuery>;

/// Events and their new (pending) deliveries of one intake commit as one statement: the events'
/// `INSERT ... SELECT FROM unnest(arrays)` in a `WITH`, the deliveries' after it. One round trip,
/// and atomic by itself, so a commit with nothing else to do needs no transaction around it. The
/// delivery columns that start empty take their values in SQL.
fn pg_intake_insert(events: Vec<EventRow>, deliveries: Vec<DeliveryRow>) -> PgQuery {
    let mut e = EventColumns::default();
    for r in events {
        e.event_id.push(r.event_id);
        e.tenant_id.push(r.tenant_id);
        e.event_type.push(r.event_type);
        e.idempotency_key.push(r.idempotency_key);
        e.payload.push(r.payload);
        e.created_at.push(r.created_at);
    }
    let mut d = DeliveryColumns::default();
    for r in deliveries {
        d.delivery_id.push(r.delivery_id);
        d.webhook_id.push(r.webhook_id);
        d.event_id.push(r.event_id);
        d.event_type.push(r.event_type);
        d.tenant_id.push(r.tenant_id);
        d.status.push(r.status);
        d.attempt_number.push(r.attempt_number);
        d.created_at.push(r.created_at);
    }
    diesel::sql_query(
        "WITH new_events AS (INSERT INTO sys_webhook_events (event_id, tenant_id, event_type, \
         idempotency_key, payload, created_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamp[])) \
         INSERT INTO sys_webhook_deliveries (delivery_id, webhook_id, event_id, event_type, tenant_id, \
         status, attempt_number, created_at, updated_at) \
         SELECT d, w, e, t, tn, s, a, c, c FROM unnest($7::text[], $8::int8[], $9::text[], $10::text[], \
         $11::text[], $12::text[], $13::int8[], $14::timestamp[]) AS v(d, w, e, t, tn, s, a, c)",
    )
    .into_boxed()
    .bind::<Array<Text>, _>(e.event_id)
    .bind::<Array<Text>, _>(e.tenant_id)
    .bind::<Array<Text>, _>(e.event_type)
    .bind::<Array<Nullable<Text>>, _>(e.idempotency_key)
    .bind::<Array<Text>, _>(e.payload)
    .bind::<Array<Timestamp>, _>(e.created_at)
    .bind::<Array<Text>, _>(d.delivery_id)
    .bind::<Array<BigInt>, _>(d.webhook_id)
    .bind::<Array<Text>, _>(d.event_id)
    .bind::<Array<Text>, _>(d.event_type)
    .bind::<Array<Text>, _>(d.tenant_id)
    .bind::<Array<Text>, _>(d.status)
    .bind::<Array<BigInt>, _>(d.attempt_number)
    .bind::<Array<Timestamp>, _>(d.created_at)
}

/// Keeps the last outcome of each delivery (a batch may hold `retrying` then `success` of one).
pub fn latest_per_delivery(
    outcomes: Vec<(String, DeliveryOutcome)>,
) -> Vec<(String, DeliveryOutcome)> {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<(String, DeliveryOutcome)> = Vec::with_capacity(outcomes.len());
    for (id, o) in outcomes {
        match index.get(&id) {
            Some(&i) => out[i].1 = o,
            None => {
                index.insert(id.clone(), out.len());
                out.push((id, o));
            }
        }
    }
    out
}

/// One `INSERT ... SELECT FROM unnest(arrays)`: a single prepared statement whatever the batch
/// size, one round trip (per-row statements cost a round trip each: 5,000 rows/s at best).
fn pg_attempts_insert(rows: Vec<NewAttemptRow>) -> PgQuery {
    let mut cols = AttemptColumns::default();
    for r in rows {
        cols.delivery_id.push(r.delivery_id);
        cols.webhook_id.push(r.webhook_id);
        cols.attempt_number.push(r.attempt_number);
        cols.status_code.push(r.status_code);
        cols.error_message.push(r.error_message);
        cols.response_body.push(r.response_body);
        cols.duration_ms.push(r.duration_ms);
        cols.attempted_at.push(r.attempted_at);
        cols.batch_id.push(r.batch_id);
    }
    diesel::sql_query(
        "INSERT INTO sys_webhook_attempts (delivery_id, webhook_id, attempt_number, status_code, \
         error_message, response_body, duration_ms, attempted_at, batch_id) \
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
         $7::int8[], $8::timestamp[], $9::text[])",
    )
    .into_boxed()
    .bind::<Array<Text>, _>(cols.delivery_id)
    .bind::<Array<BigInt>, _>(cols.webhook_id)
    .bind::<Array<BigInt>, _>(cols.attempt_number)
    .bind::<Array<Nullable<BigInt>>, _>(cols.status_code)
    .bind::<Array<Nullable<Text>>, _>(cols.error_message)
    .bind::<Array<Nullable<Text>>, _>(cols.response_body)
    .bind::<Array<BigInt>, _>(cols.duration_ms)
    .bind::<Array<Timestamp>, _>(cols.attempted_at)
    .bind::<Array<Nullable<Text>>, _>(cols.batch_id)
}

/// The statement of [`pg_outcomes_update`]; a cancelled delivery stays cancelled, like the
/// SQLite arm's filter.
static PG_OUTCOMES_UPDATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE sys_webhook_deliveries AS d SET status = v.status, status_code = v.status_code, \
         response_body = v.response_body, error_message = v.error_message, \
         attempt_number = v.attempt_number, next_attempt_at = v.next_attempt_at, \
         updated_at = v.updated_at, delivered_at = v.delivered_at \
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int8[], \
         $7::timestamp[], $8::timestamp[], $9::timestamp[]) \
         AS v(delivery_id, status, status_code, response_body, error_message, attempt_number, \
         next_attempt_at, updated_at, delivered_at) \
         WHERE d.delivery_id = v.delivery_id AND d.status <> '{}'",
        DeliveryStatus::Cancelled.as_str()
    )
});

/// One `UPDATE ... FROM unnest(arrays)` for every outcome of a batch (ids must be distinct).
fn pg_outcomes_update(rows: Vec<(String, DeliveryOutcome)>) -> PgQuery {
    let mut ids = Vec::with_capacity(rows.len());
    let mut cols = OutcomeColumns::default();
    for (id, o) in rows {
        ids.push(id);
        cols.status.push(o.status);
        cols.status_code.push(o.status_code);
        cols.response_body.push(o.response_body);
        cols.error_message.push(o.error_message);
        cols.attempt_number.push(o.attempt_number);
        cols.next_attempt_at.push(o.next_attempt_at);
        cols.updated_at.push(o.updated_at);
        cols.delivered_at.push(o.delivered_at);
    }
    diesel::sql_query(PG_OUTCOMES_UPDATE.as_str())
        .into_boxed()
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<Text>, _>(cols.status)
        .bind::<Array<Nullable<BigInt>>, _>(cols.status_code)
        .bind::<Array<Nullable<Text>>, _>(cols.response_body)
        .bind::<Array<Nullable<Text>>, _>(cols.error_message)
        .bind::<Array<BigInt>, _>(cols.attempt_number)
        .bind::<Array<Nullable<Timestamp>>, _>(cols.next_attempt_at)
        .bind::<Array<Timestamp>, _>(cols.updated_at)
        .bind::<Array<Nullable<Timestamp>>, _>(cols.delivered_at)
}

#[derive(Default)]
struct EventColumns {
    event_id: Vec<String>,
    tenant_id: Vec<String>,
    event_type: Vec<String>,
    idempotency_key: Vec<Option<String>>,
    payload: Vec<String>,
    created_at: Vec<NaiveDateTime>,
}

#[derive(Default)]
struct DeliveryColumns {
    delivery_id: Vec<String>,
    webhook_id: Vec<i64>,
    event_id: Vec<String>,
    event_type: Vec<String>,
    tenant_id: Vec<String>,
    status: Vec<DeliveryStatus>,
    attempt_number: Vec<i64>,
    created_at: Vec<NaiveDateTime>,
}

#[derive(Default)]
struct AttemptColumns {
    delivery_id: Vec<String>,
    webhook_id: Vec<i64>,
    attempt_number: Vec<i64>,
    status_code: Vec<Option<i64>>,
    error_message: Vec<Option<String>>,
    response_body: Vec<Option<String>>,
    duration_ms: Vec<i64>,
    attempted_at: Vec<NaiveDateTime>,
    batch_id: Vec<Option<String>>,
}

#[derive(Default)]
struct OutcomeColumns {
    status: Vec<DeliveryStatus>,
    status_code: Vec<Option<i64>>,
    response_body: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    attempt_number: Vec<i64>,
    next_attempt_at: Vec<Option<NaiveDateTime>>,
    updated_at: Vec<NaiveDateTime>,
    delivered_at: Vec<Option<NaiveDateTime>>,
}
