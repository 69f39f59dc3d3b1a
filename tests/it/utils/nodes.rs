//! Several nodes on one database: in-process servers with their own node ids, and the real binary
//! as a child process (for `SIGTERM` and `kill -9`), behind one small API trait.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{eventually, test_config, TestDb, TestServer};
use beema_webhooks::config::{Config, DatabaseUrl};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The database URL as the binary's `--database-url` takes it.
pub fn db_url(db: &TestDb) -> String {
    match &db.url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{path}"),
        DatabaseUrl::Postgres(url) => url.clone(),
    }
}

/// The HTTP API of one node, whether in-process or a child process.
#[allow(async_fn_in_trait)] // used by the tests of this crate only, never across threads
pub trait Api {
    /// Sends `body` (when given) as JSON with the node's default credentials.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value);

    /// `GET path`.
    async fn get_json(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Creates a webhook (asserting 201) and returns its id.
    async fn add_webhook(&self, tenant: &str, event_type: &str, url: &str, extra: Value) -> i64 {
        let mut body = json!({
            "webhook_name": "cluster hook", "tenant_id": tenant, "event_type": event_type, "url": url,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, v) = self.call(Method::POST, "/api/webhooks", Some(&body)).await;
        assert_eq!(status, 201, "create webhook: {v}");
        v["webhook_id"].as_i64().expect("webhook_id")
    }

    /// Publishes `events` (one event or an array) and returns the 202 answer.
    async fn publish_json(&self, events: &Value) -> Value {
        let (status, v) = self.call(Method::POST, "/api/events", Some(events)).await;
        assert_eq!(status, 202, "publish: {v}");
        v
    }

    /// `GET /metrics` as text (asserting 200).
    async fn metrics_text(&self) -> String;
}

impl Api for TestServer {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(method, path, None, &[], body).await
    }

    async fn metrics_text(&self) -> String {
        let resp = self
            .request(Method::GET, "/metrics")
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().await.expect("metrics text")
    }
}

/// An in-process node: a [`TestServer`] that is stopped gracefully when dropped, so that no node
/// outlives its test and keeps knocking at a dropped database.
pub struct Node {
    server: Option<TestServer>,
}

impl Node {
    /// Stops the node gracefully and waits for it (what `SIGTERM` does).
    pub fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

impl std::ops::Deref for Node {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        self.server.as_ref().expect("a running node")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Api for Node {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        Api::call(&**self, method, path, body).await
    }

    async fn metrics_text(&self) -> String {
        Api::metrics_text(&**self).await
    }
}

/// Starts one in-process node per id on `db`, each with `tweak` applied after its id and lease TTL
/// are set, and waits until every one answers `/readyz` 200.
pub async fn start_nodes(
    db: &TestDb,
    ids: &[&str],
    lease_ttl: Duration,
    tweak: impl Fn(&mut Config),
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(start_node(db, id, lease_ttl, &tweak).await);
    }
    nodes
}

/// Starts one in-process node per id at the same moment, then waits until every one is ready.
pub async fn start_nodes_together(
    db: &TestDb,
    ids: &[&str],
    lease_ttl: Duration,
    tweak: impl Fn(&mut Config),
) -> Vec<Node> {
    let nodes: Vec<Node> = ids
        .iter()
        .map(|id| {
            let mut config = test_config(db);
            config.node_id = id.to_string();
            config.lease_ttl = lease_ttl;
            tweak(&mut config);
            Node {
                server: Some(TestServer::start(config)),
            }
        })
        .collect();
    for (node, id) in nodes.iter().zip(ids) {
        wait_ready(node, id).await;
    }
    nodes
}

/// Starts one in-process node and waits until it is ready.
pub async fn start_node(
    db: &TestDb,
    id: &str,
    lease_ttl: Duration,
    tweak: impl Fn(&mut Config),
) -> Node {
    let mut config = test_config(db);
    config.node_id = id.to_string();
    config.lease_ttl = lease_ttl;
    tweak(&mut config);
    let token = config.admin_token.clone();
    let mut server = TestServer::start(config);
    if let Some(t) = token {
        server = server.with_token(&t);
    }
    wait_ready(&server, id).await;
    Node {
        server: Some(server),
    }
}

/// Waits until `node` answers `/readyz` 200.
pub async fn wait_ready(node: &impl Api, id: &str) {
    eventually(
        Duration::from_secs(30),
        &format!("node {id} to be ready"),
        || async {
            let (status, v) = node.get_json("/readyz").await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("{status} {v}"))
            }
        },
    )
    .await
}

