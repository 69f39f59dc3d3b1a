//! Example webhook receiver for the Beema webhook dispatcher.
//!
//! It shows how a subscriber should consume deliveries:
//!
//! * read the **raw** request body (`web::Bytes`) — signatures are computed over
//!   the exact bytes sent, so never re-serialise the JSON before verifying;
//! * verify the Beema signature
//!   `X-Beema-Signature: sha256=<lowercase hex HMAC-SHA256(secret, body)>`,
//!   where the key is the secret string's bytes exactly as written;
//! * verify the [Standard Webhooks](https://www.standardwebhooks.com/) signature
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`)
//!   with the `standardwebhooks` crate, where the key is the base64-decoded part
//!   after `whsec_` (a secret without that prefix is used as its bytes, as the
//!   dispatcher does); the crate rejects timestamps more than five minutes from
//!   now (replay protection);
//! * compare the Beema MAC in constant time (`subtle::ConstantTimeEq`);
//! * deduplicate redeliveries on `X-Beema-Delivery` (falling back to
//!   `webhook-id`) with a bounded in-memory set, answering
//!   `200 {"ok": true, "duplicate": true}` for ids already seen.
//!
//! Any path accepts `POST`. Invalid or missing signatures get
//! `401 {"ok": false, "error": "..."}`; accepted deliveries get
//! `200 {"ok": true}`.
//!
//! Run it with the same secret you registered the webhook with:
//!
//! ```text
//! cargo run --example webhook_receiver -- --secret whsec_... --listen 127.0.0.1:4000
//! ```
//!
//! The secret and listen address can also come from the `WEBHOOK_SECRET` and
//! `RECEIVER_LISTEN` environment variables (default listen address
//! `127.0.0.1:4000`). Log verbosity follows `RUST_LOG` (default `info`).
//! `scripts/test-webhook-dispatch.sh` drives a full end-to-end delivery
//! against this receiver.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::http::header::HeaderMap;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How many delivery ids are remembered for duplicate detection.
const DEDUPE_CAPACITY: usize = 100_000;

#[derive(Debug, Parser)]
#[command(about = "Example receiver that verifies Beema webhook deliveries")]
struct Args {
    /// Webhook signing secret (usually `whsec_<base64>`), as registered with the dispatcher.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,

    /// Address to listen on.
    #[arg(long, env = "RECEIVER_LISTEN", default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
}

/// Why a delivery was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VerifyError {
    MissingHeader(&'static str),
    BadSignatureFormat(&'static str),
    SignatureMismatch(&'static str),
    /// What the `standardwebhooks` crate refused (signature, timestamp, headers).
    Standard(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingHeader(h) => write!(f, "missing header {h}"),
            Self::BadSignatureFormat(h) => write!(f, "malformed {h} header"),
            Self::SignatureMismatch(h) => write!(f, "{h} does not match"),
            Self::Standard(e) => write!(f, "Standard Webhooks: {e}"),
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().to_vec())
}

/// Verifies `X-Beema-Signature: sha256=<hex HMAC-SHA256(secret bytes, body)>`.
fn verify_beema(secret: &str, body: &[u8], header: &str) -> Result<(), VerifyError> {
    const NAME: &str = "X-Beema-Signature";
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::BadSignatureFormat(NAME))?;
    let provided = hex::decode(hex_sig).map_err(|_| VerifyError::BadSignatureFormat(NAME))?;
    let expected =
        hmac_sha256(secret.as_bytes(), &[body]).ok_or(VerifyError::SignatureMismatch(NAME))?;
    if bool::from(expected.ct_eq(&provided)) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch(NAME))
    }
}

/// The Standard Webhooks verifier for `secret`: a `whsec_<base64>` secret is decoded by the
/// crate; any other secret (or one that does not decode) is keyed by its bytes as written,
/// as the dispatcher signs it.
fn standard_webhook(secret: &str) -> standardwebhooks::Webhook {
    secret
        .strip_prefix("whsec_")
        .and_then(|_| standardwebhooks::Webhook::new(secret).ok())
        .unwrap_or_else(|| {
            // from_bytes takes any key; it returns a Result only for symmetry with `new`.
            standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
                .expect("any bytes are a key")
        })
}

/// Verifies the Standard Webhooks headers with the `standardwebhooks` crate (any matching
/// `v1` entry of `webhook-signature` is accepted; the timestamp must be within five minutes).
fn verify_standard(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    // actix-web's header map is its own type; the crate takes `http`'s.
    let mut std_headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = header_str(headers, name)?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| VerifyError::BadSignatureFormat(name))?;
        std_headers.insert(name, value);
    }
    standard_webhook(secret)
        .verify(body, &std_headers)
        .map_err(|e| VerifyError::Standard(e.to_string()))
}

