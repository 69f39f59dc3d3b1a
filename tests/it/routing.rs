//! Routing and payloads, part 1 (README, Routing and payloads): webhook filters on the payload,
//! evaluated at intake and by `/match`, and `<prefix>/*` event-type patterns.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::utils::{assert_error, deliveries_of, Env, TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn id_of(hook: &Value) -> i64 {
    hook["webhook_id"].as_i64().expect("webhook_id")
}

/// Publishes and returns how many deliveries the event created.
async fn deliveries_for(s: &TestServer, tenant: &str, event: &str, data: Value) -> i64 {
    s.publish(tenant, event, data).await["deliveries"]
        .as_i64()
        .expect("deliveries")
}

/// The ids `/match` lists for `body`.
async fn matched(s: &TestServer, body: Value) -> Vec<i64> {
    let (status, v) = s.post("/api/webhooks/match", &body).await;
    assert_eq!(status, 200, "match {body}: {v}");
    v["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn a_filter_decides_at_intake_which_events_create_deliveries() {
    let env = Env::start();
    let s = &env.server;
    let mut big = TestReceiver::start(200);
    let all = TestReceiver::start(200);
    let filter = json!({"data.claimAmount": {"$gte": 5000},
        "$or": [{"data.region": {"$in": ["EU", "UK"]}}, {"$not": {"user.id": "u-1"}}]});
    let filtered = s
        .create_webhook("t1", "claim/opened", &big.url, json!({"filter": filter}))
        .await;
    assert_eq!(filtered["filter"], filter, "returned as given");
    let plain = s
        .create_webhook("t1", "claim/opened", &all.url, json!({}))
        .await;
    assert_eq!(plain["filter"], Value::Null);

    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"claimAmount": 1000})).await,
        1
    );
    assert_eq!(
        deliveries_for(
            s,
            "t1",
            "claim/opened",
            json!({"claimAmount": 7500, "region": "EU"})
        )
        .await,
        2
    );
    // `user` is part of the payload the filter sees: u-1 outside EU/UK fails the `$or`.
    let (status, v) = s
        .post(
            "/api/events",
            &json!({"event": "claim/opened", "user": {"id": "u-1"},
                    "data": {"tenantId": "t1", "claimAmount": 9000, "region": "US"}}),
        )
        .await;
    assert_eq!((status, v["deliveries"].as_i64()), (202, Some(1)), "{v}");

    let got = big.expect(WAIT).await;
    assert_eq!(got.json()["data"]["claimAmount"], 7500);
    assert_eq!(deliveries_of(s, None, id_of(&filtered)).await.len(), 1);
    assert_eq!(deliveries_of(s, None, id_of(&plain)).await.len(), 3);
}

/// A webhook of `t1` on `claim/opened` with `filter`, and its path.
async fn filtered_webhook(s: &TestServer, filter: Value) -> (Value, String) {
    let hook = s
        .create_webhook(
            "t1",
            "claim/opened",
            "http://127.0.0.1:9/h",
            json!({ "filter": filter }),
        )
        .await;
    let path = format!("/api/webhooks/{}", id_of(&hook));
    (hook, path)
}

#[tokio::test]
async fn a_filter_is_kept_changed_and_removed_by_updates() {
    let env = Env::start();
    let s = &env.server;
    let (_, path) = filtered_webhook(s, json!({"data.a": 1})).await;
    let (status, v) = s.get(&path).await;
    assert_eq!((status, &v["filter"]), (200, &json!({"data.a": 1})));
    let (_, v) = s
        .json(Method::PATCH, &path, &json!({"webhook_name": "renamed"}))
        .await;
    assert_eq!(v["filter"], json!({"data.a": 1}), "an omitted filter stays");
    let (_, v) = s
        .json(
            Method::PUT,
            &path,
            &json!({"filter": {"data.a": {"$ne": 2}}}),
        )
        .await;
    assert_eq!(v["filter"], json!({"data.a": {"$ne": 2}}));
    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"a": 2})).await,
        0
    );
    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"a": 3})).await,
        1
    );
    let (_, v) = s.json(Method::PUT, &path, &json!({"filter": null})).await;
    assert_eq!(v["filter"], Value::Null, "null removes the filter");
    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"a": 2})).await,
        1
    );
    // `{}` passes everything.
    let (_, v) = s.json(Method::PUT, &path, &json!({"filter": {}})).await;
    assert_eq!(v["filter"], json!({}));
    assert_eq!(deliveries_for(s, "t1", "claim/opened", json!({})).await, 1);
}

