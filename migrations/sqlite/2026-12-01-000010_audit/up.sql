-- The audit log (CONTRACT-features.md §12): one row per change, written in the change's transaction.
-- audit_seq orders the entries (the order they were recorded); `at` is the database's clock.
-- No foreign keys: entries outlive their webhook or key.
CREATE TABLE sys_audit_log (
    audit_seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id   TEXT      NOT NULL UNIQUE,
    at         TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    actor      TEXT      NOT NULL,
    action     TEXT      NOT NULL,
    tenant_id  TEXT,
    webhook_id BIGINT,
    key_id     TEXT,
    before     JSONB,
    after      JSONB
);
CREATE INDEX idx_sys_audit_log_tenant ON sys_audit_log (tenant_id, audit_seq);
CREATE INDEX idx_sys_audit_log_webhook ON sys_audit_log (webhook_id, audit_seq);
