-- The body a `transform` produced, as sent (the whole batch body for a transformed batch), kept
-- after the delivery is final so that the delivery log shows what the receiver got.
CREATE TABLE sys_webhook_transformed_bodies (
    sent_id     TEXT      PRIMARY KEY,
    body        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
