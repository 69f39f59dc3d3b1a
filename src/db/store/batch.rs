//! Multi-row writes on the hot paths (intake, recorder): the one place where the backends differ.
//!
//! Every async SQLite query is a hop to the blocking pool, so the SQLite arm runs the whole batch as
//! sync diesel in one blocking task, one row per statement: single-row statements hit diesel's
//! prepared-statement cache, whereas a multi-row `INSERT` of a new size is parsed again every time
//! (the profile of the steady benchmark showed SQLite's parser at 8% of the server's CPU).
//! PostgreSQL sends multi-row inserts in chunks below its bind limit (one round trip per chunk).

use diesel::prelude::{ExpressionMethods, QueryDsl};
use diesel::result::QueryResult;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::db::models::{DeliveryOutcome, DeliveryRow, EventRow, NewAttemptRow};
use crate::db::schema::{
    sys_webhook_attempts as a, sys_webhook_deliveries as d, sys_webhook_events as e,
};
use crate::db::SqliteConn;

/// PostgreSQL accepts at most 65535 bind parameters per statement.
const PG_MAX_BINDS: usize = 65_000;
const EVENT_COLUMNS: usize = 6;
const DELIVERY_COLUMNS: usize = 14;
const ATTEMPT_COLUMNS: usize = 8;

/// Batched writes both backends implement.
pub trait BatchWrite {
    /// Inserts events and their deliveries (inside the caller's transaction).
    fn insert_intake(
        &mut self,
        events: Vec<EventRow>,
        deliveries: Vec<DeliveryRow>,
    ) -> BoxFuture<'_, QueryResult<()>>;
    /// Writes attempt rows and the resulting delivery states in one transaction of its own.
    /// A cancelled delivery stays cancelled.
    fn write_outcomes(
        &mut self,
        attempts: Vec<NewAttemptRow>,
        outcomes: Vec<(String, DeliveryOutcome)>,
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
    ) -> BoxFuture<'_, QueryResult<()>> {
        self.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                for row in &attempts {
                    diesel::RunQueryDsl::execute(diesel::insert_into(a::table).values(row), c)?;
                }
                for (id, outcome) in &outcomes {
                    let target = d::table
                        .filter(d::delivery_id.eq(id))
                        .filter(d::status.ne("cancelled"));
                    diesel::RunQueryDsl::execute(diesel::update(target).set(outcome), c)?;
                }
                Ok(())
            })
        })
    }
}

impl BatchWrite for diesel_async::AsyncPgConnection {
    fn insert_intake(
        &mut self,
        events: Vec<EventRow>,
        deliveries: Vec<DeliveryRow>,
    ) -> BoxFuture<'_, QueryResult<()>> {
        async move {
            for chunk in events.chunks(PG_MAX_BINDS / EVENT_COLUMNS) {
                diesel_async::RunQueryDsl::execute(
                    diesel::insert_into(e::table).values(chunk),
                    &mut *self,
                )
                .await?;
            }
            for chunk in deliveries.chunks(PG_MAX_BINDS / DELIVERY_COLUMNS) {
                diesel_async::RunQueryDsl::execute(
                    diesel::insert_into(d::table).values(chunk),
                    &mut *self,
                )
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
    ) -> BoxFuture<'_, QueryResult<()>> {
        use diesel_async::AsyncConnection;
        async move {
            self.transaction::<_, diesel::result::Error, _>(async move |c| {
                for chunk in attempts.chunks(PG_MAX_BINDS / ATTEMPT_COLUMNS) {
                    diesel_async::RunQueryDsl::execute(
                        diesel::insert_into(a::table).values(chunk),
                        c,
                    )
                    .await?;
                }
                for (id, outcome) in &outcomes {
                    let target = d::table
                        .filter(d::delivery_id.eq(id))
                        .filter(d::status.ne("cancelled"));
                    diesel_async::RunQueryDsl::execute(diesel::update(target).set(outcome), c)
                        .await?;
                }
                Ok(())
            })
            .await
        }
        .boxed()
    }
}
