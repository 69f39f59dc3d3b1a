//! Operational events (README, Operational events): the facts the dispatcher publishes about its
//! own webhooks, their `data`, and who receives them. Replay (README, Recovering after an outage)
//! routes with the same rules.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::Webhook;

/// The operator's tenant: its webhooks receive the operational events of every tenant.
pub const OPS_TENANT: &str = "_ops";
/// Event types under this prefix are the dispatcher's own.
pub const OPS_PREFIX: &str = "beema/";
/// The pattern subscribing to every operational event.
pub const OPS_ALL: &str = "beema/*";

/// True for an operational event type (reserved: publishers cannot use it).
pub fn is_ops_type(event_type: &str) -> bool {
    event_type.starts_with(OPS_PREFIX)
}

/// What happened, with the fields of `data` particular to it.
#[derive(Debug, Clone, PartialEq)]
pub enum OpsDetail {
    /// A delivery reached `failed` (one per member of a failed batch).
    DeliveryFailed {
        /// The delivery.
        delivery_id: String,
        /// Its event.
        event_id: String,
        /// Its event type.
        event_type: String,
        /// Attempts made.
        attempts: i64,
        /// The last answer's status, if any.
        status_code: Option<i64>,
    },
    /// The dispatcher disabled the webhook (a `410 Gone`, or `BEEMA_REQUIRE_HTTPS` at start).
    WebhookDisabled {
        /// The delivery answered 410 (the batch id for a batch); None for the start-time disable.
        delivery_id: Option<String>,
    },
    /// A closed breaker opened.
    CircuitOpened {
        /// Failures in a row that opened it.
        consecutive_failures: u32,
        /// When the first probe may go.
        retry_at: Option<DateTime<Utc>>,
    },
    /// A probe (or any success) closed an open breaker.
    CircuitClosed {
        /// When it had opened.
        opened_at: Option<DateTime<Utc>>,
    },
}

