//! The event-type catalog (README, Event-type catalog): declared types from `migrate` on, figures
//! of the types seen in the caller's scope, admin-only declarations, and schema checks at publish
//! time.

use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{assert_error, Env, TestDb, TestServer};

/// A server whose admin API is open on loopback (no bearer: the global admin; a tenant key
/// presented as bearer: that tenant), and its database (dropped after it).
fn open_env() -> (TestServer, TestDb) {
    let Env { server, db } = Env::start();
    (server, db)
}

async fn key(s: &TestServer, tenant: &str, role: &str) -> String {
    let body = json!({"tenant_id": tenant, "role": role, "name": "k"});
    let (status, v) = s.post("/api/keys", &body).await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().expect("key").to_string()
}

/// The catalog as `bearer` (default: the admin) with extra headers.
async fn catalog(s: &TestServer, bearer: Option<&str>, headers: &[(&str, &str)]) -> Vec<Value> {
    let (status, v) = s
        .call_as(Method::GET, "/api/event-types", bearer, headers, None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["event_types"].as_array().expect("event_types").clone()
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|t| t["name"] == name)
}

#[tokio::test]
async fn migrate_declares_the_kernel_and_ops_types_with_schemas() {
    let (s, _db) = open_env();
    let list = catalog(&s, None, &[]).await;
    let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "agreement/updated",
            "beema/circuit.closed",
            "beema/circuit.opened",
            "beema/delivery.failed",
            "beema/webhook.disabled",
            "claim/opened",
            "claim/settled",
            "policy/bound",
        ]
    );
    for t in &list {
        assert!(
            t["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{t}"
        );
        assert_eq!(t["schema"]["type"], "object", "{t}");
        assert_eq!(
            (t["count"].as_i64(), &t["first_seen"], &t["last_seen"]),
            (Some(0), &Value::Null, &Value::Null)
        );
        assert!(t["updated_at"].is_string(), "{t}");
    }
    let policy = named(&list, "policy/bound").unwrap();
    let props = &policy["schema"]["properties"];
    assert_eq!(props["premium"], json!({"type": "number", "minimum": 0}));
    for s in ["tenantId", "policyNumber", "agreementId", "marketContext"] {
        assert_eq!(props[s], json!({"type": "string"}), "{s}");
    }
    assert_eq!(
        named(&list, "claim/opened").unwrap()["schema"]["properties"]["claimAmount"]["minimum"],
        0
    );
    assert_eq!(
        named(&list, "claim/settled").unwrap()["schema"]["properties"]["settledAmount"]["minimum"],
        0
    );
    assert!(
        policy["schema"].get("required").is_none(),
        "nothing required"
    );
}

