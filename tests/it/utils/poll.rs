//! The one polling helper: wait until a condition holds, without fixed sleeps in tests.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] asks again: the recorder writes every few ms.
pub const POLL: Duration = Duration::from_millis(20);

/// What one poll found: a value (done), or not yet, optionally with what it saw instead.
pub trait Polled<T> {
    /// `Ok` when done; `Err` with the last observation (if any) for the timeout message.
    fn into_poll(self) -> Result<T, Option<String>>;
}

impl<T> Polled<T> for Option<T> {
    fn into_poll(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Polled<T> for Result<T, E> {
    fn into_poll(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Polls `f` until it yields a value, or panics after `timeout` naming `what` and the last
/// observation. `f` answers `Option<T>`, or `Result<T, E>` whose error says what it saw.
pub async fn eventually<T, P, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    P: Polled<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match f().await.into_poll() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            match last {
                Some(seen) => panic!("timed out waiting for {what}; last seen: {seen}"),
                None => panic!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
