DROP TABLE sys_api_keys;
DROP TABLE sys_webhook_attempts;
DROP TABLE sys_webhook_deliveries;
DROP TABLE sys_webhook_events;
DROP TABLE sys_webhooks;