#[tokio::test]
async fn figures_cover_stored_events_in_the_callers_scope() {
    let (s, _db) = open_env();
    for (tenant, ty) in [
        ("t1", "claim/opened"),
        ("t1", "claim/opened"),
        ("t1", "custom/thing"),
        ("t2", "claim/opened"),
    ] {
        s.publish(tenant, ty, json!({})).await;
    }
    // A test send is not counted.
    let hook = s
        .create_webhook("t1", "claim/opened", "http://127.0.0.1:9/h", json!({}))
        .await;
    let (status, _) = s
        .post(
            &format!("/api/webhooks/{}/test", hook["webhook_id"]),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202);

    let all = catalog(&s, None, &[]).await;
    let opened = named(&all, "claim/opened").unwrap();
    assert_eq!(opened["count"], 3);
    assert!(opened["first_seen"].as_str().unwrap() <= opened["last_seen"].as_str().unwrap());
    let custom = named(&all, "custom/thing").unwrap();
    assert_eq!(
        (
            custom["count"].as_i64(),
            &custom["description"],
            &custom["schema"],
            &custom["updated_at"]
        ),
        (Some(1), &Value::Null, &Value::Null, &Value::Null)
    );
    assert!(named(&all, "webhook/test").is_none());
    let names: Vec<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "byte order of name");

    let t1 = catalog(&s, None, &[("x-tenant-id", "t1")]).await;
    assert_eq!(named(&t1, "claim/opened").unwrap()["count"], 2);
    let t2_admin = key(&s, "t2", "admin").await;
    let t2 = catalog(&s, Some(&t2_admin), &[]).await;
    assert_eq!(named(&t2, "claim/opened").unwrap()["count"], 1);
    assert!(
        named(&t2, "custom/thing").is_none(),
        "undeclared types seen elsewhere stay hidden"
    );
    assert_eq!(
        named(&t2, "policy/bound").unwrap()["count"],
        0,
        "declared types are listed"
    );

    for path in [
        "/api/event-types/claim/opened",
        "/api/event-types/claim%2Fopened",
    ] {
        let (status, v) = s
            .call_as(Method::GET, path, Some(&t2_admin), &[], None)
            .await;
        assert_eq!(
            (status, &v["name"], &v["count"]),
            (200, &json!("claim/opened"), &json!(1)),
            "{path}: {v}"
        );
    }
    let (status, v) = s.get("/api/event-types/custom/thing").await;
    assert_eq!((status, &v["count"]), (200, &json!(1)));
    let answer = s
        .call_as(
            Method::GET,
            "/api/event-types/custom/thing",
            Some(&t2_admin),
            &[],
            None,
        )
        .await;
    assert_error(
        (answer.0, &answer.1),
        404,
        None,
        None,
        "seen only in another tenant",
    );
    let answer = s.get("/api/event-types/never/seen").await;
    assert_error((answer.0, &answer.1), 404, None, None, "unknown type");

    let publisher = key(&s, "t1", "publisher").await;
    let answer = s
        .call_as(Method::GET, "/api/event-types", Some(&publisher), &[], None)
        .await;
    assert_error((answer.0, &answer.1), 403, None, None, "publisher key");
}

#[tokio::test]
async fn the_global_admin_declares_and_changes_types() {
    let (s, _db) = open_env();
    let schema = json!({"type": "object", "properties": {"amount": {"type": "number"}}});
    let (status, v) = s
        .post(
            "/api/event-types/invoice/paid",
            &json!({"description": "An invoice was paid.", "schema": schema}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (&v["name"], &v["description"], &v["schema"], &v["count"]),
        (
            &json!("invoice/paid"),
            &json!("An invoice was paid."),
            &schema,
            &json!(0)
        )
    );
    // Omitted fields stay; `schema: null` removes the schema.
    let (status, v) = s
        .json(
            Method::PUT,
            "/api/event-types/invoice%2Fpaid",
            &json!({"schema": null}),
        )
        .await;
    assert_eq!(
        (status, &v["description"], &v["schema"]),
        (200, &json!("An invoice was paid."), &Value::Null),
        "{v}"
    );
    let (status, v) = s
        .json(
            Method::PUT,
            "/api/event-types/claim/opened",
            &json!({"description": "Opened."}),
        )
        .await;
    assert_eq!((status, &v["description"]), (200, &json!("Opened.")));
    assert_eq!(
        v["schema"]["properties"]["claimAmount"]["minimum"], 0,
        "the schema stays"
    );
    let (_, got) = s.get("/api/event-types/invoice/paid").await;
    assert_eq!(got["description"], "An invoice was paid.");

    let tenant_admin = key(&s, "t1", "admin").await;
    for method in [Method::POST, Method::PUT] {
        let answer = s
            .call_as(
                method,
                "/api/event-types/invoice/paid",
                Some(&tenant_admin),
                &[],
                Some(&json!({"description": "x"})),
            )
            .await;
        assert_error((answer.0, &answer.1), 403, None, None, "tenant admin key");
    }
}

/// A schema holding an integer past the 64-bit signed range is kept as the nearest double (README,
/// Filters), not stored in a form that can no longer be read.
#[tokio::test]
async fn a_schema_holding_an_integer_beyond_the_signed_range_reads_back() {
    let (s, _db) = open_env();
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "number", "maximum": u64::MAX}}});
    let (status, v) = s
        .post("/api/event-types/big/number", &json!({"schema": schema}))
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s.get("/api/event-types/big/number").await;
    assert_eq!(
        (status, &v["schema"]["properties"]["n"]["maximum"]),
        (200, &json!(u64::MAX as f64)),
        "{v}"
    );
}

