//! The audit log's vocabulary (README, Audit log): actions, actors, and the pure part of an
//! entry: which fields a change touched, with secrets and header values redacted.

use serde_json::{Map, Value};

/// What replaces a secret or a header value in an entry.
pub const REDACTED: &str = "[redacted]";
/// The actor of changes the dispatcher makes on its own (a `410 Gone`, `BEEMA_REQUIRE_HTTPS`).
pub const SYSTEM: &str = "system";
/// The actor of the admin token and of the open admin API.
pub const ADMIN: &str = "admin";

/// Fields left out of `before` / `after`: they change with every write.
const UNAUDITED: [&str; 2] = ["updated_at", "updated_by"];

/// The actions an entry can record.
pub mod action {
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    pub const WEBHOOK_UPDATED: &str = "webhook.updated";
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    pub const WEBHOOK_ENABLED: &str = "webhook.enabled";
    pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    pub const KEY_CREATED: &str = "key.created";
    pub const KEY_REVOKED: &str = "key.revoked";
    pub const EVENT_TYPE_UPDATED: &str = "event_type.updated";
}

/// Redacts a webhook as the API shows it: `secret` and every `headers` value.
pub fn redact_webhook(mut view: Value) -> Value {
    if let Some(obj) = view.as_object_mut() {
        if obj.contains_key("secret") {
            obj.insert("secret".into(), Value::String(REDACTED.into()));
        }
        if let Some(Value::Object(headers)) = obj.get_mut("headers") {
            for v in headers.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    view
}

/// The fields that differ between two objects (unaudited fields aside), each side with its own
/// values; None when nothing differs. Compare unredacted values, then redact each side: a new
/// secret or header value is a change even though both sides read `[redacted]`.
pub fn changed_fields(
    before: &Value,
    after: &Value,
) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut old = Map::new();
    let mut new = Map::new();
    for key in b.keys().chain(a.keys()) {
        if UNAUDITED.contains(&key.as_str()) || old.contains_key(key) {
            continue;
        }
        let (bv, av) = (b.get(key), a.get(key));
        if bv != av {
            old.insert(key.clone(), bv.cloned().unwrap_or(Value::Null));
            new.insert(key.clone(), av.cloned().unwrap_or(Value::Null));
        }
    }
    (!old.is_empty()).then_some((old, new))
}

/// The action of a webhook update: `enabled` or `disabled` when it flipped `enabled`, else
/// `updated`.
pub fn update_action(changed: &Map<String, Value>) -> &'static str {
    match changed.get("enabled") {
        Some(Value::Bool(true)) => action::WEBHOOK_ENABLED,
        Some(Value::Bool(false)) => action::WEBHOOK_DISABLED,
        _ => action::WEBHOOK_UPDATED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_fields_and_without_the_write_stamps() {
        let before =
            json!({"url": "https://a", "enabled": true, "updated_at": "1", "ordered": false});
        let after =
            json!({"url": "https://b", "enabled": true, "updated_at": "2", "ordered": false});
        let (b, a) = changed_fields(&before, &after).unwrap();
        assert_eq!(Value::Object(b), json!({"url": "https://a"}));
        assert_eq!(Value::Object(a), json!({"url": "https://b"}));
        assert_eq!(
            update_action(&changed_fields(&before, &after).unwrap().1),
            action::WEBHOOK_UPDATED
        );
    }

    #[test]
    fn nothing_changed_is_none() {
        let v = json!({"url": "https://a", "updated_at": "1"});
        let w = json!({"url": "https://a", "updated_at": "2"});
        assert!(changed_fields(&v, &w).is_none());
    }

    #[test]
    fn enabled_flips_name_the_action() {
        let (_, after) =
            changed_fields(&json!({"enabled": true}), &json!({"enabled": false})).unwrap();
        assert_eq!(update_action(&after), action::WEBHOOK_DISABLED);
        let (_, after) =
            changed_fields(&json!({"enabled": false}), &json!({"enabled": true})).unwrap();
        assert_eq!(update_action(&after), action::WEBHOOK_ENABLED);
    }

    #[test]
    fn secrets_and_header_values_are_redacted() {
        let v =
            redact_webhook(json!({"secret": "whsec_x", "headers": {"X-Api-Key": "k"}, "url": "u"}));
        assert_eq!(
            v,
            json!({"secret": REDACTED, "headers": {"X-Api-Key": REDACTED}, "url": "u"})
        );
    }
}
