//! End-to-end load harness: starts the release server on a fresh database, its own fast receiver
//! (hyper, answers 204), registers W webhooks, publishes E events with C concurrent publishers,
//! waits for every delivery, and prints intake rate, end-to-end rate, latency to receipt (from the
//! publish request's send, what the kernel sees, and from its `202`), server peak RSS and CPU, and
//! the raw ceiling of the same client and receiver (before the run and after it, and their mean).
//!
//! ```text
//! cargo build --release && cargo run --release --example loadgen -- --scenario steady
//! cargo run --release --example loadgen -- --scenario steady --database postgres
//! cargo run --release --example loadgen -- --scenario steady --rate 200 --events 4000   # open loop
//! cargo run --release --example loadgen -- --scenario routing
//! cargo run --release --example loadgen -- --scenario batch-drain
//! ```
//! Scenarios: `steady` (10 webhooks × 20,000 events), `wide` (10,000 webhooks, one event),
//! `backlog` (receiver down while 200,000 deliveries queue, then up), `slow` (50 ms receivers),
//! `routing` (10 webhooks whose filters pass half the events, each with a transform, plus one
//! batching webhook that gets every event), `batch-drain` (one batching webhook, receiver down
//! while 1,000,000 deliveries queue, then up). The receiver counts each member of a batch as a
//! delivery. A server that refuses or ignores `filter`, `transform` or `batch` stops the run with
//! one line and a non-zero exit: no figures are made up.
//!
//! Several nodes on one PostgreSQL database (CONTRACT-cluster):
//! ```text
//! cargo run --release --example loadgen -- --scenario steady --database postgres --nodes 2
//! cargo run --release --example loadgen -- --scenario takeover --database postgres --lease-ttl-ms 2000
//! ```
//! `--nodes N` starts N servers (`--node-id node-1` … `node-N`) on the same fresh database, waits
//! until each is ready, knows every webhook and `/api/cluster` shows every webhook owned, and
//! spreads the publish requests round-robin over them; CPU is summed over the N processes.
//! `takeover` starts two nodes, registers 20 webhooks (one event type each), `kill -9`s `node-2`,
//! publishes one event per webhook through `node-1` at once, and times, for each webhook `node-2`
//! owned, the kill to that webhook's first delivery (target: the lease TTL + 1 s).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Steady,
    Wide,
    Backlog,
    Slow,
    Routing,
    BatchDrain,
    Takeover,
}