#[tokio::test]
async fn invalid_declarations_are_422s_naming_the_field() {
    let (s, _db) = open_env();
    let cases: &[(&str, Value, &str)] = &[
        ("*", json!({}), "name"),
        ("claim/*", json!({}), "name"),
        (
            "beema/delivery.failed",
            json!({"description": "mine"}),
            "name",
        ),
        ("beema/new", json!({}), "name"),
        ("bad%20name", json!({}), "name"),
        (
            "a/b",
            json!({"description": "x".repeat(1001)}),
            "description",
        ),
        ("a/b", json!({"description": 5}), "description"),
        ("a/b", json!({"schema": {"type": "nope"}}), "schema"),
        ("a/b", json!({"schema": {"minimum": "zero"}}), "schema"),
        ("a/b", json!({"schema": 7}), "schema"),
        (
            "a/b",
            json!({"schema": {"$schema": "http://json-schema.org/draft-07/schema#"}}),
            "schema",
        ),
        (
            "a/b",
            json!({"schema": {"$ref": "https://example.com/s.json"}}),
            "schema",
        ),
        (
            "a/b",
            json!({"schema": {"properties": {"x": {"$ref": "other.json#/a"}}}}),
            "schema",
        ),
        (
            "a/b",
            json!({"schema": {"description": "x".repeat(65 * 1024)}}),
            "schema",
        ),
    ];
    for (name, body, field) in cases {
        let answer = s.post(&format!("/api/event-types/{name}"), body).await;
        assert_error(
            (answer.0, &answer.1),
            422,
            Some("validation_failed"),
            Some(field),
            name,
        );
    }
    let (status, _) = s.get("/api/event-types/a/b").await;
    assert_eq!(status, 404, "nothing was stored");
    let local = json!({"$defs": {"n": {"type": "number", "minimum": 0}}, "properties": {"x": {"$ref": "#/$defs/n"}}});
    let (status, v) = s
        .post("/api/event-types/a/b", &json!({"schema": local}))
        .await;
    assert_eq!(status, 201, "{v}");
    let answer = s
        .post(
            "/api/events",
            &json!({"event": "a/b", "data": {"tenantId": "t1", "x": -1}}),
        )
        .await;
    assert_error(
        (answer.0, &answer.1),
        422,
        Some("schema_validation_failed"),
        Some("data.x"),
        "local $ref",
    );
}

