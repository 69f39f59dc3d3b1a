//! The SSRF guard: non-public and malformed targets are refused at registration and update,
//! checked again at connect time, and redirects are never followed.

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_hook, guarded_env, id_of, ADMIN, EVENT, QUIET, WAIT};
use crate::utils::{
    assert_error, deliveries_of, eventually, test_config, Env, Reply, TestDb, TestReceiver,
    TestServer,
};

/// Every spelling of a non-public target.
const PRIVATE_URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://localhost/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[fd00::1]/",
    // More of the same.
    "http://0177.0.0.1/",
    "http://0x7f000001/",
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/",
    "http://LOCALHOST/",
    "http://172.16.0.1/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
];

/// URLs refused for their form, whatever the policy.
const MALFORMED_URLS: &[&str] = &[
    "http://user:pass@93.184.216.34/",
    "http://user@93.184.216.34/",
    "https://:pw@93.184.216.34/",
    "ftp://93.184.216.34/",
    "file:///etc/passwd",
    "gopher://93.184.216.34/",
    "javascript:alert(1)",
    "/relative/path",
    "93.184.216.34",
    "",
    "http://",
];

/// The newest delivery of a webhook, once it has failed.
async fn failed_delivery(s: &TestServer, webhook_id: i64) -> Value {
    eventually(WAIT, "the delivery to fail", || async {
        let d = deliveries_of(s, None, webhook_id).await;
        d.first().filter(|d| d["status"] == "failed").cloned()
    })
    .await
}

