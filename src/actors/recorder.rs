//! `DeliveryRecorder`: takes attempt outcomes from every webhook actor and writes them in batches.
//!
//! A batch is flushed when it is full or a few ms after its first row; attempt rows and delivery
//! updates of one batch share one transaction. A failed write is retried (with backoff) and never
//! dropped. `pending` counts rows handed but not yet written: webhook actors pause while it is high,
//! which is the backpressure that keeps memory bounded when the database is slow or away.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::messages::{Flush, Outcome, Record};
use crate::config::Tuning;
use crate::db::models::{DeliveryOutcome, NewAttemptRow};
use crate::db::store::batch::BatchWrite;
use crate::db::DbPool;
use crate::metrics::Metrics;
use crate::with_conn;

/// Rows handed to the recorder beyond which webhook actors stop starting attempts.
pub const HIGH_WATER: usize = 10_000;

/// The recorder actor.
pub struct DeliveryRecorder {
    db: DbPool,
    metrics: Metrics,
    batch: usize,
    flush_every: Duration,
    buffer: Vec<Outcome>,
    /// A write is under way (one at a time keeps updates of one delivery in order).
    writing: bool,
    timer: Option<SpawnHandle>,
    /// Rows handed but not yet written; shared with the webhook actors for backpressure.
    pending: Arc<AtomicUsize>,
    /// Callers of [`Flush`], answered once everything before them is written.
    waiters: Vec<oneshot::Sender<()>>,
}

impl DeliveryRecorder {
    /// A recorder writing through `db`.
    pub fn new(db: DbPool, metrics: Metrics, tuning: &Tuning, pending: Arc<AtomicUsize>) -> Self {
        Self {
            db,
            metrics,
            batch: tuning.recorder_batch,
            flush_every: tuning.recorder_flush_every,
            buffer: Vec::new(),
            writing: false,
            timer: None,
            pending,
            waiters: Vec::new(),
        }
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        if self.writing {
            return;
        }
        if self.buffer.is_empty() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        let rows = std::mem::take(&mut self.buffer);
        let n = rows.len();
        self.writing = true;
        self.metrics.recorder_batch.observe(n as f64);
        let db = self.db.clone();
        // Spawned as its own task: a write is never dropped half-way (dropping an in-flight SQLite
        // query calls `block_in_place`, which panics on actix's threads).
        let task = tokio::spawn(write_with_retry(db, rows));
        ctx.spawn(
            async move { task.await.is_ok() }
                .into_actor(self)
                .map(move |_, act, ctx| {
                    act.writing = false;
                    act.pending.fetch_sub(n, Ordering::Relaxed);
                    act.write(ctx);
                }),
        );
    }
}

/// Why a batch was not written.
enum WriteError {
    /// The database is unreachable or the connection broke: try the same batch again later.
    Unavailable(String),
    /// The database refused the statements (a constraint, bad data): retrying as is cannot help.
    Rejected(String),
}

/// Rejections of one batch before it is split to isolate the row at fault.
const REJECTIONS_BEFORE_SPLIT: u32 = 3;

/// Writes one batch, retrying until the database takes it. A batch the database keeps refusing is
/// halved until the refused row stands alone, which is logged and dropped, so that one bad row can
/// never stall every outcome behind it.
fn write_with_retry(db: DbPool, rows: Vec<Outcome>) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut backoff = Duration::from_millis(50);
        let mut rejections = 0;
        let started = std::time::Instant::now();
        loop {
            let e = match write_once(&db, &rows).await {
                Ok(()) => {
                    tracing::debug!(
                        rows = rows.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "recorder batch written"
                    );
                    return;
                }
                Err(WriteError::Unavailable(e)) => e,
                Err(WriteError::Rejected(e)) => {
                    rejections += 1;
                    if rejections >= REJECTIONS_BEFORE_SPLIT {
                        if rows.len() == 1 {
                            tracing::error!(error = %e, delivery_id = %rows[0].delivery_id, "outcome refused by the database; dropped");
                            return;
                        }
                        let mut rows = rows;
                        let second = rows.split_off(rows.len() / 2);
                        write_with_retry(db.clone(), rows).await;
                        write_with_retry(db, second).await;
                        return;
                    }
                    e
                }
            };
            tracing::warn!(error = %e, rows = rows.len(), "recorder write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

async fn write_once(db: &DbPool, rows: &[Outcome]) -> Result<(), WriteError> {
    let attempts = rows
        .iter()
        .filter_map(|o| o.attempt.clone().map(NewAttemptRow::from))
        .collect();
    let updates = rows
        .iter()
        .map(|o| {
            (
                o.delivery_id.clone(),
                DeliveryOutcome::from(o.update.clone()),
            )
        })
        .collect();
    let mut conn = db
        .write()
        .await
        .map_err(|e| WriteError::Unavailable(e.to_string()))?;
    with_conn!(&mut conn, c => c.write_outcomes(attempts, updates).await).map_err(classify)
}

fn classify(e: diesel::result::Error) -> WriteError {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) => {
            WriteError::Unavailable(e.to_string())
        }
        // SQLite's busy/locked (another process holds the file) passes with time.
        E::DatabaseError(_, ref info)
            if info.message().contains("locked") || info.message().contains("busy") =>
        {
            WriteError::Unavailable(e.to_string())
        }
        E::DatabaseError(..) | E::SerializationError(_) | E::DeserializationError(_) => {
            WriteError::Rejected(e.to_string())
        }
        other => WriteError::Unavailable(other.to_string()),
    }
}

impl Actor for DeliveryRecorder {
    type Context = Context<Self>;
}

impl Handler<Record> for DeliveryRecorder {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Self::Context) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.buffer.push(msg.0);
        if self.buffer.len() >= self.batch {
            self.write(ctx);
        } else if self.timer.is_none() && !self.writing {
            self.timer = Some(ctx.run_later(self.flush_every, |act, ctx| {
                act.timer = None;
                act.write(ctx);
            }));
        }
    }
}

impl Handler<Flush> for DeliveryRecorder {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        if !self.writing {
            self.write(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
