-- PostgreSQL pages a webhook's open deliveries in commit order, by idx_sys_webhook_deliveries_queue
-- (same predicate, webhook first); the id-ordered index served only SQLite's paging, and on
-- PostgreSQL it was one more index entry written for every delivery.
DROP INDEX IF EXISTS idx_sys_webhook_deliveries_open;
