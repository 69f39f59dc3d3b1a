-- Replay pages a tenant's events by acceptance time (and, for `_ops` webhooks, every tenant's).
CREATE INDEX idx_sys_webhook_events_tenant_created
    ON sys_webhook_events (tenant_id, created_at, event_id);
CREATE INDEX idx_sys_webhook_events_created
    ON sys_webhook_events (created_at, event_id);

-- Events of `POST /api/webhooks/{id}/test`: never replayed. Written before the event is published,
-- so a test event is never visible without its mark.
CREATE TABLE sys_webhook_test_events (
    event_id TEXT PRIMARY KEY
);
