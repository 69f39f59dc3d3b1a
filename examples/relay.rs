//! The floor under `loadgen`'s figures: a dispatcher with nothing but its two HTTP legs.
//!
//! `relay` answers the part of the server's API that `loadgen --scenario steady` uses (`/readyz`,
//! `POST /api/webhooks`, `POST /api/events`) with the same stacks as the server (actix-web in,
//! reqwest out, serde_json, mimalloc, the headers and signatures of the server's `HeaderTemplate`),
//! but keeps webhooks in memory and writes nothing anywhere: no database, no retry, no recorder.
//! Each event is answered `202` at once and sent to every webhook in the background. Whatever share
//! of the ceiling it reaches is the most a dispatcher built on these stacks can reach on this
//! machine: every delivery still costs a request out and a receipt, plus its share of the publish.
//!
//! ```text
//! cargo build --release --example relay --example loadgen
//! target/release/examples/loadgen --scenario steady --batch 1 --server-bin target/release/examples/relay
//! ```
//!
//! It takes the server's command line (`serve --listen ADDR ...`) and ignores all but `--listen`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::{web, App, HttpResponse, HttpServer};
use beema_webhooks::delivery::sender::{HeaderTemplate, Outgoing};
use beema_webhooks::delivery::signing::generate_secret;
use beema_webhooks::domain::Webhook;
use chrono::Utc;
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests in flight per webhook: the server's default `max_in_flight`.
const MAX_IN_FLIGHT: usize = 32;

/// A webhook as the relay keeps it.
struct Hook {
    webhook: Webhook,
    /// Its headers, prepared once as the server's webhook actor prepares them.
    headers: HeaderTemplate,
    /// Caps its requests in flight, as the server's webhook actor does; unbounded, the relay
    /// opens a connection per queued event and runs out of ports.
    slots: Arc<tokio::sync::Semaphore>,
}

/// Shared state: the webhooks and the client every send goes through.
struct Relay {
    hooks: RwLock<Vec<Arc<Hook>>>,
    next_id: AtomicI64,
    client: reqwest::Client,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(std::io::Error::other)?;
    let relay = web::Data::new(Relay {
        hooks: RwLock::new(Vec::new()),
        next_id: AtomicI64::new(1),
        client,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(relay.clone())
            .route("/readyz", web::get().to(HttpResponse::Ok))
            .route("/api/webhooks", web::post().to(register))
            .route("/api/events", web::post().to(publish))
    })
    .bind(listen)?
    .run()
    .await
}

/// Keeps the webhook; answers as the server does, echoing what was sent.
async fn register(relay: web::Data<Relay>, body: web::Json<Value>) -> HttpResponse {
    let mut created = body.into_inner();
    let Some(url) = created["url"].as_str().map(str::to_string) else {
        return HttpResponse::UnprocessableEntity().json(json!({"error": "url"}));
    };
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let webhook = Webhook::new(id, "relay", "", "", url, generate_secret());
    relay.hooks.write().unwrap().push(Arc::new(Hook {
        headers: HeaderTemplate::new(&webhook),
        webhook,
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
    }));
    created["webhook_id"] = json!(id);
    HttpResponse::Created().json(created)
}

/// Gives each event an id, answers `202` with the ids, and sends it to every webhook afterwards.
async fn publish(relay: web::Data<Relay>, body: web::Bytes) -> HttpResponse {
    let events: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(events)) => events,
        Ok(event @ Value::Object(_)) => vec![event],
        _ => return HttpResponse::BadRequest().json(json!({"error": "not an event"})),
    };
    let hooks = relay.hooks.read().unwrap().clone();
    let mut ids = Vec::with_capacity(events.len());
    for mut event in events {
        let id = uuid::Uuid::now_v7().to_string();
        event["id"] = json!(id);
        let event_type = event["event"].as_str().unwrap_or("").to_string();
        let payload: Arc<str> = Arc::from(event.to_string());
        // Shared by the event's sends, as the server shares a payload.
        let body = bytes::Bytes::copy_from_slice(payload.as_bytes());
        for hook in &hooks {
            // The server's own headers and signatures, built by the server's own function.
            let out = Outgoing {
                delivery_id: uuid::Uuid::now_v7().to_string(),
                event_type: event_type.clone(),
                payload: payload.clone(),
            };
            let request = relay
                .client
                .post(&hook.webhook.url)
                .headers(hook.headers.headers(&out, Utc::now()))
                .body(body.clone());
            let slots = hook.slots.clone();
            actix_web::rt::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let _ = request.send().await.map(|r| r.status());
            });
        }
        ids.push(id);
    }
    HttpResponse::Accepted().json(json!({ "ids": ids }))
}
