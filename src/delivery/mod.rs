//! How a delivery goes out: pure pieces (signing, retry, breaker, URL guard) and the HTTP sender.
//!
//! The webhook actor ([`crate::actors::webhook`]) strings them together: take a job, ask the breaker
//! and the rate limiter, [`sender::send`] it, then [`retry::decide`] what happens next.

pub mod breaker;
pub mod fair_gate;
pub mod host_pool;
pub mod retry;
pub mod sender;
pub mod signing;
pub mod ssrf;
