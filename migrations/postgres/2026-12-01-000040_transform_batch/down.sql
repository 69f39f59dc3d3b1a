DROP TABLE sys_webhook_sent_bodies;
ALTER TABLE sys_webhook_attempts DROP COLUMN batch_id;
ALTER TABLE sys_webhooks DROP COLUMN batch;
ALTER TABLE sys_webhooks DROP COLUMN transform;
