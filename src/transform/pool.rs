//! Warm transform workers (child processes of this binary) shared by the webhook actors.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use super::WORKER_SUBCOMMAND;

/// Longest run of one program, compilation and worker start included.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// Workers running programs at once (the machine's cores are shared with the dispatcher).
const MAX_BUSY: usize = 8;
/// Warm workers kept between runs: as many as may run, so that a busy pool never kills a worker
/// only to start another (a start costs far more than a run; BENCHMARKS.md, routing).
const MAX_IDLE: usize = MAX_BUSY;

/// Runs programs in child processes; a worker that runs over the limit or dies is replaced.
pub struct TransformPool {
    exe: PathBuf,
    idle: Mutex<Vec<Worker>>,
    busy: Semaphore,
}

impl std::fmt::Debug for TransformPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformPool")
            .field("exe", &self.exe)
            .finish()
    }
}

impl TransformPool {
    /// A pool starting `exe transform-worker` (default: this very binary).
    pub fn new(exe: Option<PathBuf>) -> Self {
        let exe = exe
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("beema-webhooks"));
        Self {
            exe,
            idle: Mutex::new(Vec::new()),
            busy: Semaphore::new(MAX_BUSY),
        }
    }

    /// Runs `program` over `input`; the output as compact JSON, or why there is none (the text
    /// after `transform: ` in the delivery's `error_message`).
    pub async fn run(&self, program: &str, input: &str) -> Result<String, String> {
        let _slot = self
            .busy
            .acquire()
            .await
            .map_err(|_| "shutting down".to_string())?;
        let reused = self.idle.lock().map(|mut i| i.pop()).unwrap_or(None);
        let mut worker = match reused {
            Some(w) => w,
            None => Worker::spawn(&self.exe).map_err(|e| format!("worker did not start: {e}"))?,
        };
        match tokio::time::timeout(TIME_LIMIT, worker.call(program, input)).await {
            Ok(Ok(answer)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < MAX_IDLE {
                        idle.push(worker);
                    }
                }
                answer
            }
            Ok(Err(_)) => {
                worker.kill();
                Err("the program ran out of memory or stack (limit 256 MiB)".into())
            }
            Err(_) => {
                worker.kill();
                Err("ran over 1 s".into())
            }
        }
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(exe: &PathBuf) -> std::io::Result<Self> {
        let mut child = Command::new(exe)
            .arg(WORKER_SUBCOMMAND)
            // The program sees nothing of the dispatcher's environment (secrets, URLs).
            .env_clear()
            // mimalloc reserves 1 GiB of address space at start by default, which the worker's
            // 256 MiB address-space limit could never hold; a small reserve keeps the limit real.
            .env("MIMALLOC_ARENA_RESERVE", "16MiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    async fn call(
        &mut self,
        program: &str,
        input: &str,
    ) -> std::io::Result<Result<String, String>> {
        let mut req = Vec::with_capacity(program.len() + input.len() + 8);
        for part in [program, input] {
            req.extend_from_slice(&(part.len() as u32).to_be_bytes());
            req.extend_from_slice(part.as_bytes());
        }
        self.stdin.write_all(&req).await?;
        self.stdin.flush().await?;
        let tag = self.stdout.read_u8().await?;
        let len = self.stdout.read_u32().await? as usize;
        let mut buf = vec![0u8; len];
        self.stdout.read_exact(&mut buf).await?;
        let text = String::from_utf8(buf).map_err(std::io::Error::other)?;
        Ok(if tag == 0 { Ok(text) } else { Err(text) })
    }

    /// Kills the process and reaps it in the background.
    fn kill(mut self) {
        let _ = self.child.start_kill();
        tokio::spawn(async move {
            let _ = self.child.wait().await;
        });
    }
}
