-- Webhook registrations (the seed's sys_webhooks plus the dispatcher's own columns).
CREATE TABLE sys_webhooks (
    webhook_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_name     TEXT      NOT NULL,
    tenant_id        TEXT      NOT NULL,
    event_type       TEXT      NOT NULL,
    url              TEXT      NOT NULL,
    secret           TEXT      NOT NULL,
    enabled          BOOLEAN   NOT NULL DEFAULT TRUE,
    headers          JSONB     NOT NULL DEFAULT (jsonb('{}')),
    retry_config     JSONB     NOT NULL DEFAULT (jsonb('{"maxAttempts": 4, "backoffMs": 1000}')),
    rate_limit       JSONB,
    circuit_breaker  JSONB     NOT NULL DEFAULT (jsonb('{"failureThreshold": 5, "cooldownMs": 30000}')),
    timeout_ms       BIGINT    NOT NULL DEFAULT 30000,
    ordered          BOOLEAN   NOT NULL DEFAULT FALSE,
    disabled_reason  TEXT,
    -- secrets still signing during a rotation grace: [{"secret": "...", "expires_at": "..."}]
    previous_secrets JSONB     NOT NULL DEFAULT (jsonb('[]')),
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_by       TEXT,
    updated_by       TEXT,
    -- soft delete: deliveries keep their foreign key and stay readable after a DELETE
    deleted_at       TIMESTAMP
);
CREATE INDEX idx_sys_webhooks_tenant_id ON sys_webhooks (tenant_id);
CREATE INDEX idx_sys_webhooks_event_type ON sys_webhooks (event_type);
CREATE INDEX idx_sys_webhooks_enabled ON sys_webhooks (enabled);

-- Accepted events; payload holds the exact bytes every receiver gets and every signature covers.
CREATE TABLE sys_webhook_events (
    event_id        TEXT      PRIMARY KEY,
    tenant_id       TEXT      NOT NULL,
    event_type      TEXT      NOT NULL,
    idempotency_key TEXT,
    payload         TEXT      NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX idx_sys_webhook_events_idempotency
    ON sys_webhook_events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- One row per (event, webhook); delivery_id is a UUIDv7, so its order is acceptance order.
CREATE TABLE sys_webhook_deliveries (
    delivery_id     TEXT      PRIMARY KEY,
    webhook_id      BIGINT    NOT NULL REFERENCES sys_webhooks (webhook_id),
    event_id        TEXT      NOT NULL,
    event_type      TEXT      NOT NULL,
    tenant_id       TEXT      NOT NULL,
    status          TEXT      NOT NULL,
    status_code     BIGINT,
    response_body   TEXT,
    error_message   TEXT,
    attempt_number  BIGINT    NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE INDEX idx_sys_webhook_deliveries_webhook_id ON sys_webhook_deliveries (webhook_id);
CREATE INDEX idx_sys_webhook_deliveries_event_id ON sys_webhook_deliveries (event_id);
CREATE INDEX idx_sys_webhook_deliveries_status ON sys_webhook_deliveries (status);
CREATE INDEX idx_sys_webhook_deliveries_tenant ON sys_webhook_deliveries (tenant_id, delivery_id);
-- "every delivery that is not final, per webhook, oldest first": the dispatcher's work queue
CREATE INDEX idx_sys_webhook_deliveries_open
    ON sys_webhook_deliveries (webhook_id, delivery_id) WHERE status IN ('pending', 'retrying');
-- "due retries"
CREATE INDEX idx_sys_webhook_deliveries_due
    ON sys_webhook_deliveries (next_attempt_at) WHERE status = 'retrying';

-- One row per HTTP attempt.
CREATE TABLE sys_webhook_attempts (
    attempt_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id    TEXT      NOT NULL,
    webhook_id     BIGINT    NOT NULL,
    attempt_number BIGINT    NOT NULL,
    status_code    BIGINT,
    error_message  TEXT,
    response_body  TEXT,
    duration_ms    BIGINT    NOT NULL,
    attempted_at   TIMESTAMP NOT NULL
);
CREATE INDEX idx_sys_webhook_attempts_delivery ON sys_webhook_attempts (delivery_id);

-- Tenant API keys; only a SHA-256 of the key is kept.
CREATE TABLE sys_api_keys (
    key_id     TEXT      PRIMARY KEY,
    tenant_id  TEXT      NOT NULL,
    role       TEXT      NOT NULL,
    name       TEXT      NOT NULL,
    key_hash   TEXT      NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
