//! Integration tests: the real server on 127.0.0.1:0, a fresh database per test, real receivers.
//! Run on SQLite by default; `BEEMA_TEST_DATABASE_URL=postgres://...` runs the same on PostgreSQL.

mod utils;

mod audit;
mod cluster;
mod console_api;
mod console_browser;
mod dispatch;
mod event_types;
mod host_pools;
mod openapi_routes;
mod reliability;
mod replay_ops;
mod routing;
mod runtime_faults;
mod security;
mod stored_data;
mod transform_batch;
mod update_races;
mod webhooks_api;
