DROP TABLE sys_audit_log;
