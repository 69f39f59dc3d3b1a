//! The actor runtime: a [`router::Router`] fans deliveries out to one supervised
//! [`webhook::WebhookActor`] per registration, which hand outcomes to the
//! [`recorder::DeliveryRecorder`]. Everything outside this module goes through the
//! [`Dispatcher`]: it alone takes the registry lock and sends actor messages.

pub mod dispatcher;
pub mod messages;
pub mod ops;
pub mod recorder;
mod registry;
mod router;
pub mod status;
pub mod webhook;

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::Tuning;
use crate::db::DbPool;
use crate::delivery::ssrf::TargetPolicy;
use crate::domain::Webhook;
use crate::metrics::Metrics;
pub use dispatcher::{DispatchError, Dispatcher, HealthPage};
pub use ops::OpsEmitter;
use recorder::RecorderHandle;

/// What every webhook actor shares.
pub struct WebhookDeps {
    /// The database, for paging deliveries in.
    pub db: DbPool,
    /// Where outcomes go (and how far behind it is).
    pub recorder: RecorderHandle,
    /// Which targets may be contacted.
    pub policy: Arc<TargetPolicy>,
    /// HTTP connections, shared per receiver origin.
    pub hosts: crate::delivery::host_pool::HostPools,
    /// Metrics.
    pub metrics: Metrics,
    /// Window, concurrency and timing knobs.
    pub tuning: Tuning,
    /// Where operational facts (README, Operational events) go.
    pub ops: OpsEmitter,
    /// Runs `transform` programs in worker processes.
    pub transform: Arc<crate::transform::TransformPool>,
}

/// Inputs of [`Dispatcher::start`].
pub struct StartParams {
    /// The database.
    pub db: DbPool,
    /// Metrics.
    pub metrics: Metrics,
    /// Knobs.
    pub tuning: Tuning,
    /// Allowed targets.
    pub policy: Arc<TargetPolicy>,
    /// TLS settings.
    pub tls: Arc<rustls::ClientConfig>,
    /// Every live webhook.
    pub webhooks: Vec<Arc<Webhook>>,
    /// Webhooks with deliveries that are not final.
    pub with_backlog: HashSet<i64>,
    /// Where operational facts (README, Operational events) go.
    pub ops: OpsEmitter,
    /// Which webhooks run on this node.
    pub cluster: crate::cluster::Cluster,
}
