//! The real binary at startup: bad configuration is refused with a one-line reason and a
//! failing exit code, logs written to a pipe carry no terminal colour codes, a SQLite file is
//! served by one process at a time, the process runs without transparent huge pages, and nodes
//! started together on a fresh PostgreSQL database all come up.

use std::process::Stdio;
use std::time::{Duration, Instant};

use beema_webhooks::config::DatabaseUrl;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::utils::nodes::free_port;
use crate::utils::{eventually, TestDb};

/// The binary with a clean environment: no `BEEMA_*`, `DATABASE_URL` or `RUST_LOG` of the caller.
fn binary(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_beema-webhooks"));
    cmd.args(args).kill_on_drop(true).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BEEMA_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to its end; returns (exit code, stderr).
async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), binary(args, env).output())
        .await
        .expect("the binary should exit on bad configuration, not serve")
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A named start of the binary: arguments, environment, and what its one-line refusal must name.
type Refusal<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn the_binary_refuses_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let long_node_id = "n".repeat(129);
    let cases: Vec<Refusal> = vec![
        // Open admin API / ingest on a public interface.
        (
            "no tokens on 0.0.0.0",
            vec!["--listen", "0.0.0.0:0", "--database-url", &db],
            vec![],
            "BEEMA_ADMIN_TOKEN",
        ),
        (
            "no event key on 0.0.0.0",
            vec!["serve", "--listen", "0.0.0.0:0", "--database-url", &db],
            vec![("BEEMA_ADMIN_TOKEN", "a")],
            "BEEMA_EVENT_KEY",
        ),
        (
            "no admin token on [::] via env",
            vec!["--database-url", &db],
            vec![("BEEMA_LISTEN", "[::]:0"), ("BEEMA_EVENT_KEY", "e")],
            "BEEMA_ADMIN_TOKEN",
        ),
        // An empty token counts as none.
        (
            "empty admin token",
            vec![
                "--listen",
                "0.0.0.0:0",
                "--database-url",
                &db,
                "--admin-token",
                "",
                "--event-key",
                "e",
            ],
            vec![],
            "BEEMA_ADMIN_TOKEN",
        ),
        // Unparsable settings.
        (
            "mysql URL",
            vec!["--listen", "127.0.0.1:0"],
            vec![("DATABASE_URL", "mysql://x")],
            "DATABASE_URL",
        ),
        (
            "empty sqlite path",
            vec!["--listen", "127.0.0.1:0", "--database-url", "sqlite://"],
            vec![],
            "DATABASE_URL",
        ),
        (
            "bad listen address",
            vec!["--listen", "not-an-address", "--database-url", &db],
            vec![],
            "BEEMA_LISTEN",
        ),
        (
            "bad listen address via env",
            vec!["--database-url", &db],
            vec![("BEEMA_LISTEN", "localhost")],
            "BEEMA_LISTEN",
        ),
        (
            "bad CIDR",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_ALLOWED_TARGET_CIDRS", "10.0.0.0/99")],
            "BEEMA_ALLOWED_TARGET_CIDRS",
        ),
        (
            "unknown log format",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_LOG_FORMAT", "yaml")],
            "BEEMA_LOG_FORMAT",
        ),
        (
            "unknown flag",
            vec![
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &db,
                "--no-such-flag",
            ],
            vec![],
            "--no-such-flag",
        ),
        // An unreachable database.
        (
            "unreachable PostgreSQL",
            vec![
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
            ],
            vec![],
            "beema-webhooks:",
        ),
        // The port is taken.
        (
            "port in use",
            vec!["--listen", &taken_addr, "--database-url", &db],
            vec![],
            &taken_addr,
        ),
        // Cluster settings out of range.
        (
            "node id with a space",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_NODE_ID", "a b")],
            "BEEMA_NODE_ID",
        ),
        (
            "node id of 129 characters",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_NODE_ID", &long_node_id)],
            "BEEMA_NODE_ID",
        ),
        (
            "lease TTL below 1000 ms",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_LEASE_TTL_MS", "999")],
            "BEEMA_LEASE_TTL_MS",
        ),
        (
            "lease TTL above 300000 ms",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_LEASE_TTL_MS", "300001")],
            "BEEMA_LEASE_TTL_MS",
        ),
        (
            "no connections per host",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_HOST_CONNECTIONS", "0")],
            "BEEMA_HOST_CONNECTIONS",
        ),
        (
            "connections per host above 10000",
            vec!["--listen", "127.0.0.1:0", "--database-url", &db],
            vec![("BEEMA_HOST_CONNECTIONS", "10001")],
            "BEEMA_HOST_CONNECTIONS",
        ),
    ];
    for (name, args, env, must_name) in cases {
        let (code, stderr) = run_binary(&args, &env).await;
        assert_eq!(code, Some(1), "{name}: exit code, stderr:\n{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{name}: expected a one-line reason, got:\n{stderr}"
        );
        assert!(
            lines[0].contains(must_name),
            "{name}: `{}` does not name {must_name}",
            lines[0]
        );
    }
    drop(taken);
}

/// Colour codes are for a person at a terminal; in a log file or collector they are noise.
#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let mut child = binary(
        &["--listen", "127.0.0.1:0", "--database-url", &db],
        &[("RUST_LOG", "info")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the binary");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut seen = Vec::new();
    let serving = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let done = line.contains("is serving");
            seen.push(line);
            if done {
                return;
            }
        }
    })
    .await;
    child.kill().await.expect("stop the binary");
    assert!(
        serving.is_ok(),
        "the binary never said it was serving:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("INFO")),
        "no INFO line: {seen:?}"
    );
    for line in &seen {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in a piped log line: {line:?}"
        );
    }
}