/// Bounded set of recently seen delivery ids (oldest evicted first).
#[derive(Debug)]
struct SeenDeliveries {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl SeenDeliveries {
    fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `id`; returns `true` if it had not been seen before.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        while self.order.len() >= self.capacity.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.set.remove(&old);
                }
                None => break,
            }
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

struct AppState {
    secret: String,
    seen: Mutex<SeenDeliveries>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(VerifyError::MissingHeader(name))
}

fn verify_request(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    verify_beema(
        &state.secret,
        body,
        header_str(headers, "x-beema-signature")?,
    )?;
    verify_standard(&state.secret, headers, body)
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let headers = req.headers();
    let event = headers
        .get("x-beema-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let delivery = headers
        .get("x-beema-delivery")
        .or_else(|| headers.get("webhook-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");

    if let Err(err) = verify_request(&state, headers, &body) {
        tracing::warn!(event, delivery, path = req.path(), error = %err, "rejected delivery");
        return HttpResponse::Unauthorized().json(json!({ "ok": false, "error": err.to_string() }));
    }

    let first_time = delivery.is_empty() || {
        // A poisoned lock only means another handler panicked; the set is still usable.
        let mut seen = state.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(delivery)
    };
    let body_text = String::from_utf8_lossy(&body);
    if !first_time {
        tracing::info!(event, delivery, body = %body_text, "duplicate delivery ignored");
        return HttpResponse::Ok().json(json!({ "ok": true, "duplicate": true }));
    }
    tracing::info!(event, delivery, body = %body_text, "delivery received");
    HttpResponse::Ok().json(json!({ "ok": true }))
}

fn app_config(cfg: &mut web::ServiceConfig) {
    cfg.route("/{tail:.*}", web::post().to(receive));
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let args = Args::parse();
    let state = web::Data::new(AppState {
        secret: args.secret,
        seen: Mutex::new(SeenDeliveries::new(DEDUPE_CAPACITY)),
    });

    tracing::info!(listen = %args.listen, "webhook receiver listening");
    HttpServer::new(move || App::new().app_data(state.clone()).configure(app_config))
        .bind(args.listen)?
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test as atest;

    // Known-answer vectors computed with Python's hmac/hashlib:
    //   secret = "whsec_" + base64(sha256(b"beema-webhook-receiver-example"))
    //   hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    //   base64(hmac.new(b64decode(secret[6:]), f"{ID}.{TS}.".encode() + BODY, sha256).digest())
    const SECRET: &str = "whsec_YFh8P3ATLnJAb8Vd8OoF7VIHuURcjnWPjLWVd764P3g=";
    const BODY: &[u8] = br#"{"event":"claim/opened","data":{"claimNumber":"CLM-001"}}"#;
    const BEEMA_SIG: &str =
        "sha256=7feb2416b91c8428ee8ff4eda9e6b425c7023b80b8caaeb9e92e38d6e73cc410";
    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const TS: i64 = 1_674_087_231;
    const STD_SIG: &str = "v1,psjdvw/eN7AsMy9PPdiU3gGrXLxOuQTYUG8oNmCwK48=";
    // Same message signed with the un-prefixed secret "plain-secret" (raw bytes as key).
    const PLAIN_STD_SIG: &str = "v1,hBq0eeasvO1duLgWNgUfX1UrZo3Gl6DjHQAC3YdLhsw=";

    fn now_unix() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Actix headers as the dispatcher sends them, signed at `ts`.
    fn std_headers(secret: &str, ts: i64, body: &[u8]) -> HeaderMap {
        let sig = standard_webhook(secret).sign(ID, ts, body).unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("webhook-id", ID.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ] {
            h.insert(
                actix_web::http::header::HeaderName::from_static(k),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn beema_known_answer() {
        assert_eq!(verify_beema(SECRET, BODY, BEEMA_SIG), Ok(()));
    }

    #[test]
    fn beema_rejects_tampering_and_bad_format() {
        assert_eq!(
            verify_beema(SECRET, b"{}", BEEMA_SIG),
            Err(VerifyError::SignatureMismatch("X-Beema-Signature"))
        );
        assert_eq!(
            verify_beema("whsec_other", BODY, BEEMA_SIG),
            Err(VerifyError::SignatureMismatch("X-Beema-Signature"))
        );
        assert_eq!(
            verify_beema(SECRET, BODY, &BEEMA_SIG["sha256=".len()..]),
            Err(VerifyError::BadSignatureFormat("X-Beema-Signature"))
        );
        assert_eq!(
            verify_beema(SECRET, BODY, "sha256=zz"),
            Err(VerifyError::BadSignatureFormat("X-Beema-Signature"))
        );
        // Truncated signature: different length must not match.
        assert!(verify_beema(SECRET, BODY, &BEEMA_SIG[..BEEMA_SIG.len() - 2]).is_err());
    }

    #[test]
    fn standard_keys_match_the_known_answers() {
        let sign = |secret: &str| standard_webhook(secret).sign(ID, TS, BODY).unwrap();
        assert_eq!(sign(SECRET), STD_SIG);
        assert_eq!(sign("plain-secret"), PLAIN_STD_SIG);
        // Standard Webhooks' published vector.
        assert_eq!(
            standard_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .sign(
                    "msg_p5jXN8AQM9LWM0D4loKWxJek",
                    1_614_265_330,
                    br#"{"test": 2432232314}"#
                )
                .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_accepts_fresh_and_refuses_stale_tampered_or_foreign() {
        let now = now_unix();
        assert_eq!(
            verify_standard(SECRET, &std_headers(SECRET, now, BODY), BODY),
            Ok(())
        );
        assert_eq!(
            verify_standard(
                "plain-secret",
                &std_headers("plain-secret", now, BODY),
                BODY
            ),
            Ok(())
        );
        for (what, secret, headers, body) in [
            ("stale", SECRET, std_headers(SECRET, now - 301, BODY), BODY),
            ("future", SECRET, std_headers(SECRET, now + 301, BODY), BODY),
            (
                "tampered",
                SECRET,
                std_headers(SECRET, now, BODY),
                &b"{}"[..],
            ),
            (
                "other secret",
                SECRET,
                std_headers("plain-secret", now, BODY),
                BODY,
            ),
        ] {
            assert!(
                matches!(
                    verify_standard(secret, &headers, body),
                    Err(VerifyError::Standard(_))
                ),
                "{what}"
            );
        }
        let mut missing = std_headers(SECRET, now, BODY);
        missing.remove("webhook-id");
        assert_eq!(
            verify_standard(SECRET, &missing, BODY),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn seen_deliveries_is_bounded() {
        let mut seen = SeenDeliveries::new(2);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(seen.insert("c")); // evicts "a"
        assert!(!seen.insert("b"));
        assert!(seen.insert("a"));
        assert_eq!(seen.set.len(), 2);
        assert_eq!(seen.order.len(), 2);
    }

    fn fresh_headers(body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
        let now = now_unix();
        let ts = now.to_string();
        let beema = hmac_sha256(SECRET.as_bytes(), &[body]).unwrap_or_default();
        let std = standard_webhook(SECRET).sign(ID, now, body).unwrap();
        vec![
            (
                "x-beema-signature",
                format!("sha256={}", hex::encode(beema)),
            ),
            ("x-beema-event", "claim/opened".to_owned()),
            ("x-beema-delivery", delivery.to_owned()),
            ("webhook-id", ID.to_owned()),
            ("webhook-timestamp", ts),
            ("webhook-signature", std),
        ]
    }

    #[actix_web::test]
    async fn handler_accepts_dedupes_and_rejects() {
        let state = web::Data::new(AppState {
            secret: SECRET.to_owned(),
            seen: Mutex::new(SeenDeliveries::new(10)),
        });
        let app =
            atest::init_service(App::new().app_data(state.clone()).configure(app_config)).await;

        let send = |path: &str, headers: Vec<(&'static str, String)>, body: &'static [u8]| {
            let mut req = atest::TestRequest::post().uri(path).set_payload(body);
            for h in headers {
                req = req.insert_header(h);
            }
            req.to_request()
        };

        let resp: serde_json::Value =
            atest::call_and_read_body_json(&app, send("/", fresh_headers(BODY, "dlv-1"), BODY))
                .await;
        assert_eq!(resp, json!({ "ok": true }));

        let resp: serde_json::Value = atest::call_and_read_body_json(
            &app,
            send("/any/path", fresh_headers(BODY, "dlv-1"), BODY),
        )
        .await;
        assert_eq!(resp, json!({ "ok": true, "duplicate": true }));

        // Body tampered after signing.
        let resp = atest::call_service(
            &app,
            send("/", fresh_headers(BODY, "dlv-2"), br#"{"evil":true}"#),
        )
        .await;
        assert_eq!(resp.status(), 401);
        let err: serde_json::Value = atest::read_body_json(resp).await;
        assert_eq!(err["ok"], json!(false));
        assert!(err["error"].is_string());

        // Missing Standard Webhooks headers.
        let only_beema = fresh_headers(BODY, "dlv-3")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("webhook-"))
            .collect();
        let resp = atest::call_service(&app, send("/", only_beema, BODY)).await;
        assert_eq!(resp.status(), 401);

        // Rejected deliveries must not be recorded as seen.
        let resp: serde_json::Value =
            atest::call_and_read_body_json(&app, send("/", fresh_headers(BODY, "dlv-2"), BODY))
                .await;
        assert_eq!(resp, json!({ "ok": true }));
    }
}
