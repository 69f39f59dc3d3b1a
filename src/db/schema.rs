// @generated automatically by Diesel CLI (`diesel print-schema`), limited to types both backends share.

diesel::table! {
    sys_api_keys (key_id) {
        key_id -> Text,
        tenant_id -> Text,
        role -> Text,
        name -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sys_audit_log (audit_seq) {
        audit_seq -> BigInt,
        audit_id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        tenant_id -> Nullable<Text>,
        webhook_id -> Nullable<BigInt>,
        key_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
    }
}

diesel::table! {
    sys_event_types (name) {
        name -> Text,
        description -> Nullable<Text>,
        schema -> Nullable<Jsonb>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sys_webhook_attempts (attempt_id) {
        attempt_id -> BigInt,
        delivery_id -> Text,
        webhook_id -> BigInt,
        attempt_number -> BigInt,
        status_code -> Nullable<BigInt>,
        error_message -> Nullable<Text>,
        response_body -> Nullable<Text>,
        duration_ms -> BigInt,
        attempted_at -> Timestamp,
        batch_id -> Nullable<Text>,
    }
}

diesel::table! {
    sys_webhook_deliveries (delivery_id) {
        delivery_id -> Text,
        webhook_id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        tenant_id -> Text,
        status -> Text,
        status_code -> Nullable<BigInt>,
        response_body -> Nullable<Text>,
        error_message -> Nullable<Text>,
        attempt_number -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sys_webhook_events (event_id) {
        event_id -> Text,
        tenant_id -> Text,
        event_type -> Text,
        idempotency_key -> Nullable<Text>,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sys_webhook_test_events (event_id) {
        event_id -> Text,
    }
}

diesel::table! {
    sys_webhooks (webhook_id) {
        webhook_id -> BigInt,
        webhook_name -> Text,
        tenant_id -> Text,
        event_type -> Text,
        url -> Text,
        secret -> Text,
        enabled -> Bool,
        headers -> Jsonb,
        retry_config -> Jsonb,
        rate_limit -> Nullable<Jsonb>,
        circuit_breaker -> Jsonb,
        timeout_ms -> BigInt,
        ordered -> Bool,
        disabled_reason -> Nullable<Text>,
        previous_secrets -> Jsonb,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        deleted_at -> Nullable<Timestamp>,
        filter -> Nullable<Jsonb>,
        transform -> Nullable<Text>,
        batch -> Nullable<Jsonb>,
    }
}

diesel::table! {
    sys_webhook_sent_bodies (sent_id) {
        sent_id -> Text,
        webhook_id -> BigInt,
        members -> Text,
        body -> Text,
        manual -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sys_webhook_transformed_bodies (sent_id) {
        sent_id -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(sys_webhook_deliveries -> sys_webhooks (webhook_id));

diesel::allow_tables_to_appear_in_same_query!(
    sys_api_keys,
    sys_audit_log,
    sys_event_types,
    sys_webhook_attempts,
    sys_webhook_deliveries,
    sys_webhook_events,
    sys_webhook_test_events,
    sys_webhooks,
    sys_webhook_sent_bodies,
    sys_webhook_transformed_bodies,
);
