ALTER TABLE sys_webhooks DROP COLUMN filter;
