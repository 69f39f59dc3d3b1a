//! The real binary at startup: bad configuration is refused with a one-line reason and a
//! failing exit code, and logs written to a pipe carry no terminal colour codes.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

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