/// One operational fact about a webhook, as handed over by the actor that saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsFact {
    /// The webhook it is about (never a receiver of it).
    pub webhook_id: i64,
    /// Its name.
    pub webhook_name: String,
    /// Its tenant: the event is an event of this tenant.
    pub tenant_id: String,
    /// Its URL.
    pub url: String,
    /// The error, or the disabled reason; None for `circuit.closed`.
    pub reason: Option<String>,
    /// What happened.
    pub detail: OpsDetail,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl OpsFact {
    /// A fact about `w`.
    pub fn about(w: &Webhook, reason: Option<String>, detail: OpsDetail) -> Self {
        Self {
            webhook_id: w.id,
            webhook_name: w.name.clone(),
            tenant_id: w.tenant_id.clone(),
            url: w.url.clone(),
            reason,
            detail,
            at: Utc::now(),
        }
    }

    /// The event type it is published as.
    pub fn event_type(&self) -> &'static str {
        match self.detail {
            OpsDetail::DeliveryFailed { .. } => "beema/delivery.failed",
            OpsDetail::WebhookDisabled { .. } => "beema/webhook.disabled",
            OpsDetail::CircuitOpened { .. } => "beema/circuit.opened",
            OpsDetail::CircuitClosed { .. } => "beema/circuit.closed",
        }
    }

    /// The event's `data` (README, Operational events).
    pub fn data(&self) -> Value {
        let mut data = json!({
            "webhook_id": self.webhook_id,
            "webhook_name": self.webhook_name,
            "tenant_id": self.tenant_id,
            "url": self.url,
            "reason": self.reason,
        });
        let extra = match &self.detail {
            OpsDetail::DeliveryFailed {
                delivery_id,
                event_id,
                event_type,
                attempts,
                status_code,
            } => json!({"delivery_id": delivery_id, "event_id": event_id,
                "event_type": event_type, "attempts": attempts, "status_code": status_code}),
            OpsDetail::WebhookDisabled { delivery_id } => json!({ "delivery_id": delivery_id }),
            OpsDetail::CircuitOpened {
                consecutive_failures,
                retry_at,
            } => json!({"consecutive_failures": consecutive_failures,
                "retry_at": retry_at.map(rfc3339)}),
            OpsDetail::CircuitClosed { opened_at } => {
                json!({ "opened_at": opened_at.map(rfc3339) })
            }
        };
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
        data
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether `w` receives an operational event of `tenant` and `event_type` about webhook `about`
/// (README, Operational events): its own tenant's or an `_ops` webhook, subscribed to the exact
/// type or `beema/*` (`*` does not get them), never the webhook the event is about. Enabled and
/// filter are the caller's.
pub fn receives_ops(w: &Webhook, tenant: &str, event_type: &str, about: Option<i64>) -> bool {
    about != Some(w.id)
        && (w.tenant_id == tenant || w.tenant_id == OPS_TENANT)
        && (w.event_type == event_type || w.event_type == OPS_ALL)
}

/// Whether a stored event goes to `w` when replayed (README, Recovering after an outage):
/// operational events by the rules of README, Operational events, others when the tenant and event
/// type match. `about` is the webhook an operational event is about (read from its payload).
pub fn replays_to(w: &Webhook, tenant: &str, event_type: &str, about: Option<i64>) -> bool {
    if is_ops_type(event_type) {
        receives_ops(w, tenant, event_type, about)
    } else {
        w.tenant_id == tenant && crate::routing::pattern::matches(&w.event_type, event_type)
    }
}

/// The webhook an operational event's payload is about (`data.webhook_id`).
pub fn about_of(payload: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(payload).ok()?;
    v.get("data")?.get("webhook_id")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: i64, tenant: &str, ty: &str) -> Webhook {
        Webhook {
            timeout_ms: 1000,
            ..Webhook::new(
                id,
                format!("hook {id}"),
                tenant,
                ty,
                "https://a.example/h",
                "s",
            )
        }
    }

    #[test]
    fn ops_events_go_to_exact_and_beema_star_of_the_tenant_and_ops() {
        let ty = "beema/delivery.failed";
        assert!(receives_ops(&hook(1, "t1", ty), "t1", ty, Some(9)));
        assert!(receives_ops(&hook(2, "t1", OPS_ALL), "t1", ty, Some(9)));
        assert!(receives_ops(&hook(3, OPS_TENANT, ty), "t1", ty, Some(9)));
        assert!(receives_ops(
            &hook(4, OPS_TENANT, OPS_ALL),
            "t1",
            ty,
            Some(9)
        ));
        assert!(!receives_ops(&hook(5, "t1", "*"), "t1", ty, Some(9)));
        assert!(!receives_ops(&hook(6, "t2", ty), "t1", ty, Some(9)));
        assert!(!receives_ops(
            &hook(7, "t1", "beema/circuit.opened"),
            "t1",
            ty,
            Some(9)
        ));
        assert!(
            !receives_ops(&hook(9, "t1", ty), "t1", ty, Some(9)),
            "never about itself"
        );
    }

    #[test]
    fn replay_routes_like_publishing() {
        assert!(replays_to(&hook(1, "t1", "*"), "t1", "a/b", None));
        assert!(!replays_to(&hook(1, "t2", "*"), "t1", "a/b", None));
        assert!(!replays_to(&hook(1, OPS_TENANT, "*"), "t1", "a/b", None));
        assert!(replays_to(
            &hook(1, OPS_TENANT, OPS_ALL),
            "t1",
            "beema/circuit.closed",
            Some(2)
        ));
        assert!(!replays_to(
            &hook(2, OPS_TENANT, OPS_ALL),
            "t1",
            "beema/circuit.closed",
            Some(2)
        ));
    }

    #[test]
    fn data_has_the_contract_fields() {
        let w = hook(7, "t1", "a/b");
        let f = OpsFact::about(
            &w,
            Some("HTTP 500".into()),
            OpsDetail::DeliveryFailed {
                delivery_id: "d".into(),
                event_id: "e".into(),
                event_type: "a/b".into(),
                attempts: 3,
                status_code: Some(500),
            },
        );
        let d = f.data();
        assert_eq!(f.event_type(), "beema/delivery.failed");
        assert_eq!(d["webhook_id"], 7);
        assert_eq!(d["tenant_id"], "t1");
        assert_eq!(d["reason"], "HTTP 500");
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["status_code"], 500);
        assert_eq!(about_of(&json!({"data": d}).to_string()), Some(7));
        let closed = OpsFact::about(&w, None, OpsDetail::CircuitClosed { opened_at: None });
        assert!(closed.data()["reason"].is_null());
        assert!(closed.data().as_object().unwrap().contains_key("opened_at"));
    }
}
