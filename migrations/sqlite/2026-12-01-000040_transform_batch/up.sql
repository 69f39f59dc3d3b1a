ALTER TABLE sys_webhooks ADD COLUMN transform TEXT;
ALTER TABLE sys_webhooks ADD COLUMN batch JSONB;
ALTER TABLE sys_webhook_attempts ADD COLUMN batch_id TEXT;