impl Scenario {
    /// The receiver answers 503 while the events are published, then comes back.
    fn holds_back(self) -> bool {
        matches!(self, Scenario::Backlog | Scenario::BatchDrain)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Load harness for beema-webhooks.
#[derive(Debug, Parser)]
struct Args {
    /// Preset sizes; explicit flags override them.
    #[arg(long, value_enum, default_value = "steady")]
    scenario: Scenario,
    /// Database of the server under test.
    #[arg(long, value_enum, default_value = "sqlite")]
    database: Backend,
    /// Maintenance database used to create a fresh PostgreSQL database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    /// Webhooks registered.
    #[arg(long)]
    webhooks: Option<usize>,
    /// Events published.
    #[arg(long)]
    events: Option<usize>,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Events per publish request (default 10; 100 for `batch-drain`).
    #[arg(long)]
    batch: Option<usize>,
    /// `routing`: register the webhooks without a filter.
    #[arg(long)]
    no_filter: bool,
    /// `routing`: register the webhooks without a transform.
    #[arg(long)]
    no_transform: bool,
    /// `routing`: leave out the batching webhook; `batch-drain`: the webhook does not batch.
    #[arg(long)]
    no_batch: bool,
    /// Publish at this many events a second (open loop) instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Receiver delay in ms.
    #[arg(long)]
    receiver_delay_ms: Option<u64>,
    /// Server binary.
    #[arg(long, default_value = "target/release/beema-webhooks")]
    server_bin: String,
    /// Server processes on the same database (more than one: PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The servers' `--lease-ttl-ms` (default: theirs; 10000 for `takeover`).
    #[arg(long)]
    lease_ttl_ms: Option<u64>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

/// What the receiver saw.
struct Receipts {
    /// Distinct delivery ids.
    seen: Mutex<HashSet<String>>,
    /// Arrival of the first delivery of each event (event id → instant).
    arrivals: Mutex<Vec<(String, Instant)>>,
    count: AtomicU64,
    /// Requests answered 204, and how many of them were batches.
    requests: AtomicU64,
    batches: AtomicU64,
    down: AtomicBool,
    delay: Duration,
    /// The first and the latest new delivery.
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

/// A server process, killed when the run ends, errors included.
struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// Its `--node-id`, when the harness runs several.
    node: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = run(Args::parse()).await {
        // One line, and no figures: a partial run measures nothing worth printing.
        eprintln!("loadgen: {e:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (webhooks, events, delay) = sizes(&args);
    let nodes = node_count(&args);
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        nodes == 1 || args.database == Backend::Postgres,
        "{nodes} nodes need `--database postgres`: SQLite is one process per file"
    );
    println!(
        "scenario {:?} on {:?}: {webhooks} webhooks × {events} events, {} publishers, batch {}{}{}",
        args.scenario,
        args.database,
        args.concurrency,
        publish_batch(&args),
        args.rate
            .map(|r| format!(", open loop at {r} events/s"))
            .unwrap_or_default(),
        if nodes > 1 {
            format!(", {nodes} nodes")
        } else {
            String::new()
        }
    );
    let receipts = Arc::new(Receipts {
        seen: Mutex::new(HashSet::new()),
        arrivals: Mutex::new(Vec::new()),
        count: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        down: AtomicBool::new(args.scenario.holds_back()),
        delay,
        first: Mutex::new(None),
        last: Mutex::new(None),
    });
    let receiver = start_receiver(receipts.clone()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    if args.scenario == Scenario::Takeover {
        return takeover(&args, &client, receiver, &receipts).await;
    }

    let ceiling_concurrency = args.concurrency.max(32);
    let (ceiling_before, raw_cpu_before) =
        measure_ceiling(&client, receiver, ceiling_concurrency, 20_000).await?;
    let (db_url, _db_guard) = fresh_database(&args)?;
    // Declared after the database guard, so the servers stop before their database is dropped.
    let mut servers = start_nodes(&args, &db_url)?;
    let started = Instant::now();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    for base in &bases {
        wait_ready(&client, base).await?;
    }
    let boot = started.elapsed();
    let (specs, expected) = webhook_specs(&args, receiver, webhooks, events);
    if let Some(plan) = plan(&args, &specs) {
        println!("{plan}; {expected} deliveries expected");
    }
    let registered = specs.len();
    register(&client, &bases[0], specs).await?;
    if nodes > 1 {
        let t = Instant::now();
        let view =
            wait_cluster(&client, &bases, registered, false, ownership_timeout(&args)).await?;
        println!(
            "cluster: {} after {:.0} ms",
            ownership(&view),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let boot_with_hooks = if args.scenario == Scenario::Wide {
        restart_ready(&args, &mut servers[0], &db_url, &client).await?
    } else {
        None
    };

    let accepted: Arc<Mutex<HashMap<String, Published>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(events)));
    let t0 = Instant::now();
    publish_all(&client, &bases, &args, events, accepted.clone()).await?;
    let intake = t0.elapsed();
    if args.scenario.holds_back() {
        let queued_rss: u64 = servers.iter().map(|s| rss_kib(s.child.id())).sum();
        println!(
            "backlog: {expected} deliveries queued while the receiver is down; server RSS {} MiB",
            queued_rss / 1024
        );
        receipts.down.store(false, Ordering::Relaxed);
    }
    let drain_start = Instant::now();
    wait_all(&receipts, expected, Duration::from_secs(args.timeout_secs)).await;
    let end = receipts.last.lock().unwrap().unwrap_or_else(Instant::now);
    let e2e = end.duration_since(t0);
    let drain = end.saturating_duration_since(drain_start);
    let peaks: Vec<u64> = servers.iter().map(|s| peak_rss_kib(s.child.id())).collect();
    // Every node's work is the cluster's cost of these deliveries: CPU is their sum.
    let cpu: f64 = servers.iter().map(|s| cpu_seconds(s.child.id())).sum();
    let delivered = receipts.seen.lock().unwrap().len() as u64;
    // The ceiling again, with the servers stopped: on a shared host it moves by up to 2× within
    // minutes, so the run is set against the mean of the two and both are printed.
    drop(servers);
    let (ceiling_after, raw_cpu_after) =
        measure_ceiling(&client, receiver, ceiling_concurrency, 20_000).await?;
    let ceiling = (ceiling_before + ceiling_after) / 2.0;
    let raw_cpu_us = (raw_cpu_before + raw_cpu_after) / 2.0;

    let mut lat = latencies(&accepted, &receipts, |p| p.accepted);
    lat.sort_unstable_by(f64::total_cmp);
    let pct = |p: f64| percentile(&lat, p);
    // What the kernel sees: from the moment its request leaves to receipt, the commit included.
    let mut from_send = latencies(&accepted, &receipts, |p| p.sent);
    from_send.sort_unstable_by(f64::total_cmp);
    println!("server ready in {:.0} ms", boot.as_secs_f64() * 1e3);
    if let Some((b, idle_rss)) = boot_with_hooks {
        println!(
            "server with {webhooks} webhooks: start to ready {:.0} ms, idle RSS {} MiB",
            b.as_secs_f64() * 1e3,
            idle_rss / 1024
        );
    }
    println!(
        "intake:        {:>10.0} events/s ({events} events in {:.2} s)",
        events as f64 / intake.as_secs_f64(),
        intake.as_secs_f64()
    );
    println!(
        "end-to-end:    {:>10.0} deliveries/s ({delivered}/{expected} in {:.2} s)",
        delivered as f64 / e2e.as_secs_f64(),
        e2e.as_secs_f64()
    );
    if args.scenario.holds_back() {
        println!(
            "drain:         {:>10.0} deliveries/s after the receiver came back",
            delivered as f64 / drain.as_secs_f64().max(1e-9)
        );
        // The wait for the breakers' next probe (their cooldown doubles while the receiver is
        // down), apart from the rate once they found it back.
        let first = receipts.first.lock().unwrap().unwrap_or(end);
        let found = first.saturating_duration_since(drain_start);
        println!(
            "               found back after {:.2} s; {:.0} deliveries/s from then on",
            found.as_secs_f64(),
            delivered as f64 / end.duration_since(first).as_secs_f64().max(1e-9)
        );
    }
    let (requests, batches) = (
        receipts.requests.load(Ordering::Relaxed),
        receipts.batches.load(Ordering::Relaxed),
    );
    if batches > 0 {
        println!(
            "receiver:      {requests} requests answered, {batches} of them batches ({:.1} deliveries per request)",
            delivered as f64 / requests.max(1) as f64
        );
    }
    println!(
        "ceiling:       {ceiling:>10.0} requests/s (same client, same receiver, no dispatcher; {ceiling_before:.0} before the run, {ceiling_after:.0} after) → dispatcher at {:.0}%",
        100.0 * delivered as f64 / e2e.as_secs_f64() / ceiling
    );
    println!(
        "latency accepted→receipt ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    println!(
        "latency sent→receipt ms:     p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        percentile(&from_send, 0.50),
        percentile(&from_send, 0.90),
        percentile(&from_send, 0.99),
        from_send.last().copied().unwrap_or(0.0)
    );
    let peak = if nodes > 1 {
        let each: Vec<String> = peaks.iter().map(|p| (p / 1024).to_string()).collect();
        format!("{} MiB (node-1 … node-{nodes})", each.join(" / "))
    } else {
        format!("{} MiB", peaks[0] / 1024)
    };
    let per_delivery_us = cpu * 1e6 / delivered.max(1) as f64;
    println!(
        "server{}: peak RSS {peak}, CPU {:.1} s, {:.1} µs CPU per delivery",
        if nodes > 1 { "s, all nodes" } else { "" },
        cpu,
        per_delivery_us
    );
    println!(
        "raw client:    {raw_cpu_us:.1} µs CPU per signed request (ceiling runs, client and receiver; {raw_cpu_before:.1} and {raw_cpu_after:.1}) → server/raw {:.1}×",
        per_delivery_us / raw_cpu_us.max(1e-9)
    );
    anyhow::ensure!(
        delivered >= expected,
        "only {delivered} of {expected} deliveries arrived within {} s",
        args.timeout_secs
    );
    Ok(())
}

/// Server processes: `takeover` needs exactly two.
fn node_count(args: &Args) -> usize {
    if args.scenario == Scenario::Takeover {
        2
    } else {
        args.nodes
    }
}

/// The servers' lease TTL, when the harness sets it.
fn lease_ttl_ms(args: &Args) -> Option<u64> {
    let default = (args.scenario == Scenario::Takeover).then_some(10_000);
    args.lease_ttl_ms.or(default)
}

/// How long the cluster may take to own every webhook: the contract's 2 × TTL, and some slack
/// for a busy machine.
fn ownership_timeout(args: &Args) -> Duration {
    Duration::from_millis(2 * lease_ttl_ms(args).unwrap_or(10_000)) + Duration::from_secs(10)
}

fn sizes(args: &Args) -> (usize, usize, Duration) {
    let (w, e, d) = match args.scenario {
        Scenario::Steady => (10, 20_000, 0),
        Scenario::Wide => (10_000, 1, 0),
        Scenario::Backlog => (10, 20_000, 0),
        Scenario::Slow => (10, 2_000, 50),
        Scenario::Routing => (10, 20_000, 0),
        Scenario::BatchDrain => (1, 1_000_000, 0),
        // One event per webhook, published after the kill.
        Scenario::Takeover => (20, 20, 0),
    };
    (
        args.webhooks.unwrap_or(w),
        args.events.unwrap_or(e),
        Duration::from_millis(args.receiver_delay_ms.unwrap_or(d)),
    )
}

fn publish_batch(args: &Args) -> usize {
    let default = if args.scenario == Scenario::BatchDrain {
        100
    } else {
        10
    };
    args.batch.unwrap_or(default).clamp(1, 1000)
}

/// What the routing webhooks send: the issue's example, plus the event id so that the receiver
/// can time each delivery from its publish.
const TRANSFORM: &str =
    "{id: .id, claim: .data.claimNumber, amount: .data.claimAmount, type: .event}";
/// The batching webhook of `routing` and `batch-drain`.
const BATCH_MAX_EVENTS: u64 = 100;
const BATCH_MAX_WAIT_MS: u64 = 50;

/// The webhooks to register, and the deliveries they make for `events` events.
fn webhook_specs(args: &Args, receiver: SocketAddr, n: usize, events: usize) -> (Vec<Value>, u64) {
    let mut base = json!({"webhook_name": "bench", "tenant_id": "bench", "event_type": "bench/event", "url": format!("http://{receiver}/hook")});
    if args.scenario.holds_back() {
        // A receiver down for long: many attempts, breaker probing every 500 ms.
        base["retry_config"] = json!({"maxAttempts": 50, "backoffMs": 500});
        base["circuit_breaker"] = json!({"failureThreshold": 5, "cooldownMs": 500});
    }
    let batch = json!({"maxEvents": BATCH_MAX_EVENTS, "maxWaitMs": BATCH_MAX_WAIT_MS});
    match args.scenario {
        Scenario::Routing => {
            // Events alternate parity (`n` even or odd): webhook k passes one of the two halves.
            let (even, odd) = (events.div_ceil(2) as u64, (events / 2) as u64);
            let mut specs = Vec::with_capacity(n + 1);
            let mut expected = 0;
            for k in 0..n {
                let mut s = base.clone();
                let parity = if k.is_multiple_of(2) { "even" } else { "odd" };
                s["webhook_name"] = json!(format!("bench-{parity}-{k}"));
                if args.no_filter {
                    expected += events as u64;
                } else {
                    s["filter"] = json!({"data.parity": parity});
                    expected += if k.is_multiple_of(2) { even } else { odd };
                }
                if !args.no_transform {
                    s["transform"] = json!(TRANSFORM);
                }
                specs.push(s);
            }
            if !args.no_batch {
                let mut s = base;
                s["webhook_name"] = json!("bench-batch");
                s["batch"] = batch;
                specs.push(s);
                expected += events as u64;
            }
            (specs, expected)
        }
        Scenario::BatchDrain => {
            if !args.no_batch {
                base["batch"] = batch;
            }
            (vec![base; n], (n * events) as u64)
        }
        Scenario::Takeover => {
            // An event type each: the event published for webhook k is delivered to it alone, so
            // its first arrival times that webhook's take-over.
            let specs = (0..n)
                .map(|k| {
                    let mut s = base.clone();
                    s["webhook_name"] = json!(format!("bench-{k}"));
                    s["event_type"] = json!(takeover_event_type(k));
                    s
                })
                .collect();
            (specs, n as u64)
        }
        _ => (vec![base; n], (n * events) as u64),
    }
}

/// One line saying what `routing` and `batch-drain` registered.
fn plan(args: &Args, specs: &[Value]) -> Option<String> {
    let count = |key: &str| specs.iter().filter(|s| s.get(key).is_some()).count();
    match args.scenario {
        Scenario::Routing => Some(format!(
            "routing: {} webhooks, {} with a filter on data.parity, {} with a transform, {} batching (maxEvents {BATCH_MAX_EVENTS}, maxWaitMs {BATCH_MAX_WAIT_MS})",
            specs.len(),
            count("filter"),
            count("transform"),
            count("batch")
        )),
        Scenario::BatchDrain => Some(format!(
            "batch-drain: {} webhooks, {} batching (maxEvents {BATCH_MAX_EVENTS}, maxWaitMs {BATCH_MAX_WAIT_MS})",
            specs.len(),
            count("batch")
        )),
        _ => None,
    }
}

async fn start_receiver(receipts: Arc<Receipts>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let r = receipts.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| receive(req, r.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn receive(
    req: Request<Incoming>,
    r: Arc<Receipts>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let delivery = header("x-beema-delivery");
    let is_batch = header("x-beema-event").as_deref() == Some("batch");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    if r.down.load(Ordering::Relaxed) {
        return Ok(Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default());
    }
    let now = Instant::now();
    r.requests.fetch_add(1, Ordering::Relaxed);
    if is_batch {
        // Each member is a delivery: count it by its own id (a retried batch repeats them).
        r.batches.fetch_add(1, Ordering::Relaxed);
        let v = serde_json::from_slice::<Value>(&body).unwrap_or_default();
        let members = v["deliveries"].as_array().into_iter().flatten();
        record(
            &r,
            members.filter_map(|m| {
                let id = m["delivery_id"].as_str()?.to_string();
                Some((id, m["id"].as_str().map(str::to_string)))
            }),
            now,
        );
    } else if let Some(id) = delivery {
        let event = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        record(&r, std::iter::once((id, event)), now);
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()))
        .unwrap_or_default())
}

/// Counts each delivery (delivery id, event id) the first time it arrives.
fn record(r: &Receipts, deliveries: impl Iterator<Item = (String, Option<String>)>, now: Instant) {
    let mut seen = r.seen.lock().unwrap();
    let mut arrivals = r.arrivals.lock().unwrap();
    let mut new = 0;
    for (id, event) in deliveries {
        if seen.insert(id) {
            if let Some(e) = event {
                arrivals.push((e, now));
            }
            new += 1;
        }
    }
    if new > 0 {
        r.count.fetch_add(new, Ordering::Relaxed);
        r.first.lock().unwrap().get_or_insert(now);
        *r.last.lock().unwrap() = Some(now);
    }
}

/// The same client driving the same receiver directly, each request signed as the dispatcher signs
/// it: the ceiling on this machine, in requests/s, and this process's CPU per request (client and
/// receiver) in µs, the yardstick for the server's CPU per delivery.
async fn measure_ceiling(
    client: &reqwest::Client,
    receiver: SocketAddr,
    concurrency: usize,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let url = format!("http://{receiver}/ceiling");
    let body = json!({"id": "x", "event": "bench/event", "data": {"n": 1}}).to_string();
    let next = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(std::process::id());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (c, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let signature = beema_webhooks::delivery::signing::beema_signature(
                    "whsec_bench",
                    body.as_bytes(),
                );
                let _ = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-beema-signature", signature)
                    .body(body.clone())
                    .send()
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let cpu_us = (cpu_seconds(std::process::id()) - cpu_before) * 1e6 / n as f64;
    Ok((rate, cpu_us))
}

/// Keeps a temporary database alive; drops a PostgreSQL one at the end.
enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { admin, name } = self {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .status();
        }
    }
}

/// A fresh database: a temporary SQLite file, or a new PostgreSQL database dropped at the end.
fn fresh_database(args: &Args) -> anyhow::Result<(String, DbGuard)> {
    Ok(match args.database {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            (url, DbGuard::Sqlite(dir))
        }
        Backend::Postgres => {
            let name = format!("beema_bench_{}", std::process::id());
            let ok = Command::new("psql")
                .args([
                    args.pg_url.as_str(),
                    "-qc",
                    &format!("CREATE DATABASE {name}"),
                ])
                .status()?;
            anyhow::ensure!(ok.success(), "could not create the benchmark database");
            let (prefix, _) = args
                .pg_url
                .rsplit_once('/')
                .ok_or_else(|| anyhow::anyhow!("bad --pg-url"))?;
            (
                format!("{prefix}/{name}"),
                DbGuard::Postgres {
                    admin: args.pg_url.clone(),
                    name,
                },
            )
        }
    })
}

/// Starts every node at once on `url`, as the contract allows (migrations are serialised).
fn start_nodes(args: &Args, url: &str) -> anyhow::Result<Vec<Server>> {
    let nodes = node_count(args);
    let mut servers = Vec::with_capacity(nodes);
    for i in 1..=nodes {
        let port = free_port()?;
        // One node gets no `--node-id`, so that a server that predates the cluster still runs.
        let node = (nodes > 1).then(|| format!("node-{i}"));
        let child = spawn_server(args, url, port, node.as_deref())?;
        servers.push(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            node,
        });
    }
    Ok(servers)
}

fn spawn_server(args: &Args, url: &str, port: u16, node: Option<&str>) -> anyhow::Result<Child> {
    let bin = &args.server_bin;
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        url,
        "--allow-private-targets",
    ]);
    if let Some(node) = node {
        cmd.args(["--node-id", node]);
    }
    if let Some(ttl) = lease_ttl_ms(args) {
        cmd.args(["--lease-ttl-ms", &ttl.to_string()]);
    }
    let log = match node {
        Some(node) => format!("/tmp/loadgen-server-{node}.log"),
        None => "/tmp/loadgen-server.log".into(),
    };
    cmd.env(
        "RUST_LOG",
        std::env::var("LOADGEN_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .stderr(
        std::fs::File::create(log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
    )
    .stdout(Stdio::null())
    .spawn()
    .map_err(|e| anyhow::anyhow!("cannot start {bin} (build it with `cargo build --release`): {e}"))
}

/// For `wide`: restart the server with every webhook registered, and time start to ready.
async fn restart_ready(
    args: &Args,
    server: &mut Server,
    db_url: &str,
    client: &reqwest::Client,
) -> anyhow::Result<Option<(Duration, u64)>> {
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
    let port: u16 = server.base.rsplit(':').next().unwrap_or("0").parse()?;
    let t = Instant::now();
    server.child = spawn_server(args, db_url, port, server.node.as_deref())?;
    wait_ready(client, &server.base).await?;
    let ready = t.elapsed();
    Ok(Some((ready, rss_kib(server.child.id()))))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("server not ready after 60 s")
}

/// Settings a server must know for `routing` and `batch-drain` to measure what they say.
const FEATURES: [(&str, &str); 3] = [("filter", "§7"), ("transform", "§9"), ("batch", "§10")];

/// Creates the webhooks; their ids in the order of `specs`.
async fn register(
    client: &reqwest::Client,
    base: &str,
    specs: Vec<Value>,
) -> anyhow::Result<Vec<i64>> {
    let specs = Arc::new(specs);
    let ids = Arc::new(Mutex::new(vec![0; specs.len()]));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, base, specs, next, ids) = (
            client.clone(),
            base.to_string(),
            specs.clone(),
            next.clone(),
            ids.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = specs.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let r = c
                    .post(format!("{base}/api/webhooks"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let status = r.status();
                let reply = r.text().await.unwrap_or_default();
                let created = check_created(body, status.as_u16(), &reply)?;
                ids.lock().unwrap()[i] = created["webhook_id"].as_i64().unwrap_or(0);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ids = ids.lock().unwrap().clone();
    Ok(ids)
}

/// A 201 that echoes every feature setting sent (the webhook created); otherwise says which
/// feature the server lacks.
fn check_created(sent: &Value, status: u16, reply: &str) -> anyhow::Result<Value> {
    let used: Vec<_> = FEATURES
        .iter()
        .filter(|(key, _)| sent.get(key).is_some())
        .collect();
    let hint = "no figures measured; build a server with it, or leave it out (--no-filter, --no-transform, --no-batch)";
    if status == 422 {
        let field = serde_json::from_str::<Value>(reply)
            .ok()
            .and_then(|v| v["error"]["field"].as_str().map(str::to_string))
            .unwrap_or_default();
        if let Some((key, section)) = used
            .iter()
            .find(|(key, _)| field.split('.').next() == Some(*key) || reply.contains(*key))
        {
            anyhow::bail!(
                "the server refuses `{key}` (CONTRACT-features {section}): 422 {}; {hint}",
                reply.trim()
            );
        }
    }
    anyhow::ensure!(status == 201, "create webhook: {status} {}", reply.trim());
    let created: Value = serde_json::from_str(reply)?;
    for (key, section) in used {
        // A server that predates a feature drops the field and answers 201: the run would
        // measure plain deliveries under the feature's name.
        anyhow::ensure!(
            created.get(key) == sent.get(key),
            "the server ignored `{key}` (CONTRACT-features {section}): sent {}, the webhook has {}; {hint}",
            sent[key],
            created.get(key).unwrap_or(&Value::Null)
        );
    }
    Ok(created)
}

/// Publishes from `args.concurrency` publishers, request i to node i mod N: a load balancer's
/// round-robin.
async fn publish_all(
    client: &reqwest::Client,
    bases: &[String],
    args: &Args,
    events: usize,
    accepted: Arc<Mutex<HashMap<String, Published>>>,
) -> anyhow::Result<()> {
    let batch = publish_batch(args);
    let batches = events.div_ceil(batch);
    let rich = matches!(args.scenario, Scenario::Routing);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let bases = Arc::new(bases.to_vec());
    for _ in 0..args.concurrency {
        let (c, bases, next, accepted) = (
            client.clone(),
            bases.clone(),
            next.clone(),
            accepted.clone(),
        );
        let rate = args.rate;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64((i * batch) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let n = batch.min(events - i * batch);
                let body: Vec<Value> = (0..n).map(|k| event(i * batch + k, rich)).collect();
                let base = &bases[i % bases.len()];
                let sent = Instant::now();
                let r = c
                    .post(format!("{base}/api/events"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body)?)
                    .send()
                    .await?;
                let at = Instant::now();
                anyhow::ensure!(r.status().as_u16() == 202, "publish: {}", r.status());
                let v: Value = serde_json::from_slice(&r.bytes().await?)?;
                let mut map = accepted.lock().unwrap();
                for id in v["ids"].as_array().into_iter().flatten() {
                    if let Some(id) = id.as_str() {
                        map.insert(id.to_string(), Published { sent, accepted: at });
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Event `n`; for `routing` with what the filters and transforms read.
fn event(n: usize, rich: bool) -> Value {
    if rich {
        json!({"event": "bench/event", "data": {
            "tenantId": "bench",
            "n": n,
            "parity": if n.is_multiple_of(2) { "even" } else { "odd" },
            "claimNumber": format!("CLM-{n:07}"),
            "claimAmount": (n % 1000) * 25,
        }})
    } else {
        json!({"event": "bench/event", "data": {"tenantId": "bench", "n": n}})
    }
}

/// The event type of `takeover`'s webhook k.
fn takeover_event_type(k: usize) -> String {
    format!("bench/takeover-{k}")
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = client.get(url).send().await?;
    let status = r.status();
    let body = r.text().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status} {}", body.trim());
    Ok(serde_json::from_str(&body)?)
}

/// The webhooks a node has loaded, with their owners (`/api/health/webhooks`, every page): the
/// node's registry, which is what it matches publishes against.
async fn registry(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut url = format!("{base}/api/health/webhooks?limit=1000");
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let page = get_json(client, &url).await?;
        all.extend(page["webhooks"].as_array().into_iter().flatten().cloned());
        match page["next_after"].as_i64() {
            Some(a) => after = Some(a),
            None => return Ok(all),
        }
    }
}

/// `(node id, webhooks it owns)` of each live node in a `/api/cluster` answer.
fn owned(view: &Value) -> Vec<(String, u64)> {
    view["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or("?").to_string(),
                n["webhooks"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// "node-1 owns 5, node-2 owns 5 webhooks"
fn ownership(view: &Value) -> String {
    let each: Vec<String> = owned(view)
        .iter()
        .map(|(id, n)| format!("{id} owns {n}"))
        .collect();
    format!("{} webhooks", each.join(", "))
}

/// Whether the cluster is ready for load: `/api/cluster` lists every node and they own all
/// `webhooks` between them (each at least one when `each_owns`), and every node's registry holds
/// them all, since until then a publish on it would match fewer webhooks than the run expects.
/// The view when it is; otherwise why not.
async fn cluster_settled(
    client: &reqwest::Client,
    bases: &[String],
    webhooks: usize,
    each_owns: bool,
) -> anyhow::Result<Value> {
    let view = get_json(client, &format!("{}/api/cluster", bases[0])).await?;
    let nodes = owned(&view);
    let sum: u64 = nodes.iter().map(|(_, n)| n).sum();
    anyhow::ensure!(
        nodes.len() == bases.len() && sum == webhooks as u64,
        "{} of {} nodes live, {sum} of {webhooks} webhooks owned ({})",
        nodes.len(),
        bases.len(),
        ownership(&view)
    );
    anyhow::ensure!(
        !each_owns || nodes.iter().all(|(_, n)| *n > 0),
        "a node owns nothing yet ({})",
        ownership(&view)
    );
    for base in bases {
        let known = registry(client, base).await?.len();
        anyhow::ensure!(
            known == webhooks,
            "{base} knows {known} of {webhooks} webhooks"
        );
    }
    Ok(view)
}

/// Waits for [`cluster_settled`]; past `timeout` the server misbehaves, and the run says how.
async fn wait_cluster(
    client: &reqwest::Client,
    bases: &[String],
    webhooks: usize,
    each_owns: bool,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        match cluster_settled(client, bases, webhooks, each_owns).await {
            Ok(view) => return Ok(view),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("cluster not settled after {} s: {e:#}", timeout.as_secs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `takeover`: kills `node-2` with SIGKILL, publishes one event per webhook through `node-1` at
/// once, and times, per webhook `node-2` owned, the kill to its first delivery.
async fn takeover(
    args: &Args,
    client: &reqwest::Client,
    receiver: SocketAddr,
    receipts: &Receipts,
) -> anyhow::Result<()> {
    let (webhooks, _, _) = sizes(args);
    let (db_url, _db_guard) = fresh_database(args)?;
    let mut servers = start_nodes(args, &db_url)?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    for base in &bases {
        wait_ready(client, base).await?;
    }
    let (specs, _) = webhook_specs(args, receiver, webhooks, webhooks);
    let ids = register(client, &bases[0], specs).await?;
    let t = Instant::now();
    let (view, lost) = doomed_webhooks(client, &bases, &ids, ownership_timeout(args)).await?;
    let ttl = Duration::from_millis(view["lease_ttl_ms"].as_u64().unwrap_or(0));
    println!(
        "cluster: {} after {:.0} ms; lease TTL {} ms",
        ownership(&view),
        t.elapsed().as_secs_f64() * 1e3,
        ttl.as_millis()
    );

    let doomed = &mut servers[1].child;
    doomed.kill()?;
    let killed = Instant::now();
    let _ = doomed.wait();
    let watch = tokio::spawn(departure(
        client.clone(),
        bases[0].clone(),
        killed,
        ttl + Duration::from_secs(30),
    ));
    let events = publish_one_each(client, &bases[0], ids.len()).await?;
    let published = killed.elapsed();
    wait_all(receipts, ids.len() as u64, ttl + Duration::from_secs(30)).await;

    let first = first_arrivals(receipts);
    let since_kill = |k: usize| {
        first
            .get(&events[k])
            .map(|at| at.saturating_duration_since(killed).as_secs_f64())
    };
    let (mut taken, mut kept) = (Vec::new(), Vec::new());
    for (k, id) in ids.iter().enumerate() {
        if lost.contains(id) {
            taken.push(since_kill(k));
        } else {
            kept.push(since_kill(k));
        }
    }
    println!(
        "node-2 killed (SIGKILL) owning {} of {} webhooks; one event per webhook published through node-1 {:.0} ms after the kill",
        lost.len(),
        ids.len(),
        published.as_secs_f64() * 1e3
    );
    let target = ttl + Duration::from_secs(1);
    let times = |label: &str, v: &[Option<f64>]| {
        let mut got: Vec<f64> = v.iter().flatten().copied().collect();
        got.sort_unstable_by(f64::total_cmp);
        let (min, med, max) = (
            got.first().copied().unwrap_or(f64::NAN),
            median(&got),
            got.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "kill → first delivery, {label}: {}/{} delivered, min {min:.2} s  median {med:.2} s  max {max:.2} s",
            got.len(),
            v.len()
        );
        got.len() == v.len() && max <= target.as_secs_f64()
    };
    let ok = times("webhooks node-2 owned", &taken);
    times("webhooks node-1 kept", &kept);
    println!(
        "lease TTL {:.2} s, target ≤ TTL + 1 s = {:.2} s: {}",
        ttl.as_secs_f64(),
        target.as_secs_f64(),
        if ok { "✔" } else { "✘" }
    );
    match watch.await? {
        Some(d) => println!(
            "node-2 left /api/cluster {:.2} s after the kill",
            d.as_secs_f64()
        ),
        None => println!(
            "node-2 still listed in /api/cluster {} s after the kill",
            (ttl + Duration::from_secs(30)).as_secs()
        ),
    }
    anyhow::ensure!(
        taken.iter().chain(&kept).all(Option::is_some),
        "not every webhook got its event within TTL + 30 s"
    );
    Ok(())
}

/// Waits until both nodes own webhooks, then asks which ones `node-2` owns: the `node` of each
/// webhook's health, checked against `/api/cluster`'s count, since ownership that moved between
/// the two reads would misattribute a webhook.
async fn doomed_webhooks(
    client: &reqwest::Client,
    bases: &[String],
    ids: &[i64],
    timeout: Duration,
) -> anyhow::Result<(Value, HashSet<i64>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let view = wait_cluster(client, bases, ids.len(), true, timeout).await?;
        let lost: HashSet<i64> = registry(client, &bases[0])
            .await?
            .iter()
            .filter(|h| h["node"].as_str() == Some("node-2"))
            .filter_map(|h| h["webhook_id"].as_i64())
            .collect();
        let counted = owned(&view)
            .into_iter()
            .find(|(id, _)| id == "node-2")
            .map_or(0, |(_, n)| n);
        if lost.len() as u64 == counted {
            return Ok((view, lost));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "health names {} webhooks of node-2, /api/cluster {counted}",
            lost.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One event per webhook, in one request through `base`: event k goes to webhook k alone. Their
/// ids, in that order.
async fn publish_one_each(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let body: Vec<Value> = (0..n)
        .map(|k| json!({"event": takeover_event_type(k), "data": {"tenantId": "bench", "n": k}}))
        .collect();
    let r = client
        .post(format!("{base}/api/events"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 202, "publish: {}", r.status());
    let v: Value = serde_json::from_slice(&r.bytes().await?)?;
    let ids: Vec<String> = v["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(ids.len() == n, "publish: {n} events, {} ids", ids.len());
    Ok(ids)
}

/// How long after `since` node-2 left the live nodes of `/api/cluster` on `base` (None: not
/// within `limit`).
async fn departure(
    client: reqwest::Client,
    base: String,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    while since.elapsed() < limit {
        if let Ok(view) = get_json(&client, &format!("{base}/api/cluster")).await {
            if owned(&view).iter().all(|(id, _)| id != "node-2") {
                return Some(since.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The first arrival of each event.
fn first_arrivals(r: &Receipts) -> HashMap<String, Instant> {
    let mut first: HashMap<String, Instant> = HashMap::new();
    for (event, at) in r.arrivals.lock().unwrap().iter() {
        first
            .entry(event.clone())
            .and_modify(|t| *t = (*t).min(*at))
            .or_insert(*at);
    }
    first
}

/// Median of sorted figures (NaN for none).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if !n.is_multiple_of(2) => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

async fn wait_all(r: &Receipts, expected: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while r.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When an event's publish request left, and when its `202` came back.
#[derive(Clone, Copy)]
struct Published {
    sent: Instant,
    accepted: Instant,
}

/// Milliseconds from `from` of each published event to its receipt.
fn latencies(
    published: &Mutex<HashMap<String, Published>>,
    r: &Receipts,
    from: impl Fn(&Published) -> Instant,
) -> Vec<f64> {
    let published = published.lock().unwrap();
    let arrivals = r.arrivals.lock().unwrap();
    arrivals
        .iter()
        .filter_map(|(event, at)| {
            published
                .get(event)
                .map(|p| at.saturating_duration_since(from(p)).as_secs_f64() * 1e3)
        })
        .collect()
}

/// Nearest-rank percentile `p` (0–1) of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(
            ((sorted.len() as f64 * p).ceil() as usize)
                .saturating_sub(1)
                .min(sorted.len().saturating_sub(1)),
        )
        .copied()
        .unwrap_or(0.0)
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

fn peak_rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmHWM:")
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    //! The harness's own bookkeeping: what it counts decides every figure it prints.
    use super::*;

    fn receipts(down: bool) -> Arc<Receipts> {
        Arc::new(Receipts {
            seen: Mutex::new(HashSet::new()),
            arrivals: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            down: AtomicBool::new(down),
            delay: Duration::ZERO,
            first: Mutex::new(None),
            last: Mutex::new(None),
        })
    }

    async fn post(addr: SocketAddr, event: &str, delivery: &str, body: &Value) -> u16 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .post(format!("http://{addr}/hook"))
            .header("x-beema-event", event)
            .header("x-beema-delivery", delivery)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn batch_members_count_once_each_and_503s_not_at_all() {
        let r = receipts(true);
        let addr = start_receiver(r.clone()).await.unwrap();
        let batch = json!({"type": "batch", "deliveries": [
            {"delivery_id": "d1", "id": "e1", "event": "bench/event", "data": {}, "user": null, "timestamp": "t"},
            {"delivery_id": "d2", "id": "e2", "event": "bench/event", "data": {}, "user": null, "timestamp": "t"},
            {"delivery_id": "d3", "id": "e3", "event": "bench/event", "data": {}, "user": null, "timestamp": "t"},
        ]});
        assert_eq!(post(addr, "batch", "b1", &batch).await, 503);
        assert_eq!(r.count.load(Ordering::Relaxed), 0);
        r.down.store(false, Ordering::Relaxed);
        assert_eq!(post(addr, "batch", "b1", &batch).await, 204);
        // The same batch again (a retry after a lost answer): nothing new.
        assert_eq!(post(addr, "batch", "b1", &batch).await, 204);
        let single = json!({"id": "e4", "claim": "CLM-1"});
        assert_eq!(post(addr, "bench/event", "d4", &single).await, 204);
        assert_eq!(r.count.load(Ordering::Relaxed), 4);
        assert_eq!(r.batches.load(Ordering::Relaxed), 2);
        assert_eq!(r.requests.load(Ordering::Relaxed), 3);
        let mut events: Vec<_> = r
            .arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect();
        events.sort();
        assert_eq!(events, ["e1", "e2", "e3", "e4"]);
    }

    #[test]
    fn a_server_without_a_feature_stops_the_run() {
        let sent = json!({"webhook_name": "bench", "transform": TRANSFORM});
        let refused =
            r#"{"error": {"code": "validation", "message": "unknown", "field": "transform"}}"#;
        let e = check_created(&sent, 422, refused).unwrap_err().to_string();
        assert!(e.contains("refuses `transform`"), "{e}");
        let e = check_created(&sent, 201, r#"{"webhook_id": 1, "transform": null}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ignored `transform`"), "{e}");
        let echoed = json!({"webhook_id": 1, "transform": TRANSFORM}).to_string();
        check_created(&sent, 201, &echoed).unwrap();
        let other = r#"{"error": {"code": "validation", "message": "bad", "field": "url"}}"#;
        let e = check_created(&json!({"url": "x"}), 422, other)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("create webhook: 422"), "{e}");
    }

    #[test]
    fn routing_expects_half_the_events_per_filtered_webhook_and_all_for_the_batch() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let args = Args::parse_from(["loadgen", "--scenario", "routing", "--events", "5"]);
        let (specs, expected) = webhook_specs(&args, addr, 10, 5);
        assert_eq!(specs.len(), 11);
        // 5 webhooks pass the 3 even events, 5 the 2 odd ones, the batching one all 5.
        assert_eq!(expected, 5 * 3 + 5 * 2 + 5);
        let args = Args::parse_from([
            "loadgen",
            "--scenario",
            "routing",
            "--no-filter",
            "--no-batch",
        ]);
        let (specs, expected) = webhook_specs(&args, addr, 10, 5);
        assert_eq!((specs.len(), expected), (10, 50));
        assert!(specs.iter().all(|s| s.get("filter").is_none()));
        let args = Args::parse_from(["loadgen", "--scenario", "batch-drain"]);
        let (specs, expected) = webhook_specs(&args, addr, 1, 1_000_000);
        assert_eq!((specs.len(), expected), (1, 1_000_000));
        assert_eq!(specs[0]["batch"]["maxEvents"], 100);
    }

    #[test]
    fn takeover_gives_each_webhook_its_own_event_type_on_two_nodes() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let args = Args::parse_from(["loadgen", "--scenario", "takeover"]);
        let (webhooks, events, _) = sizes(&args);
        let (specs, expected) = webhook_specs(&args, addr, webhooks, events);
        let types: HashSet<_> = specs.iter().map(|s| s["event_type"].clone()).collect();
        assert_eq!((specs.len(), types.len(), expected), (20, 20, 20));
        assert_eq!(specs[3]["event_type"], takeover_event_type(3));
        assert_eq!((node_count(&args), lease_ttl_ms(&args)), (2, Some(10_000)));
        let args = Args::parse_from([
            "loadgen",
            "--scenario",
            "takeover",
            "--lease-ttl-ms",
            "2000",
        ]);
        assert_eq!(lease_ttl_ms(&args), Some(2000));
        // A single steady node passes neither setting: a server from before the cluster runs it.
        let args = Args::parse_from(["loadgen"]);
        assert_eq!((node_count(&args), lease_ttl_ms(&args)), (1, None));
    }

    #[test]
    fn cluster_figures() {
        let view = json!({"node": "node-1", "lease_ttl_ms": 2000, "nodes": [
            {"id": "node-1", "webhooks": 12}, {"id": "node-2", "webhooks": 8}]});
        assert_eq!(
            owned(&view),
            [("node-1".to_string(), 12), ("node-2".to_string(), 8)]
        );
        assert_eq!(ownership(&view), "node-1 owns 12, node-2 owns 8 webhooks");
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[1.0, 2.0, 4.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), 3.0);
    }
}
