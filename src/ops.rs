//! The publisher of operational events (README, Operational events). Webhook actors hand facts over
//! through an [`OpsEmitter`](crate::actors::OpsEmitter) without waiting; this task turns each into
//! an event of the webhook's tenant and publishes it through the intake like any event (stored,
//! signed, retried, in the delivery log), to the webhooks README, Operational events routes it to.

use std::time::Duration;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::actors::ops::OpsReceiver;
use crate::actors::Dispatcher;
use crate::domain::ops::OpsFact;
use crate::intake::{Intake, IntakeError, NewEvent};

/// Most facts published in one intake request.
const MAX_FACTS_PER_PUBLISH: usize = 256;
/// Tries of one publish while the database refuses it, before the facts are logged and dropped.
const PUBLISH_TRIES: u32 = 8;

/// The body receivers get, in the field order of every event.
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    event: &'a str,
    data: Value,
    user: Value,
    timestamp: String,
}

/// Starts the publishing task; abort the handle at shutdown (it would otherwise wait for every
/// emitter to go).
pub fn start(rx: OpsReceiver, dispatcher: Dispatcher, intake: Intake) -> JoinHandle<()> {
    tokio::spawn(run(rx, dispatcher, intake))
}

async fn run(mut rx: OpsReceiver, dispatcher: Dispatcher, intake: Intake) {
    while let Some(first) = rx.recv().await {
        let mut facts = vec![first];
        while facts.len() < MAX_FACTS_PER_PUBLISH {
            match rx.try_recv() {
                Ok(f) => facts.push(f),
                Err(_) => break,
            }
        }
        let events: Vec<NewEvent> = facts.iter().map(|f| to_event(&dispatcher, f)).collect();
        if !publish(&intake, events).await {
            return;
        }
    }
}

/// The event of a fact, addressed to the webhooks that receive it now.
pub fn to_event(dispatcher: &Dispatcher, fact: &OpsFact) -> NewEvent {
    let event_id = Uuid::now_v7().to_string();
    let event_type = fact.event_type();
    let payload = serde_json::to_string(&Payload {
        id: &event_id,
        event: event_type,
        data: fact.data(),
        user: Value::Null,
        timestamp: fact.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    })
    .unwrap_or_default();
    // Filters see the payload as the receiver would get it, as at intake.
    let parsed: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
    let targets = dispatcher
        .ops_targets(&fact.tenant_id, event_type, fact.webhook_id)
        .into_iter()
        .filter(|w| w.passes(&parsed))
        .map(|w| (w.id, w.tenant_id.clone()))
        .collect();
    NewEvent {
        event_id,
        tenant_id: fact.tenant_id.clone(),
        event_type: event_type.to_string(),
        idempotency_key: None,
        payload,
        accepted_at: chrono::Utc::now(),
        only_webhook: None,
        targets: Some(targets),
    }
}

/// Publishes, retrying while the database refuses; false once the intake is closed (shutdown).
async fn publish(intake: &Intake, events: Vec<NewEvent>) -> bool {
    let mut delay = Duration::from_millis(100);
    for _ in 0..PUBLISH_TRIES {
        match intake.publish(events.clone()).await {
            Ok(_) => return true,
            Err(IntakeError::Closed) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "publishing operational events failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(
        events = events.len(),
        "operational events dropped: the database refused them"
    );
    true
}