/// The status of `GET base/path`, or `None` when nothing answers.
async fn get_status(client: &reqwest::Client, base: &str, path: &str) -> Option<u16> {
    let resp = client.get(format!("{base}{path}")).send().await;
    resp.ok().map(|r| r.status().as_u16())
}

/// A serving binary: the process, its base URL and a client for it.
struct Node {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Node {
    /// Starts `serve` on `database` on a free port; stderr is piped (read it with [`Node::exited`]).
    fn start(database: &str, env: &[(&str, &str)]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "RUST_LOG") {
            env.push(("RUST_LOG", "warn"));
        }
        let child = binary(
            &["serve", "--listen", &addr, "--database-url", database],
            &env,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
        // reqwest is built without a default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the process runs")
    }

    /// The status of `GET path`, or `None` when nothing answers.
    async fn status(&self, path: &str) -> Option<u16> {
        get_status(&self.client, &self.base, path).await
    }

    /// When the process has ended: its exit code and stderr.
    async fn exited(&mut self) -> Option<(Option<i32>, String)> {
        let status = self.child.try_wait().expect("poll the process")?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        Some((status.code(), stderr))
    }

    /// Waits until `path` answers 200; fails at once, with its stderr, if the process ends.
    async fn wait_for(&mut self, path: &str, timeout: Duration) {
        let what = format!("{}{path} to answer 200", self.base);
        let child = std::cell::RefCell::new(&mut self.child);
        let (client, base) = (&self.client, &self.base);
        let ended = eventually(timeout, &what, || async {
            if child
                .borrow_mut()
                .try_wait()
                .expect("poll the process")
                .is_some()
            {
                return Ok(true);
            }
            match get_status(client, base, path).await {
                Some(200) => Ok(false),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        if ended {
            let (code, stderr) = self.exited().await.expect("ended");
            panic!("the node exited ({code:?}) before {what}:\n{stderr}");
        }
    }

    /// `kill -9`, then waits for the process to be gone.
    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the binary");
    }
}

/// Transparent huge pages are off for the server unless `MIMALLOC_ALLOW_THP=1` (README,
/// Reliability): with them a draining backlog kept 2 MiB resident wherever one byte was in use.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    /// `THP_enabled` of a process's `/proc/PID/status`.
    fn thp_enabled(pid: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"));
        line.unwrap_or_else(|| panic!("no THP_enabled in /proc/{pid}/status:\n{status}"))
            .trim()
            .to_string()
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("thp.db").display());
    for (env, expected) in [
        (vec![], "0".to_string()),
        // Allowed again: as for this test process (the prctl flag is inherited by children).
        (vec![("MIMALLOC_ALLOW_THP", "1")], thp_enabled("self")),
    ] {
        let mut node = Node::start(&db, &env);
        node.wait_for("/readyz", Duration::from_secs(30)).await;
        let thp = thp_enabled(&node.pid().to_string());
        node.kill().await;
        assert_eq!(thp, expected, "THP_enabled of the server with {env:?}");
    }
}

/// A SQLite file is served by one process: a second `serve` (or `migrate`) on it exits non-zero
/// within 10 s with one line naming the database as "in use" and the first process's pid, however
/// verbose its logs; the first goes on serving. `kill -9` ends the claim: a new process on the same
/// file starts and serves. (SQLite whichever database the suite runs on.)
#[tokio::test]
async fn a_sqlite_file_is_served_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("one.db").display());
    let mut first = Node::start(&db, &[]);
    first.wait_for("/readyz", Duration::from_secs(30)).await;
    let first_pid = first.pid().to_string();

    let second_addr = format!("127.0.0.1:{}", free_port());
    for args in [
        vec![
            "serve",
            "--listen",
            second_addr.as_str(),
            "--database-url",
            &db,
        ],
        vec!["migrate", "--database-url", &db],
    ] {
        let started = Instant::now();
        let (code, stderr) = run_binary(&args, &[("RUST_LOG", "trace")]).await;
        let took = started.elapsed();
        assert!(
            code.is_some_and(|c| c != 0),
            "{args:?}: exit {code:?}:\n{stderr}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{args:?}: exited after {took:?}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: expected one line, got:\n{stderr}"
        );
        assert!(lines[0].contains("in use"), "{args:?}: {}", lines[0]);
        assert!(lines[0].contains(&db), "{args:?}: {}", lines[0]);
        assert!(
            lines[0].contains(&format!("pid {first_pid}")),
            "{args:?}: does not name pid {first_pid}: {}",
            lines[0]
        );
    }
    // The first is undisturbed.
    assert!(first.exited().await.is_none(), "the first process stopped");
    assert_eq!(first.status("/healthz").await, Some(200));
    assert_eq!(first.status("/readyz").await, Some(200));

    first.kill().await;
    let mut next = Node::start(&db, &[]);
    next.wait_for("/readyz", Duration::from_secs(30)).await;
    assert_eq!(next.status("/healthz").await, Some(200));
    next.kill().await;
}

/// Nodes started at the same moment on a fresh PostgreSQL database all become ready: migrations
/// are serialised, not raced. Runs on PostgreSQL only (passes at once on SQLite).
#[tokio::test]
async fn nodes_started_together_on_a_fresh_postgres_database_all_become_ready() {
    let db = TestDb::new();
    let DatabaseUrl::Postgres(url) = db.url.clone() else {
        return;
    };
    let ids = ["startup-a", "startup-b", "startup-c"];
    let mut nodes: Vec<Node> = ids
        .iter()
        .map(|id| Node::start(&url, &[("BEEMA_NODE_ID", id)]))
        .collect();
    for node in &mut nodes {
        node.wait_for("/readyz", Duration::from_secs(60)).await;
    }
    for node in nodes {
        node.kill().await;
    }
}
