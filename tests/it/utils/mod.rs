//! Test harness: a fresh database per test, the real server on 127.0.0.1:0, real receivers.
//!
//! `BEEMA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` runs every test against
//! PostgreSQL (a new database per test, dropped afterwards); without it each test gets a temporary
//! SQLite file.

#![allow(dead_code)] // a shared harness: not every test binary module uses every helper

pub mod answers;
pub mod nodes;
pub mod poll;
pub mod receiver;
pub mod signatures;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use beema_webhooks::config::{Config, DatabaseUrl, Tuning};
use beema_webhooks::delivery::ssrf::TargetPolicy;
use serde_json::Value;
use tokio::sync::oneshot;

pub use answers::{assert_error, deliveries_of};
pub use poll::eventually;
pub use receiver::{delivery_of, event_of, Received, Reply, TestReceiver};
pub use signatures::{beema_signature, standard_signature, standard_verifies};

/// A database of its own for one test.
pub struct TestDb {
    /// Its URL for the server.
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database.
    pub fn new() -> Self {
        match std::env::var("BEEMA_TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => Self::postgres(base),
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("test.db").to_string_lossy().into_owned();
                Self {
                    url: DatabaseUrl::Sqlite(path),
                    _dir: Some(dir),
                    pg: None,
                }
            }
        }
    }

    fn postgres(base: String) -> Self {
        let name = format!("beema_it_{}", uuid::Uuid::new_v4().simple());
        pg_admin(&base, &format!("CREATE DATABASE {name}"));
        let (prefix, _) = base
            .rsplit_once('/')
            .expect("postgres URL ends with /database");
        let url = format!("{prefix}/{name}");
        Self {
            url: DatabaseUrl::Postgres(url),
            _dir: None,
            pg: Some((base, name)),
        }
    }

    /// True when this test runs on PostgreSQL.
    pub fn is_pg(&self) -> bool {
        self.pg.is_some()
    }

    /// PostgreSQL only: closes this database to new connections (`false`) and ends the open ones,
    /// or opens it again (`true`) — a database outage without touching other tests.
    pub fn set_pg_available(&self, available: bool) {
        let Some((base, name)) = &self.pg else { return };
        pg_admin(
            base,
            &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {available}"),
        );
        if !available {
            pg_admin(base, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.pg {
            pg_admin(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Runs one statement on the maintenance database, on a thread with its own runtime.
fn pg_admin(base: &str, sql: &str) {
    let (base, sql) = (base.to_string(), sql.to_string());
    std::thread::spawn(move || {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut conn = AsyncPgConnection::establish(&base)
                .await
                .expect("connect to the test PostgreSQL");
            conn.batch_execute(&sql).await.expect("admin statement");
        });
    })
    .join()
    .expect("pg admin thread");
}

/// The configuration tests start from: private targets allowed, small windows, fast drains.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: db.url.clone(),
        admin_token: None,
        event_key: None,
        targets: TargetPolicy {
            allow_private: true,
            allowed_cidrs: vec![],
        },
        require_https: false,
        secret_key: None,
        max_body_bytes: 1_048_576,
        json_logs: false,
        tuning: Tuning {
            drain_timeout: Duration::from_secs(5),
            // The server runs in-process: transform workers are the built binary, not this one.
            transform_worker: Some(env!("CARGO_BIN_EXE_beema-webhooks").into()),
            ..Tuning::default()
        },
        validate_events: true,
        node_id: format!("it-{}", uuid::Uuid::new_v4().simple()),
        lease_ttl: Duration::from_secs(10),
    }
}

/// The real server, in a thread with its own actix System.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its address.
    pub addr: SocketAddr,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    token: Option<String>,
}

impl TestServer {
    /// Starts a server with `config`; requests wait in the listen backlog until it serves.
    pub fn start(config: Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = config;
        config.listen = addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(beema_webhooks::run(config, listener, async {
                let _ = stopped.await;
            }))
        });
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            stop: Some(stop),
            thread: Some(thread),
            token: None,
        }
    }

    /// Sends `Authorization: Bearer token` on every later request.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Stops the server gracefully and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("server failed: {e:#}"),
                Err(_) => panic!("server thread panicked"),
            }
        }
    }

    /// A request builder with the default credentials.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// A request with `bearer` as its token (for a server started without a default one).
    pub fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.request(method, path);
        match bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends `body` as JSON (when given) with an optional bearer token and extra headers.
    pub async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = self.request_as(method, path, bearer);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.send(r).await
    }

    /// Sends a request and returns status and JSON body (Null when empty or not JSON).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// POST a JSON value.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json(reqwest::Method::POST, path, body).await
    }

    /// Any method with a JSON body.
    pub async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let req = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// Creates a webhook for `tenant` and returns it (asserting 201).
    pub async fn create_webhook(
        &self,
        tenant: &str,
        event_type: &str,
        url: &str,
        extra: Value,
    ) -> Value {
        let mut body = serde_json::json!({
            "webhook_name": "test hook", "tenant_id": tenant, "event_type": event_type, "url": url,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, v) = self.post("/api/webhooks", &body).await;
        assert_eq!(status, 201, "create webhook: {v}");
        v
    }

    /// Publishes one event for `tenant` (asserting 202) and returns the response.
    pub async fn publish(&self, tenant: &str, event: &str, data: Value) -> Value {
        let mut data = data;
        if let Some(o) = data.as_object_mut() {
            o.insert("tenantId".into(), Value::String(tenant.into()));
        }
        let (status, v) = self
            .post(
                "/api/events",
                &serde_json::json!({ "event": event, "data": data }),
            )
            .await;
        assert_eq!(status, 202, "publish: {v}");
        v
    }

    /// Polls `GET path` (which must answer 200) until `check` holds for its body, or panics after
    /// `timeout` (see [`eventually`]).
    pub async fn wait_get(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(
            timeout,
            &format!("GET {path} to satisfy the check"),
            || async {
                let (status, v) = self.get(path).await;
                assert_eq!(status, 200, "GET {path}: {v}");
                if check(&v) {
                    Ok(v)
                } else {
                    Err(v)
                }
            },
        )
        .await
    }

    /// Waits until `check` holds for the delivery listing of `query`, or panics after `timeout`.
    pub async fn wait_deliveries(
        &self,
        query: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let list = |v: &Value| v["deliveries"].as_array().cloned().unwrap_or_default();
        let v = self
            .wait_get(&format!("/api/webhooks/deliveries?{query}"), timeout, |v| {
                check(&list(v))
            })
            .await;
        list(&v)
    }
}

/// A database, a server on it and a receiver: what most tests start with.
pub struct Env {
    /// The server.
    pub server: TestServer,
    /// The database (kept alive as long as the server).
    pub db: TestDb,
}

impl Env {
    /// Starts a server on a fresh database with the default test configuration.
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    /// Same, after `tweak` adjusts the configuration.
    pub fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new();
        let mut config = test_config(&db);
        tweak(&mut config);
        Self {
            server: TestServer::start(config),
            db,
        }
    }
}