#[tokio::test]
async fn publishing_checks_data_against_the_schema_all_or_nothing() {
    let (s, _db) = open_env();
    let ok = json!({"event": "policy/bound", "data": {"tenantId": "t1", "premium": 10}});
    let bad = json!({"event": "policy/bound", "data": {"tenantId": "t1", "premium": -5}});
    s.create_webhook("t1", "*", "http://127.0.0.1:9/h", json!({}))
        .await;
    let (status, v) = s.post("/api/events", &json!([ok, ok, bad])).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        v["error"],
        json!({"code": "schema_validation_failed", "field": "[2].data.premium",
               "message": "event 2: [2].data.premium: -5 is less than the minimum of 0"})
    );
    for path in ["/api/inngest", "/e/any-key"] {
        let answer = s.post(path, &bad).await;
        assert_error(
            (answer.0, &answer.1),
            422,
            Some("schema_validation_failed"),
            Some("data.premium"),
            path,
        );
        assert!(answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("event 0: "));
    }
    // Array indexes inside `data` are dot segments; `format` is not checked.
    let schema = json!({"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
        "at": {"type": "string", "format": "date-time"}}});
    let (status, _) = s
        .post("/api/event-types/order/placed", &json!({"schema": schema}))
        .await;
    assert_eq!(status, 201);
    let answer = s
        .post("/api/events", &json!({"event": "order/placed", "data": {"tenantId": "t1", "items": [{"sku": "a"}, {"sku": 1}]}}))
        .await;
    assert_error(
        (answer.0, &answer.1),
        422,
        Some("schema_validation_failed"),
        Some("data.items.1.sku"),
        "array path",
    );
    let (status, v) = s
        .post(
            "/api/events",
            &json!({"event": "order/placed", "data": {"tenantId": "t1", "at": "not a date"}}),
        )
        .await;
    assert_eq!(status, 202, "{v}");

    let (_, list) = s.get("/api/event-types/policy/bound").await;
    assert_eq!(list["count"], 0, "nothing stored by refused requests");
    let (status, v) = s.post("/api/events", &json!([ok, ok])).await;
    assert_eq!((status, v["deliveries"].as_i64()), (202, Some(2)));
    // A changed schema applies from the next publish.
    let (status, _) = s
        .json(
            Method::PUT,
            "/api/event-types/policy/bound",
            &json!({"schema": null}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, v) = s.post("/api/events", &bad).await;
    assert_eq!(status, 202, "{v}");
    let (_, one) = s.get("/api/event-types/policy/bound").await;
    assert_eq!(one["count"], 3);
}

#[tokio::test]
async fn validate_events_false_turns_the_check_off() {
    let env = Env::with(|c| c.validate_events = false);
    let s = &env.server;
    let (status, v) = s
        .post(
            "/api/events",
            &json!({"event": "policy/bound", "data": {"tenantId": "t1", "premium": -5}}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let (_, t) = s.get("/api/event-types/policy/bound").await;
    assert_eq!(
        t["schema"]["properties"]["premium"]["minimum"], 0,
        "schemas stay listed"
    );
    assert_eq!(t["count"], 1);
}

/// Removes a type's schema past the server, as another process sharing the database would.
async fn drop_schema_elsewhere(db: &TestDb, name: &str) {
    use beema_webhooks::config::DatabaseUrl;
    use diesel::sql_types::Text;
    match &db.url {
        DatabaseUrl::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::SqliteConnection::establish(path).expect("open the SQLite file");
            diesel::sql_query(
                "UPDATE sys_event_types SET schema = NULL, \
                 updated_at = datetime('now', '+1 day') WHERE name = ?",
            )
            .bind::<Text, _>(name)
            .execute(&mut c)
            .expect("update sys_event_types");
        }
        DatabaseUrl::Postgres(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url)
                .await
                .expect("connect to PostgreSQL");
            diesel::sql_query(
                "UPDATE sys_event_types SET schema = NULL, \
                 updated_at = (now() AT TIME ZONE 'utc') + interval '1 day' WHERE name = $1",
            )
            .bind::<Text, _>(name)
            .execute(&mut c)
            .await
            .expect("update sys_event_types");
        }
    }
}

#[tokio::test]
async fn a_schema_changed_by_another_process_applies_within_the_recheck_interval() {
    let (s, db) = open_env();
    let bad = json!({"event": "policy/bound", "data": {"tenantId": "t1", "premium": -5}});
    let (status, _) = s.post("/api/events", &bad).await;
    assert_eq!(status, 422);
    drop_schema_elsewhere(&db, "policy/bound").await;
    crate::utils::eventually(
        std::time::Duration::from_secs(5),
        "the publish to pass once the schema is gone",
        || async {
            let (status, v) = s.post("/api/events", &bad).await;
            if status == 202 {
                Ok(())
            } else {
                Err(v)
            }
        },
    )
    .await;
}
