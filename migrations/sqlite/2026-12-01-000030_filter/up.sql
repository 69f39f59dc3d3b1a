-- A webhook's filter on the payload (contract §7); NULL: every event passes.
ALTER TABLE sys_webhooks ADD COLUMN filter JSONB;
