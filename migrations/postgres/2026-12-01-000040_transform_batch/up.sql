ALTER TABLE sys_webhooks ADD COLUMN transform TEXT;
