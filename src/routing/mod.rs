//! Routing: which webhooks an event goes to, beyond its tenant. [`pattern`] validates a webhook's
//! `event_type` (exact, `*`, `<prefix>/*`) and names the route keys an event type is looked up
//! under; [`filter`] compiles and evaluates a webhook's `filter` on the payload.
//!
//! Like `domain`, this module imports nothing else of the crate: it is pure logic, and a
//! [`crate::domain::Webhook`] carries its compiled [`filter::Filter`].

pub mod filter;
pub mod pattern;