/// A number past the 64-bit signed range in a filter (found by schemathesis: the `PUT` stored it,
/// then answered `500` reading it back) is kept as the nearest double, on both backends.
#[tokio::test]
async fn a_filter_holding_an_integer_beyond_the_signed_range_is_stored_and_applied() {
    let env = Env::start();
    let s = &env.server;
    let (hook, path) = filtered_webhook(s, json!({"data.n": u64::MAX})).await;
    let double = json!(u64::MAX as f64);
    assert_eq!(hook["filter"]["data.n"], double, "{hook}");
    let (status, v) = s
        .json(
            Method::PUT,
            &path,
            &json!({"filter": {"data.n": {"$gte": u64::MAX}}}),
        )
        .await;
    assert_eq!(
        (status, &v["filter"]["data.n"]["$gte"]),
        (200, &double),
        "{v}"
    );
    let (status, v) = s.get(&path).await;
    assert_eq!(
        (status, &v["filter"]["data.n"]["$gte"]),
        (200, &double),
        "{v}"
    );
    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"n": u64::MAX})).await,
        1
    );
    assert_eq!(
        deliveries_for(s, "t1", "claim/opened", json!({"n": i64::MAX})).await,
        0
    );
}

#[tokio::test]
async fn every_invalid_filter_is_a_422_on_filter() {
    let env = Env::start();
    let s = &env.server;
    let deep = (0..10).fold(json!(1), |v, _| json!([v]));
    let bad = [
        json!([]),
        json!("data.a"),
        json!(5),
        json!({"$nor": [{"a": 1}]}),
        json!({"data.a": {"$not": {"$eq": 1}}}),
        json!({"data.a": {"$gt": true}}),
        json!({"data.a": {"$in": "EU"}}),
        json!({"data.a": {"$exists": 1}}),
        json!({"data.a": {"$regex": ["x"]}}),
        json!({"data.a": {"$regex": "(unclosed"}}),
        json!({"data.a": {"$eq": 1, "b": 2}}),
        json!({"$and": []}),
        json!({"$or": [5]}),
        json!({"$not": []}),
        json!({"data.a": deep}),
        json!({"data.a": "x".repeat(4100)}),
    ];
    let hook = s
        .create_webhook("t1", "claim/opened", "http://127.0.0.1:9/h", json!({}))
        .await;
    let path = format!("/api/webhooks/{}", id_of(&hook));
    for f in bad {
        let body = json!({"webhook_name": "n", "tenant_id": "t1", "event_type": "claim/opened",
                          "url": "http://127.0.0.1:9/h", "filter": f});
        let answer = s.post("/api/webhooks", &body).await;
        assert_error(
            (answer.0, &answer.1),
            422,
            Some("validation_failed"),
            Some("filter"),
            &f,
        );
        let answer = s.json(Method::PUT, &path, &json!({ "filter": f })).await;
        assert_error((answer.0, &answer.1), 422, None, Some("filter"), &f);
    }
    let (_, v) = s.get(&path).await;
    assert_eq!(v["filter"], Value::Null, "nothing was stored");
}

