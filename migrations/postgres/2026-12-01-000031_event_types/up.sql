-- The event-type catalog (contract §14): declared types, with a description and a JSON Schema
-- (draft 2020-12) of their `data`. Types only seen in events are not stored here: they are found
-- in sys_webhook_events.
CREATE TABLE sys_event_types (
    name        TEXT      PRIMARY KEY,
    description TEXT,
    schema      JSONB,
    created_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
-- Counts, first and last seen per type, in a tenant's scope: grouped scans of this index only.
CREATE INDEX idx_sys_webhook_events_type ON sys_webhook_events (tenant_id, event_type, created_at);

-- The kernel's four types and the dispatcher's four ops types, declared from `migrate` on.
INSERT INTO sys_event_types (name, description, schema) VALUES
    ('agreement/updated', 'An agreement changed (kernel).',
     '{"type": "object", "properties": {"tenantId": {"type": "string"}, "agreementId": {"type": "string"}}}'::jsonb),
    ('beema/circuit.closed', 'A probe succeeded and closed a webhook''s circuit breaker (dispatcher).',
     '{"type": "object", "properties": {"webhook_id": {"type": "integer"}, "webhook_name": {"type": "string"}, "tenant_id": {"type": "string"}, "url": {"type": "string"}, "reason": {"type": ["string", "null"]}, "opened_at": {"type": ["string", "null"]}}, "required": ["webhook_id", "webhook_name", "tenant_id", "url", "reason"]}'::jsonb),
    ('beema/circuit.opened', 'A webhook''s closed circuit breaker opened (dispatcher).',
     '{"type": "object", "properties": {"webhook_id": {"type": "integer"}, "webhook_name": {"type": "string"}, "tenant_id": {"type": "string"}, "url": {"type": "string"}, "reason": {"type": ["string", "null"]}, "consecutive_failures": {"type": "integer"}, "retry_at": {"type": ["string", "null"]}}, "required": ["webhook_id", "webhook_name", "tenant_id", "url", "reason"]}'::jsonb),
    ('beema/delivery.failed', 'A delivery reached `failed` (dispatcher).',
     '{"type": "object", "properties": {"webhook_id": {"type": "integer"}, "webhook_name": {"type": "string"}, "tenant_id": {"type": "string"}, "url": {"type": "string"}, "reason": {"type": ["string", "null"]}, "delivery_id": {"type": "string"}, "event_id": {"type": "string"}, "event_type": {"type": "string"}, "attempts": {"type": "integer"}, "status_code": {"type": ["integer", "null"]}}, "required": ["webhook_id", "webhook_name", "tenant_id", "url", "reason"]}'::jsonb),
    ('beema/webhook.disabled', 'The dispatcher disabled a webhook (a 410 Gone, or https required at start).',
     '{"type": "object", "properties": {"webhook_id": {"type": "integer"}, "webhook_name": {"type": "string"}, "tenant_id": {"type": "string"}, "url": {"type": "string"}, "reason": {"type": ["string", "null"]}, "delivery_id": {"type": ["string", "null"]}}, "required": ["webhook_id", "webhook_name", "tenant_id", "url", "reason"]}'::jsonb),
    ('claim/opened', 'A claim was opened (kernel).',
     '{"type": "object", "properties": {"tenantId": {"type": "string"}, "claimNumber": {"type": "string"}, "claimAmount": {"type": "number", "minimum": 0}}}'::jsonb),
    ('claim/settled', 'A claim was settled (kernel).',
     '{"type": "object", "properties": {"tenantId": {"type": "string"}, "claimNumber": {"type": "string"}, "settledAmount": {"type": "number", "minimum": 0}}}'::jsonb),
    ('policy/bound', 'A policy was bound (kernel).',
     '{"type": "object", "properties": {"tenantId": {"type": "string"}, "policyNumber": {"type": "string"}, "agreementId": {"type": "string"}, "marketContext": {"type": "string"}, "premium": {"type": "number", "minimum": 0}}}'::jsonb);
