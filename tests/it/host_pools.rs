//! Connections shared per receiver origin (README, "Connections to receivers"): capped by
//! `BEEMA_HOST_CONNECTIONS`, reused across webhooks, and handed out fairly so that a slow webhook
//! does not starve another one on the same host.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::utils::receiver::LocalServer;
use crate::utils::Env;

/// What the two-path receiver saw.
#[derive(Default)]
struct Seen {
    /// Paths in arrival order.
    order: Vec<String>,
    /// Client addresses: one per connection.
    peers: HashSet<SocketAddr>,
    in_flight: usize,
    max_in_flight: usize,
    /// Requests answered.
    done: usize,
}

/// A receiver on one origin: `/slow` answers after `delay`, everything else at once.
struct TwoPathReceiver {
    base: String,
    seen: Arc<Mutex<Seen>>,
    _server: LocalServer,
}

impl TwoPathReceiver {
    fn start(delay: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let server = LocalServer::start(move |req, _body| answer(req, state.clone(), delay));
        Self {
            base: format!("http://{}", server.addr),
            seen,
            _server: server,
        }
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("lock"))
    }
}

async fn answer(req: HttpRequest, state: Arc<Mutex<Seen>>, delay: Duration) -> HttpResponse {
    let slow = req.path() == "/slow";
    {
        let mut s = state.lock().expect("lock");
        s.order.push(req.path().to_string());
        if let Some(peer) = req.peer_addr() {
            s.peers.insert(peer);
        }
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
    }
    if slow {
        tokio::time::sleep(delay).await;
    }
    {
        let mut s = state.lock().expect("lock");
        s.in_flight -= 1;
        s.done += 1;
    }
    HttpResponse::NoContent().finish()
}

/// The dispatcher's worker threads: the cap holds per thread.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

async fn wait_for(rx: &TwoPathReceiver, what: &str, check: impl Fn(&Seen) -> bool) {
    crate::utils::eventually(Duration::from_secs(20), what, || async {
        rx.seen(&check).then_some(())
    })
    .await;
}

/// Registers the `load/fast` webhook at `fast_url` on the worker thread of `slow` (webhooks run on
/// thread `id % workers`), with `load/none` webhooks at `filler_url` taking the ids in between.
async fn fast_webhook_beside(
    env: &Env,
    slow: &serde_json::Value,
    filler_url: &str,
    fast_url: &str,
) -> serde_json::Value {
    for _ in 1..workers() {
        env.server
            .create_webhook("t1", "load/none", filler_url, json!({}))
            .await;
    }
    let fast = env
        .server
        .create_webhook("t1", "load/fast", fast_url, json!({}))
        .await;
    let thread =
        |v: &serde_json::Value| v["webhook_id"].as_i64().expect("webhook_id") % workers() as i64;
    assert_eq!(thread(slow), thread(&fast), "not on one worker thread");
    fast
}

#[tokio::test]
async fn requests_to_one_host_are_capped_and_reuse_their_connections() {
    let env = Env::with(|c| c.tuning.host_connections = 2);
    let rx = TwoPathReceiver::start(Duration::from_millis(200));
    for i in 0..3 {
        env.server
            .create_webhook(
                "t1",
                "load/slow",
                &format!("{}/slow", rx.base),
                json!({"webhook_name": format!("slow {i}")}),
            )
            .await;
    }
    for _ in 0..6 {
        env.server.publish("t1", "load/slow", json!({})).await;
    }
    wait_for(&rx, "all 18 deliveries", |s| s.order.len() == 18).await;
    let cap = 2 * workers();
    rx.seen(|s| {
        assert!(
            s.max_in_flight <= cap,
            "{} requests at once, cap {cap}",
            s.max_in_flight
        );
        assert!(
            s.peers.len() <= cap,
            "{} connections for 18 requests, cap {cap}",
            s.peers.len()
        );
    });
}

#[tokio::test]
async fn a_slow_webhook_does_not_starve_another_on_the_same_host() {
    let env = Env::with(|c| c.tuning.host_connections = 2);
    let rx = TwoPathReceiver::start(Duration::from_millis(400));
    let slow = env
        .server
        .create_webhook("t1", "load/slow", &format!("{}/slow", rx.base), json!({}))
        .await;
    // On the slow webhook's thread, so that they share one gate.
    let fast_url = format!("{}/fast", rx.base);
    fast_webhook_beside(&env, &slow, &fast_url, &fast_url).await;
    for _ in 0..12 {
        env.server.publish("t1", "load/slow", json!({})).await;
    }
    // The slow webhook holds every slot of its thread and has ten more requests queued.
    wait_for(&rx, "two slow requests under way", |s| s.order.len() >= 2).await;
    env.server.publish("t1", "load/fast", json!({})).await;
    wait_for(&rx, "the fast delivery", |s| {
        s.order.iter().any(|p| p == "/fast")
    })
    .await;
    // Queued behind the slow webhook's backlog it would come 13th; it gets the next free slot.
    let slow_before = rx.seen(|s| s.order.iter().take_while(|p| *p == "/slow").count());
    assert!(
        slow_before <= 4,
        "{slow_before} slow requests went before the fast one"
    );
}

#[tokio::test]
async fn different_hosts_never_share_slots() {
    let env = Env::with(|c| c.tuning.host_connections = 1);
    let busy = TwoPathReceiver::start(Duration::from_secs(3));
    let other = TwoPathReceiver::start(Duration::ZERO);
    let slow = env
        .server
        .create_webhook("t1", "load/slow", &format!("{}/slow", busy.base), json!({}))
        .await;
    // On the slow webhook's worker thread, as above, but sending to another origin.
    fast_webhook_beside(
        &env,
        &slow,
        &format!("{}/x", other.base),
        &format!("{}/fast", other.base),
    )
    .await;
    for _ in 0..3 {
        env.server.publish("t1", "load/slow", json!({})).await;
    }
    // The busy origin's one slot is taken for 3 s, with two more requests waiting for it.
    wait_for(&busy, "the first slow request", |s| s.order.len() == 1).await;
    env.server.publish("t1", "load/fast", json!({})).await;
    wait_for(&other, "the other host's delivery", |s| s.done == 1).await;
    let busy_done = busy.seen(|s| s.done);
    assert_eq!(
        busy_done, 0,
        "the other host waited for the busy host's slot"
    );
}