#[tokio::test]
async fn private_targets_are_refused_on_create_and_update() {
    let env = guarded_env();
    let s = &env.server;
    // A public IP literal needs no DNS and is allowed.
    let public = "http://93.184.216.34/hook";
    let hook = create_hook(
        s,
        Some(ADMIN),
        json!({"webhook_name": "pub", "tenant_id": "t", "event_type": "*", "url": public}),
    )
    .await;
    let id = id_of(&hook);

    for (urls, names_setting) in [(PRIVATE_URLS, true), (MALFORMED_URLS, false)] {
        for url in urls {
            let create =
                json!({"webhook_name": "x", "tenant_id": "t", "event_type": "*", "url": url});
            let up = json!({"url": url});
            let by_body = json!({"webhook_id": id, "url": url});
            let path = format!("/api/webhooks/{id}");
            for (how, method, path, body) in [
                ("create", Method::POST, "/api/webhooks", &create),
                ("PUT", Method::PUT, path.as_str(), &up),
                ("PATCH", Method::PATCH, path.as_str(), &up),
                ("PUT by body", Method::PUT, "/api/webhooks", &by_body),
            ] {
                let (st, v) = s.call_as(method, path, Some(ADMIN), &[], Some(body)).await;
                let e = assert_error(
                    (st, &v),
                    422,
                    Some("validation_failed"),
                    Some("url"),
                    format!("{how} {url}"),
                );
                let msg = e["message"].as_str().unwrap_or("");
                assert!(
                    !names_setting || msg.contains("BEEMA_ALLOW_PRIVATE_TARGETS"),
                    "{how} {url}: message does not name the setting: {msg}"
                );
            }
        }
    }
    // Nothing was created or changed.
    let (_, list) = s
        .call_as(Method::GET, "/api/webhooks", Some(ADMIN), &[], None)
        .await;
    let list = list["webhooks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["url"], public);
}

#[tokio::test]
async fn allowed_cidrs_let_a_local_receiver_through() {
    let env = Env::with(|cfg| {
        cfg.admin_token = Some(ADMIN.into());
        cfg.event_key = Some(EVENT.into());
        cfg.targets.allow_private = false;
        cfg.targets.allowed_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    });
    let s = &env.server;
    let mut rx = TestReceiver::start(200);
    let hook = create_hook(
        s,
        Some(ADMIN),
        json!({"webhook_name": "local", "tenant_id": "t", "event_type": "a/b", "url": rx.url}),
    )
    .await;
    let event = json!({"event": "a/b", "data": {"tenantId": "t"}});
    let (st, v) = s
        .call_as(Method::POST, "/api/events", Some(EVENT), &[], Some(&event))
        .await;
    assert_eq!((st, &v["deliveries"]), (202, &json!(1)), "{v}");
    let got = rx.expect(WAIT).await;
    assert_eq!(got.json()["event"], "a/b");
    let id = id_of(&hook);
    eventually(WAIT, "the delivery to succeed", || async {
        let d = deliveries_of(s, Some(ADMIN), id).await;
        d.first().filter(|d| d["status"] == "success").map(|_| ())
    })
    .await;
    // Only that range: its neighbours stay refused.
    for url in [
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ] {
        let body = json!({"webhook_name": "x", "tenant_id": "t", "event_type": "*", "url": url});
        let (st, v) = s
            .call_as(Method::POST, "/api/webhooks", Some(ADMIN), &[], Some(&body))
            .await;
        assert_error((st, &v), 422, None, Some("url"), url);
    }
}

#[tokio::test]
async fn targets_are_checked_again_at_connect_time() {
    let db = TestDb::new();
    let mut rx = TestReceiver::start(200);
    let port = rx
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let by_name = format!("http://localhost:{port}/hook");
    // Registered while private targets were allowed.
    let first = TestServer::start(test_config(&db));
    let once = json!({"retry_config": {"maxAttempts": 1}});
    let literal = first
        .create_webhook("t", "a/b", &rx.url, once.clone())
        .await;
    let named = first.create_webhook("t", "a/b", &by_name, once).await;
    first.stop();

    // The same database, now with the guard on.
    let mut config = test_config(&db);
    config.targets.allow_private = false;
    let second = TestServer::start(config);
    let published = second.publish("t", "a/b", json!({})).await;
    assert_eq!(published["deliveries"], 2);
    assert!(
        rx.next(QUIET).await.is_none(),
        "a non-public target was contacted"
    );
    for hook in [&literal, &named] {
        let delivery = failed_delivery(&second, id_of(hook)).await;
        assert!(delivery["status_code"].is_null(), "{delivery}");
        let path = format!(
            "/api/webhooks/deliveries/{}",
            delivery["delivery_id"].as_str().unwrap()
        );
        let (st, one) = second.get(&path).await;
        assert_eq!(st, 200);
        let attempts = one["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{one}");
        let err = attempts[0]["error_message"].as_str().unwrap_or("");
        assert!(
            err.contains("blocked") || err.contains("non-public"),
            "{} attempt error: {err}",
            hook["url"]
        );
        assert!(attempts[0]["status_code"].is_null(), "{one}");
    }
    assert!(rx.drain().is_empty());
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let env = Env::with(|cfg| {
        cfg.targets.allow_private = false;
        cfg.targets.allowed_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    });
    let s = &env.server;
    let mut other = TestReceiver::start(200);
    let mut hooks = Vec::new();
    let mut redirectors = Vec::new();
    for status in [301, 302, 303, 307, 308] {
        let r = TestReceiver::start(200);
        r.set_reply(Reply::status(status).header("Location", &other.url));
        let h = s
            .create_webhook(
                "t",
                "a/b",
                &r.url,
                json!({"retry_config": {"maxAttempts": 1}}),
            )
            .await;
        hooks.push((status, id_of(&h)));
        redirectors.push(r);
    }
    s.publish("t", "a/b", json!({})).await;
    for r in redirectors.iter_mut() {
        r.expect(WAIT).await;
    }
    assert!(other.next(QUIET).await.is_none(), "a redirect was followed");
    for (status, id) in hooks {
        let d = failed_delivery(s, id).await;
        assert_eq!(d["status_code"], status, "{d}");
        let path = format!(
            "/api/webhooks/deliveries/{}",
            d["delivery_id"].as_str().unwrap()
        );
        let (_, one) = s.get(&path).await;
        assert_eq!(one["attempts"][0]["status_code"], status, "{one}");
    }
}