/// The real `beema-webhooks serve` as a child process; killed when dropped.
pub struct NodeProcess {
    /// Its node id.
    pub id: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    log: PathBuf,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts the binary on `db_url` as node `id` with a lease TTL of `lease_ttl_ms`, private
    /// targets allowed and no credentials, and waits until it answers `/readyz` 200.
    pub async fn start(db_url: &str, id: &str, lease_ttl_ms: u64) -> Self {
        let node = Self::spawn(db_url, id, lease_ttl_ms);
        node.wait_ready().await;
        node
    }

    /// Waits until it answers `/readyz` 200 (30 s at most).
    pub async fn wait_ready(&self) {
        eventually(
            Duration::from_secs(30),
            &format!("the binary {} to be ready", self.id),
            || async {
                match self
                    .client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("readyz {}; log:\n{}", r.status(), self.log())),
                    Err(_) => Err(format!("not listening; log:\n{}", self.log())),
                }
            },
        )
        .await;
    }

    /// Starts the binary without waiting for it.
    pub fn spawn(db_url: &str, id: &str, lease_ttl_ms: u64) -> Self {
        // The test client needs a TLS provider even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_beema-webhooks"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                db_url,
                "--allow-private-targets",
                "--node-id",
                id,
                "--lease-ttl-ms",
                &lease_ttl_ms.to_string(),
            ])
            .env_remove("BEEMA_ADMIN_TOKEN")
            .env_remove("BEEMA_EVENT_KEY")
            .env_remove("BEEMA_SECRET_KEY")
            .env_remove("BEEMA_REQUIRE_HTTPS")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn beema-webhooks");
        Self {
            id: id.to_string(),
            base: format!("http://127.0.0.1:{port}"),
            child,
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _dir: dir,
        }
    }

    /// Sends `SIGTERM`.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -TERM {pid}");
    }

    /// Sends `SIGKILL` (`kill -9`).
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits up to `timeout` for the process to exit; panics (with its log) if it does not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {} did not exit within {timeout:?}; log:\n{}",
                self.id,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Api for NodeProcess {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "request to node {} failed: {e}; log:\n{}",
                self.id,
                self.log_tail(30)
            )
        });
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn metrics_text(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().await.expect("metrics text")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyState {
    Open,
    Cut,
    Stop,
}

/// A TCP proxy in front of PostgreSQL, to cut one node off the database while the others keep it:
/// [`PgProxy::cut`] closes every connection through it and refuses new ones until
/// [`PgProxy::restore`]. Stops when dropped.
pub struct PgProxy {
    /// The database URL through the proxy.
    pub url: String,
    state: tokio::sync::watch::Sender<ProxyState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PgProxy {
    /// A proxy for the database at `url` (`postgres://user@host:port/name`).
    pub fn start(url: &str) -> Self {
        use std::net::ToSocketAddrs;
        let (scheme_user, rest) = url.split_once('@').expect("postgres URL with user@host");
        let (host_port, name) = rest.split_once('/').expect("postgres URL with /database");
        let target = host_port
            .to_socket_addrs()
            .expect("database address")
            .next()
            .expect("a database address");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (state, rx) = tokio::sync::watch::channel(ProxyState::Open);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(proxy(listener, target, rx));
        });
        Self {
            url: format!("{scheme_user}@{addr}/{name}"),
            state,
            thread: Some(thread),
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.send_replace(ProxyState::Cut);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.send_replace(ProxyState::Open);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.state.send_replace(ProxyState::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn proxy(
    listener: std::net::TcpListener,
    target: std::net::SocketAddr,
    mut state: tokio::sync::watch::Receiver<ProxyState>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                if *state.borrow() != ProxyState::Open {
                    continue; // dropped: the connection is refused
                }
                let mut conn_state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = conn_state.wait_for(|s| *s != ProxyState::Open) => {}
                    }
                });
            }
            changed = state.changed() => {
                if changed.is_err() || *state.borrow() == ProxyState::Stop {
                    return;
                }
            }
        }
    }
}
