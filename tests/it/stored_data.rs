//! Stored data the server did not write: a webhook whose settings columns do not parse is
//! reported and kept out of dispatch, never run with guessed defaults (issue 9, fault 8).

use std::time::Duration;

use beema_webhooks::config::DatabaseUrl;
use serde_json::{json, Value};

use crate::utils::{test_config, TestDb, TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(300);
const TENANT: &str = "tenant-stored";

/// Writes `json` into `column` of one webhook, past the server (as a bad migration or a hand
/// edit would): valid JSON of the wrong shape, stored as each backend stores JSON.
async fn overwrite_json_column(db: &TestDb, id: i64, column: &str, json: &str) {
    use diesel::sql_types::{BigInt, Text};
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
            diesel::sql_query(format!(
                "UPDATE sys_webhooks SET {column} = jsonb(?) WHERE webhook_id = ?"
            ))
            .bind::<Text, _>(json)
            .bind::<BigInt, _>(id)
            .execute(&mut c)
            .expect("update sys_webhooks");
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            diesel::sql_query(format!(
                "UPDATE sys_webhooks SET {column} = $1::jsonb WHERE webhook_id = $2"
            ))
            .bind::<Text, _>(json)
            .bind::<BigInt, _>(id)
            .execute(&mut c)
            .await
            .expect("update sys_webhooks");
        }
    }
}

fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}

#[tokio::test]
async fn a_webhook_whose_settings_do_not_parse_is_kept_out_of_dispatch() {
    let db = TestDb::new();
    let mut good_rx = TestReceiver::start(200);
    let mut bad_rx = TestReceiver::start(200);
    let server = TestServer::start(test_config(&db));
    let good = server
        .create_webhook(TENANT, "policy/bound", &good_rx.url, json!({}))
        .await;
    // Each would run with a silent default: 4 attempts, and no rate limit at all.
    let damaged = [
        ("claim/opened", "retry_config", r#"{"maxAttempts": "many"}"#),
        ("claim/closed", "rate_limit", r#"{"perSecond": -5}"#),
    ];
    let mut bad_ids = Vec::new();
    for (event, _, _) in damaged {
        let hook = server
            .create_webhook(TENANT, event, &bad_rx.url, json!({}))
            .await;
        bad_ids.push(id_of(&hook));
    }
    server.stop();
    for ((_, column, json), id) in damaged.iter().zip(&bad_ids) {
        overwrite_json_column(&db, *id, column, json).await;
    }

    let server = TestServer::start(test_config(&db));
    for ((event, column, _), id) in damaged.iter().zip(&bad_ids) {
        let published = server.publish(TENANT, event, json!({})).await;
        assert_eq!(published["deliveries"], 0, "{column}: {published}");
        let (status, v) = server.get(&format!("/api/webhooks/{id}")).await;
        assert_eq!(status, 500, "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(column), "{column}: {v}");
    }
    assert!(
        bad_rx.next(QUIET).await.is_none(),
        "a damaged webhook was sent to"
    );

    let published = server.publish(TENANT, "policy/bound", json!({})).await;
    assert_eq!(published["deliveries"], 1, "{published}");
    good_rx.expect(WAIT).await;
    let good_id = id_of(&good);
    server
        .wait_deliveries(&format!("webhook_id={good_id}"), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "success"
        })
        .await;

    // The operator can still remove it through the API.
    let (status, v) = server
        .delete(&format!("/api/webhooks/{}", bad_ids[0]))
        .await;
    assert_eq!(status, 204, "{v}");
    server.stop();
}
