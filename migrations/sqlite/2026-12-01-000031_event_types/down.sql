DROP INDEX idx_sys_webhook_events_type;
DROP TABLE sys_event_types;
