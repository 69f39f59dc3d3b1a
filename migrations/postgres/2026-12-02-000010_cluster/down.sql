DROP INDEX idx_sys_webhook_deliveries_queue;
ALTER TABLE sys_webhook_deliveries DROP COLUMN seq;
ALTER TABLE sys_webhook_deliveries DROP COLUMN commit_xid;
DROP TABLE sys_webhook_leases;
DROP TABLE sys_cluster_nodes;
