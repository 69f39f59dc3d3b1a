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
use crate::db::store::batch::BatchWrite;
use crate::db::DbPool;
use crate::metrics::Metrics;
use crate::with_conn;

/// Rows handed to the recorder beyond which webhook actors stop starting attempts.
pub const HIGH_WATER: usize = 20_000;

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
        // Spawned as its own task: a write is never dropped half-way (STACK.md, SQLite on actix).
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

/// Writes one batch, retrying until the database takes it.
async fn write_with_retry(db: DbPool, rows: Vec<Outcome>) {
    let mut attempts = Vec::new();
    let mut updates = Vec::with_capacity(rows.len());
    for o in rows {
        if let Some(a) = o.attempt {
            attempts.push(a);
        }
        updates.push((o.delivery_id, o.update));
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        let result = match db.write().await {
            Ok(mut conn) => {
                with_conn!(&mut conn, c => c.write_outcomes(attempts.clone(), updates.clone()).await).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, rows = updates.len(), "recorder write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
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
