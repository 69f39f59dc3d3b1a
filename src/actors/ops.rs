//! `OpsEmitter`: how the webhook actors hand operational facts (README, Operational events) over
//! without waiting. The send is a push onto an unbounded channel; the publishing task
//! ([`crate::ops`]) stores each as an event through the intake, off the actors' hot path.

use tokio::sync::mpsc;

use crate::domain::ops::{OpsDetail, OpsFact};
use crate::domain::Webhook;

/// Cheap to clone; every actor holds one.
#[derive(Clone)]
pub struct OpsEmitter {
    /// Closed when the publishing task ends (shutdown): later facts are dropped with a debug line.
    tx: mpsc::UnboundedSender<OpsFact>,
}

/// The receiving end, for [`crate::ops::start`].
pub type OpsReceiver = mpsc::UnboundedReceiver<OpsFact>;

impl OpsEmitter {
    /// An emitter and the receiver its facts arrive on.
    pub fn channel() -> (Self, OpsReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Hands a fact over; never blocks.
    pub fn emit(&self, fact: OpsFact) {
        if self.tx.send(fact).is_err() {
            tracing::debug!("operational event dropped: publisher stopped");
        }
    }

    /// `beema/webhook.disabled` for each webhook the dispatcher disabled at start (the
    /// `BEEMA_REQUIRE_HTTPS` disable): `delivery_id` null, `reason` its `disabled_reason`.
    pub fn disabled_at_start(&self, webhooks: &[Webhook]) {
        for w in webhooks {
            self.emit(OpsFact::about(
                w,
                w.disabled_reason.clone(),
                OpsDetail::WebhookDisabled { delivery_id: None },
            ));
        }
    }
}
