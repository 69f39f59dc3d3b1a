//! `DeliveryRecorder`: takes attempt outcomes from every webhook actor and writes them in batches.
//!
//! A batch is flushed when it is full or a few ms after its first row; attempt rows and delivery
//! updates of one batch share one transaction. A failed write is retried (with backoff) and never
//! dropped. [`Backpressure`] counts rows handed but not yet written (those still in the mailbox
//! too): webhook actors pause while it is high, which keeps memory bounded when the database is
//! slow or away, and the recorder wakes them once it has caught up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use super::messages::{Flush, Outcome, Record};
use crate::config::Tuning;
use crate::db::models::{DeliveryOutcome, NewAttemptRow};
use crate::db::store::batch::BatchWrite;
use crate::db::DbPool;
use crate::metrics::Metrics;
use crate::with_conn;

/// Rows handed to the recorder beyond which webhook actors stop starting attempts.
pub const HIGH_WATER: usize = 10_000;
/// Rows handed at or below which paused webhook actors are woken again (the gap between the two
/// keeps a recorder hovering at the mark from waking every actor on every batch).
pub const LOW_WATER: usize = HIGH_WATER / 2;

/// The recorder's backlog as the webhook actors see it: rows handed to it and not yet written,
/// counted when they are handed (still in the mailbox included), not when the recorder takes them.
pub struct Backpressure {
    pending: AtomicUsize,
    /// Bumped when a write leaves the backlog at or below [`LOW_WATER`]; paused actors wait on it
    /// instead of polling. Owned here, so it lives as long as any actor holding this.
    caught_up: watch::Sender<u64>,
}

impl Backpressure {
    /// An empty backlog.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(0),
            caught_up: watch::Sender::new(0),
        })
    }

    /// Rows handed and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// True while actors must not start attempts.
    pub fn is_behind(&self) -> bool {
        self.pending() > HIGH_WATER
    }

    /// A receiver that changes when the recorder catches up; mark it seen before checking
    /// [`Self::is_behind`], so that no wake-up falls between the check and the wait.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.caught_up.subscribe()
    }

    fn handed(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::Relaxed);
        if before.saturating_sub(n) <= LOW_WATER {
            self.caught_up.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

/// How the actors and the API hand outcomes to the recorder: counts each one into the backlog as it
/// is sent, so that a flood of messages not yet taken from the mailbox holds the actors back too.
#[derive(Clone)]
pub struct RecorderHandle {
    addr: Addr<DeliveryRecorder>,
    backpressure: Arc<Backpressure>,
}

impl RecorderHandle {
    /// Hands one outcome (an attempt, or a delivery closed without one) to the recorder.
    pub fn record(&self, outcome: Outcome) {
        self.backpressure.handed(1);
        self.addr.do_send(Record(outcome));
    }

    /// Answers once everything handed so far is written.
    pub async fn flush(&self) {
        let _ = self.addr.send(Flush).await;
    }

    /// True while the recorder runs.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }

    /// The shared backlog.
    pub fn backpressure(&self) -> &Arc<Backpressure> {
        &self.backpressure
    }
}

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
    pending: Arc<Backpressure>,
    /// Callers of [`Flush`], answered once everything before them is written.
    waiters: Vec<oneshot::Sender<()>>,
}

impl DeliveryRecorder {
    /// A recorder writing through `db`.
    pub fn new(db: DbPool, metrics: Metrics, tuning: &Tuning, pending: Arc<Backpressure>) -> Self {
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
                    act.pending.written(n);
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
    let bodies = rows
        .iter()
        .filter_map(|o| o.transformed.clone())
        .map(|(id, body)| (id, body.to_string()))
        .collect();
    let mut fences: HashMap<(i64, i64), Vec<String>> = HashMap::new();
    for o in rows {
        if let Some(f) = o.fence {
            fences.entry(f).or_default().push(o.delivery_id.clone());
        }
    }
    let fences = fences
        .into_iter()
        .map(|((w, e), ids)| (w, e, ids))
        .collect();
    let mut conn = db
        .write()
        .await
        .map_err(|e| WriteError::Unavailable(e.to_string()))?;
    with_conn!(&mut conn, c => c.write_outcomes(attempts, updates, bodies, fences).await)
        .map_err(classify)
}

fn classify(e: diesel::result::Error) -> WriteError {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) => {
            WriteError::Unavailable(e.to_string())
        }
        // SQLite's busy/locked (another process holds the file) passes with time, and so does a
        // PostgreSQL deadlock or serialization failure (the other transaction went on).
        E::DatabaseError(K::SerializationFailure, _) => WriteError::Unavailable(e.to_string()),
        E::DatabaseError(_, ref info)
            if info.message().contains("locked")
                || info.message().contains("busy")
                || info.message().contains("deadlock detected") =>
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

/// Starts a recorder (on `arbiter` when given) and returns the handle everything writes through.
pub fn start(
    db: DbPool,
    metrics: Metrics,
    tuning: &Tuning,
    arbiter: Option<&ArbiterHandle>,
) -> RecorderHandle {
    let backpressure = Backpressure::new();
    let (bp, tuning) = (backpressure.clone(), tuning.clone());
    let make =
        move |_: &mut Context<DeliveryRecorder>| DeliveryRecorder::new(db, metrics, &tuning, bp);
    let addr = match arbiter {
        Some(a) => DeliveryRecorder::start_in_arbiter(a, make),
        None => DeliveryRecorder::create(make),
    };
    RecorderHandle { addr, backpressure }
}

impl Handler<Record> for DeliveryRecorder {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Self::Context) {
        // Counted by the sender (RecorderHandle::record), so the mailbox counts as backlog too.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeliveryStatus, DeliveryUpdate};
    use futures::FutureExt;

    #[test]
    fn outcomes_still_in_the_mailbox_count_as_backlog() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db").to_string_lossy().into_owned();
        let db = DbPool::new(&crate::config::DatabaseUrl::Sqlite(path)).expect("pool");
        actix::System::new().block_on(async move {
            let recorder = start(db, Metrics::new(), &Tuning::default(), None);
            let now = chrono::Utc::now();
            for i in 0..3 {
                recorder.record(Outcome {
                    attempt: None,
                    delivery_id: format!("d{i}"),
                    update: DeliveryUpdate::closed(DeliveryStatus::Cancelled, "test", 0, now),
                    transformed: None,
                    fence: None,
                });
            }
            // The recorder has not run yet: all three are still in its mailbox.
            assert_eq!(recorder.backpressure().pending(), 3);
        });
    }

    #[test]
    fn paused_actors_wait_until_the_recorder_is_below_low_water() {
        let bp = Backpressure::new();
        bp.handed(HIGH_WATER + 1);
        assert!(bp.is_behind());
        let mut rx = bp.subscribe();
        rx.borrow_and_update();
        // Writes that leave it above low water wake nobody (no polling either: nothing to wait on).
        bp.written(HIGH_WATER + 1 - (LOW_WATER + 1));
        assert!(!bp.is_behind());
        assert!(
            rx.changed().now_or_never().is_none(),
            "woken above low water"
        );
        bp.written(1);
        assert_eq!(bp.pending(), LOW_WATER);
        assert!(
            matches!(rx.changed().now_or_never(), Some(Ok(()))),
            "not woken once caught up"
        );
    }
}
