//! The routes the server registers against its OpenAPI document: every registered (method, path)
//! is described, and is really served, credentials first (README, API).

use reqwest::Method;

use crate::utils::Env;

const ADMIN: &str = "admin-token-for-route-tests";
const EVENT_KEY: &str = "event-key-for-route-tests";

/// A concrete path for a pattern: any value will do, the credentials are refused first.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_registered_route_is_described_and_checks_credentials_first() {
    let Env { server, db: _db } = Env::with(|c| {
        c.admin_token = Some(ADMIN.into());
        c.event_key = Some(EVENT_KEY.into());
    });
    let server = server.with_token(ADMIN);
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    let routes = beema_webhooks::api::route_table();
    assert!(routes.len() > 20, "{routes:?}");
    for (method, path) in routes {
        let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let name = method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&path][&name];
        assert!(op["responses"].is_object(), "{method} {path} is described");
        // A wrong token with everything else malformed too: the token decides.
        let url = format!("{}{}?limit=many", server.base, concrete(&path));
        let mut req = reqwest::Client::new()
            .request(method.clone(), url)
            // A `bk_` token is looked up in the database: the body and query wait for that.
            .bearer_auth("bk_not-a-key")
            .header("x-tenant-id", "not a tenant!");
        if method != Method::GET && method != Method::HEAD {
            req = req.header("content-type", "text/plain").body("{");
        }
        let status = req.send().await.expect("request").status().as_u16();
        let open = path == "/healthz" || path == "/readyz";
        assert_eq!(
            status,
            if open { 200 } else { 401 },
            "{method} {path} is served and refuses a wrong token first"
        );
    }
}
