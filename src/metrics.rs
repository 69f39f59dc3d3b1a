//! Prometheus metrics; every family exists from the start, at zero.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::domain::DeliveryStatus;

/// The dispatcher's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Deliveries that reached a final status, by status.
    pub deliveries: IntCounterVec,
    /// HTTP attempts by outcome (`success`, `failure`, `timeout`, `connect_error`).
    pub attempts: IntCounterVec,
    /// Attempt latency.
    pub attempt_duration: HistogramVec,
    /// Deliveries not yet final (set at scrape time from the database).
    pub queue_depth: IntGauge,
    /// Webhooks whose breaker is open.
    pub circuit_open: IntGauge,
    /// Webhook actor restarts after a panic.
    pub actor_restarts: IntCounter,
    /// Rows per recorder batch.
    pub recorder_batch: Histogram,
    /// Events accepted by the intake.
    pub events_accepted: IntCounter,
    /// Age in seconds of the oldest delivery not yet final (set at scrape time; 0 when none).
    pub queue_oldest_age: IntGauge,
    /// Outcomes handed to the recorder and not yet written (set at scrape time).
    pub recorder_pending: IntGauge,
    /// Live nodes of the cluster as this node sees them (set at scrape time; 1 on SQLite).
    pub cluster_nodes: IntGauge,
    /// Webhooks this node owns (set at scrape time; every webhook on SQLite).
    pub owned_webhooks: IntGauge,
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let deliveries = IntCounterVec::new(
            Opts::new(
                "beema_deliveries_total",
                "Deliveries that reached a final status",
            ),
            &["status"],
        )
        .expect("valid metric");
        let attempts = IntCounterVec::new(
            Opts::new("beema_attempts_total", "HTTP delivery attempts"),
            &["outcome"],
        )
        .expect("valid metric");
        let attempt_duration = HistogramVec::new(
            HistogramOpts::new(
                "beema_attempt_duration_seconds",
                "Latency of delivery attempts",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &[],
        )
        .expect("valid metric");
        let queue_depth =
            IntGauge::new("beema_queue_depth", "Deliveries not yet final").expect("valid metric");
        let circuit_open = IntGauge::new("beema_circuit_open", "Webhooks whose breaker is open")
            .expect("valid metric");
        let actor_restarts =
            IntCounter::new("beema_actor_restarts_total", "Webhook actor restarts")
                .expect("valid metric");
        let recorder_batch = Histogram::with_opts(
            HistogramOpts::new(
                "beema_recorder_batch_size",
                "Outcomes written per recorder batch",
            )
            .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0]),
        )
        .expect("valid metric");
        let events_accepted = IntCounter::new(
            "beema_events_accepted_total",
            "Events committed by the intake",
        )
        .expect("valid metric");
        let queue_oldest_age = IntGauge::new(
            "beema_queue_oldest_age_seconds",
            "Age of the oldest delivery not yet final",
        )
        .expect("valid metric");
        let recorder_pending = IntGauge::new(
            "beema_recorder_pending",
            "Outcomes handed to the recorder and not yet written",
        )
        .expect("valid metric");
        let cluster_nodes = IntGauge::new(
            "beema_cluster_nodes",
            "Live nodes of the cluster, as this node sees them",
        )
        .expect("valid metric");
        cluster_nodes.set(1);
        let owned_webhooks =
            IntGauge::new("beema_owned_webhooks", "Webhooks this node owns").expect("valid metric");
        for s in DeliveryStatus::ALL.into_iter().filter(|s| !s.is_open()) {
            deliveries.with_label_values(&[s.as_str()]);
        }
        for o in ["success", "failure"] {
            attempts.with_label_values(&[o]);
        }
        attempt_duration.with_label_values(&[] as &[&str]);
        let m = Self {
            registry,
            deliveries,
            attempts,
            attempt_duration,
            queue_depth,
            circuit_open,
            actor_restarts,
            recorder_batch,
            events_accepted,
            queue_oldest_age,
            recorder_pending,
            cluster_nodes,
            owned_webhooks,
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let r = &self.registry;
        let all: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.deliveries.clone()),
            Box::new(self.attempts.clone()),
            Box::new(self.attempt_duration.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.circuit_open.clone()),
            Box::new(self.actor_restarts.clone()),
            Box::new(self.recorder_batch.clone()),
            Box::new(self.events_accepted.clone()),
            Box::new(self.queue_oldest_age.clone()),
            Box::new(self.recorder_pending.clone()),
            Box::new(self.cluster_nodes.clone()),
            Box::new(self.owned_webhooks.clone()),
        ];
        for c in all {
            r.register(c).expect("metric names are unique");
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_present_at_zero() {
        let text = Metrics::new().render();
        for name in [
            "beema_deliveries_total",
            "beema_attempts_total",
            "beema_attempt_duration_seconds",
            "beema_queue_depth",
            "beema_circuit_open",
            "beema_actor_restarts_total",
            "beema_queue_oldest_age_seconds",
            "beema_recorder_pending",
            "beema_cluster_nodes",
            "beema_owned_webhooks",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn the_example_alert_rules_name_only_exported_metrics() {
        let rules = include_str!("../examples/prometheus/alerts.yml");
        let text = Metrics::new().render();
        let names: Vec<&str> = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("beema_"))
            .collect();
        assert!(names.len() >= 5, "{names:?}");
        for name in names {
            assert!(
                text.contains(&format!("\n{name}")),
                "{name} is not exported"
            );
        }
    }
}
