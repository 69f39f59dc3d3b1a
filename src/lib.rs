//! Beema Webhooks: a webhook dispatcher for the Beema insurance platform.
//!
//! The kernel publishes domain events; tenants register webhook URLs; the dispatcher commits every
//! accepted event with one delivery per matching webhook before it answers, then sends each
//! delivery signed, retried, rate-limited and recorded, at least once.
//!
//! # Layout
//! - [`cli`], [`config`]: the binary's settings, validated once.
//! - [`app`]: wiring and graceful shutdown ([`app::run`]).
//! - [`db`]: one diesel-async query layer over SQLite and PostgreSQL; [`db::store`] holds the queries.
//! - [`intake`]: group commit of published events (a supervised task).
//! - [`ops`]: operational events (`beema/...`) published through the intake.
//! - [`actors`]: router, one supervised webhook actor per registration, the delivery recorder;
//!   the intake and the API use them only through [`actors::Dispatcher`].
//! - [`delivery`]: signing, retry, circuit breaker, URL guard and the HTTP sender (pure, unit-tested).
//! - [`api`]: the REST API (actix-web), one module per resource.
//! - [`console`]: the ops console, embedded assets served under `/console/`.
//! - [`domain`]: webhooks, delivery statuses and transitions; plain types that import nothing of
//!   the crate. Storage converts rows to and from them (`db::models`), the API renders them
//!   (`api::views`).
//! - [`secrets`], [`metrics`]: secrets at rest, Prometheus families.
//! - [`routing`]: event-type patterns and payload filters (pure, unit-tested).
//! - [`catalog`]: the event-type catalog's schemas, compiled once per change, checked at publish.
//! - [`transform`]: jq payload transforms, run in worker processes.

pub mod actors;
pub mod api;
pub mod app;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod intake;
pub mod metrics;
pub mod ops;
pub mod routing;
pub mod secrets;
#[doc(hidden)]
pub mod testing;
pub mod transform;

pub use app::run;
// `use crate::with_conn;` in every module; not exported from the crate.
pub(crate) use db::with_conn;
