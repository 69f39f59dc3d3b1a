CREATE INDEX idx_sys_webhook_deliveries_open
    ON sys_webhook_deliveries (webhook_id, delivery_id) WHERE status IN ('pending', 'retrying');
