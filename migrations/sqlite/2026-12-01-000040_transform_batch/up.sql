ALTER TABLE sys_webhooks ADD COLUMN transform TEXT;
ALTER TABLE sys_webhooks ADD COLUMN batch JSONB;
ALTER TABLE sys_webhook_attempts ADD COLUMN batch_id TEXT;
-- Bodies fixed at first send (a batch, or a transformed delivery) of deliveries waiting for a
-- retry, so that any node resends exactly them; removed when they are final.
CREATE TABLE sys_webhook_sent_bodies (
    sent_id     TEXT      PRIMARY KEY,
    webhook_id  BIGINT    NOT NULL,
    members     TEXT      NOT NULL,
    body        TEXT      NOT NULL,
    manual      BOOLEAN   NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX sys_webhook_sent_bodies_webhook ON sys_webhook_sent_bodies (webhook_id);
