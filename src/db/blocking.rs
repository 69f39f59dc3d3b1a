//! Where SQLite's queries run: the blocking pool of one tokio runtime kept for the whole process.
//!
//! diesel-async runs a SQLite connection's queries on the blocking pool of the runtime that opened
//! it. A connection opened on an actix worker lost that pool when the worker stopped at shutdown
//! and failed every query from then on; only the pool's `SELECT 1` on every checkout caught it, at
//! the cost of one more hop to the blocking pool before each intake commit and recorder batch
//! (4–7% of the throughput with one event per publish). Here no connection outlives its pool, so
//! checkouts need no check.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// The runtime whose blocking pool runs every SQLite query. Never driven and never dropped: its
/// blocking threads need neither.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_current_thread()
            .thread_name("beema-sqlite")
            .build()
            .expect("a tokio runtime for SQLite's blocking pool")
    })
}

/// The [`SpawnBlocking`] of [`crate::db::SqliteConn`]: every connection uses [`runtime`].
pub struct ProcessBlocking(Handle);

impl SpawnBlocking for ProcessBlocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        FinishOnDrop {
            handle: self.0.clone(),
            task: self.0.spawn_blocking(task),
        }
        .map_err(Box::from)
        .boxed()
    }

    fn get_runtime() -> Self {
        ProcessBlocking(runtime().handle().clone())
    }
}

/// A query's blocking task, awaited to its end even when its future is dropped half-way (as
/// diesel-async's own wrapper does): the connection is never used by two tasks at once. That wait
/// uses `block_in_place`, which panics on a current-thread runtime such as actix's; callers there
/// never drop a query in flight.
struct FinishOnDrop<R> {
    handle: Handle,
    task: JoinHandle<R>,
}

impl<R> Future for FinishOnDrop<R> {
    type Output = Result<R, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().task).poll(cx)
    }
}

impl<R> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        if !self.task.is_finished() {
            let (handle, task) = (&self.handle, &mut self.task);
            tokio::task::block_in_place(|| {
                let _ = handle.block_on(task);
            });
        }
    }
}
