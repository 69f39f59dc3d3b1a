//! Secrets at rest: with `BEEMA_SECRET_KEY` set, no secret (current or in grace) is stored in
//! clear, yet the API returns it and deliveries are signed with it, across restarts.

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_hook, id_of, locked_env, ADMIN, EVENT, SECRET_KEY, WAIT};
use crate::utils::{
    beema_signature, standard_verifies, test_config, TestDb, TestReceiver, TestServer,
};
use beema_webhooks::config::DatabaseUrl;

#[derive(diesel::QueryableByName, Debug)]
struct StoredSecrets {
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    prev: String,
}

/// The raw `secret` and `previous_secrets` columns of one webhook, read past the server.
async fn stored_secrets(db: &TestDb, id: i64) -> StoredSecrets {
    use diesel::sql_types::BigInt;
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
            diesel::sql_query("SELECT secret, json(previous_secrets) AS prev FROM sys_webhooks WHERE webhook_id = ?")
                .bind::<BigInt, _>(id)
                .get_result(&mut c)
                .expect("read sys_webhooks")
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            diesel::sql_query("SELECT secret, previous_secrets::text AS prev FROM sys_webhooks WHERE webhook_id = $1")
                .bind::<BigInt, _>(id)
                .get_result(&mut c)
                .await
                .expect("read sys_webhooks")
        }
    }
}

/// For SQLite: no file of the database (main, WAL, journal) holds `needle` anywhere.
fn sqlite_files_lack(db: &TestDb, needle: &str) {
    let DatabaseUrl::Sqlite(path) = &db.url else {
        return;
    };
    let dir = std::path::Path::new(path).parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} holds a secret in clear",
            p.display()
        );
    }
}

/// The webhook's secret as `GET .../secret` returns it.
async fn api_secret(s: &TestServer, id: i64) -> (u16, Value) {
    let path = format!("/api/webhooks/{id}/secret");
    s.call_as(Method::GET, &path, Some(ADMIN), &[], None).await
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_still_sign() {
    let env = locked_env();
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_c2Vjb25kU2VjcmV0Rm9yUm90YXRpb25UZXN0cw==";
    let hook = create_hook(s, Some(ADMIN), json!({"webhook_name": "sealed", "tenant_id": "t", "event_type": "a/b", "url": rx.url, "secret": old})).await;
    assert_eq!(hook["secret"], old, "create returns the secret in full");
    let id = id_of(&hook);

    let row = stored_secrets(&env.db, id).await;
    assert!(
        row.secret.starts_with("enc:v1:"),
        "stored secret is not sealed: {}",
        row.secret
    );
    assert!(
        !row.secret.contains(old) && !row.secret.contains(&old[6..]),
        "{}",
        row.secret
    );
    assert_eq!(row.prev.replace(' ', ""), "[]");
    sqlite_files_lack(&env.db, &old[6..]);

    // The API still knows it, and deliveries are signed with it.
    let (st, v) = api_secret(s, id).await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(old)), "{v}");
    let (_, v) = s
        .call_as(
            Method::GET,
            &format!("/api/webhooks/{id}"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(v["secret"], format!("{}…", &old[..10]));
    let ev = json!({"event": "a/b", "data": {"tenantId": "t"}});
    let (st, _) = s
        .call_as(Method::POST, "/api/events", Some(EVENT), &[], Some(&ev))
        .await;
    assert_eq!(st, 202);
    let got = rx.expect(WAIT).await;
    assert!(
        standard_verifies(old, &got),
        "signature does not verify with the secret"
    );
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(old, &got.body)
    );

    // Rotation: the new one and the old one (in grace) are both sealed.
    let rotate = json!({"secret": new, "grace_seconds": 3600});
    let path = format!("/api/webhooks/{id}/rotate-secret");
    let (st, v) = s
        .call_as(Method::POST, &path, Some(ADMIN), &[], Some(&rotate))
        .await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(new)), "{v}");
    let row = stored_secrets(&env.db, id).await;
    assert!(row.secret.starts_with("enc:v1:"), "{}", row.secret);
    for plain in [old, new, &old[6..], &new[6..]] {
        assert!(!row.secret.contains(plain), "{}", row.secret);
        assert!(
            !row.prev.contains(plain),
            "an old secret is stored in clear: {}",
            row.prev
        );
    }
    let prev: Value = serde_json::from_str(&row.prev).unwrap();
    let prev = prev.as_array().unwrap();
    assert_eq!(prev.len(), 1, "{prev:?}");
    assert!(
        prev[0]["secret"].as_str().unwrap().starts_with("enc:v1:"),
        "{prev:?}"
    );
    sqlite_files_lack(&env.db, &old[6..]);
    sqlite_files_lack(&env.db, &new[6..]);

    let (st, _) = s
        .call_as(Method::POST, "/api/events", Some(EVENT), &[], Some(&ev))
        .await;
    assert_eq!(st, 202);
    let got = rx.expect(WAIT).await;
    assert!(
        standard_verifies(new, &got),
        "does not verify with the new secret"
    );
    assert!(
        standard_verifies(old, &got),
        "does not verify with the old secret in grace"
    );
    assert_eq!(
        got.header("webhook-signature").unwrap().split(' ').count(),
        2
    );
    assert_eq!(
        got.header("x-beema-signature").unwrap(),
        beema_signature(new, &got.body)
    );

    // An update that sets the secret seals it too.
    let third = "a-plain-caller-secret-123";
    let (st, v) = s
        .call_as(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            Some(ADMIN),
            &[],
            Some(&json!({"secret": third})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let row = stored_secrets(&env.db, id).await;
    assert!(
        row.secret.starts_with("enc:v1:") && !row.secret.contains(third),
        "{}",
        row.secret
    );
    sqlite_files_lack(&env.db, third);
    let (_, v) = api_secret(s, id).await;
    assert_eq!(v["secret"], third);
}

#[tokio::test]
async fn sealed_secrets_survive_a_restart() {
    let db = TestDb::new();
    let mut rx = TestReceiver::start(200);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut config = test_config(&db);
    config.secret_key = Some(SECRET_KEY.into());
    let first = TestServer::start(config.clone());
    let hook = first
        .create_webhook("t", "a/b", &rx.url, json!({"secret": secret}))
        .await;
    first.stop();
    let second = TestServer::start(config);
    let id = id_of(&hook);
    let (st, v) = second.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!((st, v["secret"].as_str()), (200, Some(secret)), "{v}");
    second.publish("t", "a/b", json!({})).await;
    let got = rx.expect(WAIT).await;
    assert!(standard_verifies(secret, &got));
    assert!(stored_secrets(&db, id).await.secret.starts_with("enc:v1:"));
}
