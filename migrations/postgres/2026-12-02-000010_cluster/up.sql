-- Several nodes on one database: membership, webhook ownership, and a commit-ordered queue key.

-- One row per running node; live while `expires_at` (the database's clock) is in the future.
-- `incarnation` tells a restarted node (same id) from the process it replaced.
CREATE TABLE sys_cluster_nodes (
    node_id      TEXT PRIMARY KEY,
    incarnation  TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);

-- Who owns a webhook. A lease is held while its node row is live with the same incarnation;
-- `epoch` grows with every change of owner and fences the owner's writes.
-- No foreign key: a deleted webhook's lease stays until its owner confirms it stopped.
CREATE TABLE sys_webhook_leases (
    webhook_id  BIGINT PRIMARY KEY,
    node_id     TEXT,
    incarnation TEXT,
    epoch       BIGINT NOT NULL DEFAULT 1,
    -- The owner's health snapshot (circuit, in flight, last success/failure), JSON.
    health      TEXT,
    health_at   TIMESTAMPTZ
);
CREATE INDEX idx_sys_webhook_leases_node ON sys_webhook_leases (node_id);

-- The transaction that inserted a delivery, then the order within it: rows are paged in by
-- (commit_xid, seq) and only below the oldest running transaction, so a row that commits later
-- can never sort before one already taken.
ALTER TABLE sys_webhook_deliveries
    ADD COLUMN commit_xid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
ALTER TABLE sys_webhook_deliveries ADD COLUMN seq BIGSERIAL;
CREATE INDEX idx_sys_webhook_deliveries_queue
    ON sys_webhook_deliveries (webhook_id, commit_xid, seq) WHERE status IN ('pending', 'retrying');
