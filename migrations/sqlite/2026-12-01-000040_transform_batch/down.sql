ALTER TABLE sys_webhooks DROP COLUMN transform;