#[tokio::test]
async fn match_evaluates_filters_only_when_given_data() {
    let env = Env::start();
    let s = &env.server;
    let eu = s
        .create_webhook(
            "t1",
            "claim/*",
            "http://127.0.0.1:9/a",
            json!({"filter": {"data.region": "EU", "event": "claim/opened"}}),
        )
        .await;
    let vip = s
        .create_webhook(
            "t1",
            "*",
            "http://127.0.0.1:9/b",
            json!({"filter": {"user.id": "u-9", "timestamp": {"$exists": true}}}),
        )
        .await;
    let open = s
        .create_webhook("t1", "claim/opened", "http://127.0.0.1:9/c", json!({}))
        .await;
    let (eu, vip, open) = (id_of(&eu), id_of(&vip), id_of(&open));
    let base = json!({"event_type": "claim/opened", "tenant_id": "t1"});
    assert_eq!(
        matched(s, base.clone()).await,
        vec![eu, vip, open],
        "without data: by type"
    );
    let with = |data: Value, user: Value| {
        let mut b = base.clone();
        b["data"] = data;
        b["user"] = user;
        b
    };
    assert_eq!(
        matched(s, with(json!({"region": "EU"}), Value::Null)).await,
        vec![eu, open]
    );
    assert_eq!(
        matched(s, with(json!({"region": "US"}), json!({"id": "u-9"}))).await,
        vec![vip, open]
    );
}

#[tokio::test]
async fn prefix_patterns_route_by_index_and_star_skips_nothing_but_ops() {
    let env = Env::start();
    let s = &env.server;
    let url = "http://127.0.0.1:9/h";
    let claim = id_of(&s.create_webhook("t1", "claim/*", url, json!({})).await);
    let reserve = id_of(
        &s.create_webhook("t1", "claim/reserve/*", url, json!({}))
            .await,
    );
    let star = id_of(&s.create_webhook("t1", "*", url, json!({})).await);
    let exact = id_of(&s.create_webhook("t1", "claim/opened", url, json!({})).await);
    let other = id_of(&s.create_webhook("t2", "claim/*", url, json!({})).await);
    let table: &[(&str, &[i64])] = &[
        ("claim/opened", &[claim, star, exact]),
        ("claim/reserve/changed", &[claim, reserve, star]),
        ("claims/opened", &[star]),
        ("claim", &[star]),
        ("policy/bound", &[star]),
    ];
    for (ty, want) in table {
        let got = matched(s, json!({"event_type": ty, "tenant_id": "t1"})).await;
        assert_eq!(got, *want, "match {ty}");
        let n = deliveries_for(s, "t1", ty, json!({})).await;
        assert_eq!(n, want.len() as i64, "publish {ty}");
    }
    assert_eq!(deliveries_of(s, None, other).await.len(), 0, "other tenant");
    // `*` leaves out the dispatcher's own `beema/` events; `beema/*` gets them (asked through
    // `/match`: publishing a `beema/` type is reserved to the dispatcher).
    let ops = id_of(&s.create_webhook("t1", "beema/*", url, json!({})).await);
    let got = matched(
        s,
        json!({"event_type": "beema/circuit.opened", "tenant_id": "t1"}),
    )
    .await;
    assert_eq!(got, vec![ops]);
    // The listing compares stored strings.
    let (_, v) = s.get("/api/webhooks?event_type=claim/*").await;
    let ids: Vec<i64> = v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![claim, other]);
}

#[tokio::test]
async fn non_patterns_are_a_422_on_event_type() {
    let env = Env::start();
    let s = &env.server;
    let hook = s
        .create_webhook("t1", "claim/opened", "http://127.0.0.1:9/h", json!({}))
        .await;
    let path = format!("/api/webhooks/{}", id_of(&hook));
    for ty in [
        "cl*im",
        "claim*",
        "*/opened",
        "claim/*/x",
        "claim/**",
        "/*",
        "**",
        "claim /*",
    ] {
        let body = json!({"webhook_name": "n", "tenant_id": "t1", "event_type": ty,
                          "url": "http://127.0.0.1:9/h"});
        let answer = s.post("/api/webhooks", &body).await;
        assert_error(
            (answer.0, &answer.1),
            422,
            Some("validation_failed"),
            Some("event_type"),
            ty,
        );
        let answer = s
            .json(Method::PUT, &path, &json!({ "event_type": ty }))
            .await;
        assert_error((answer.0, &answer.1), 422, None, Some("event_type"), ty);
    }
    let (_, v) = s
        .json(Method::PUT, &path, &json!({"event_type": "claim/*"}))
        .await;
    assert_eq!(v["event_type"], "claim/*");
    assert_eq!(deliveries_for(s, "t1", "claim/settled", json!({})).await, 1);
}
