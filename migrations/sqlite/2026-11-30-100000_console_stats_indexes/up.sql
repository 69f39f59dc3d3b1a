-- /api/stats reads deliveries and attempts by time: these indexes keep it a range scan. The
-- attempts index covers the grouped query (bucket, duration, outcome, webhook) without the table.
CREATE INDEX idx_sys_webhook_deliveries_created ON sys_webhook_deliveries (created_at, status, webhook_id);
CREATE INDEX idx_sys_webhook_attempts_time
    ON sys_webhook_attempts (attempted_at, webhook_id, duration_ms, status_code);
