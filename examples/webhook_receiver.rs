//! Example webhook receiver for the Beema webhook dispatcher.
//!
//! This is the Rust counterpart of `examples/webhook-receiver.js`. It shows how
//! a subscriber should consume deliveries:
//!
//! * read the **raw** request body (`web::Bytes`) — signatures are computed over
//!   the exact bytes sent, so never re-serialise the JSON before verifying;
//! * verify the Beema signature
//!   `X-Beema-Signature: sha256=<lowercase hex HMAC-SHA256(secret, body)>`,
//!   where the key is the secret string's bytes exactly as written;
//! * verify the [Standard Webhooks](https://www.standardwebhooks.com/) signature
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`),
//!   where the key is the base64-decoded part after `whsec_` and the signed
//!   message is `{webhook-id}.{webhook-timestamp}.{body}`; timestamps further
//!   than `--tolerance-secs` from now are rejected (replay protection);
//! * compare all MACs in constant time (`subtle::ConstantTimeEq`);
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
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
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

    /// Maximum allowed distance between `webhook-timestamp` and now, in seconds.
    #[arg(long, default_value_t = 300)]
    tolerance_secs: u64,
}

/// Why a delivery was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VerifyError {
    MissingHeader(&'static str),
    BadSignatureFormat(&'static str),
    BadTimestamp,
    TimestampOutOfTolerance,
    SignatureMismatch(&'static str),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingHeader(h) => write!(f, "missing header {h}"),
            Self::BadSignatureFormat(h) => write!(f, "malformed {h} header"),
            Self::BadTimestamp => write!(f, "webhook-timestamp is not a unix timestamp"),
            Self::TimestampOutOfTolerance => {
                write!(f, "webhook-timestamp outside the tolerance window")
            }
            Self::SignatureMismatch(h) => write!(f, "{h} does not match"),
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

/// The Standard Webhooks signing key: base64-decoded part after `whsec_`,
/// or the secret's raw bytes if it has no prefix or does not decode.
fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Verifies a Standard Webhooks signature header (`v1,<base64> v1,<base64> ...`)
/// over `{id}.{timestamp}.{body}`, rejecting timestamps more than
/// `tolerance_secs` away from `now_unix`. Any single matching `v1` entry is accepted.
fn verify_standard(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    const NAME: &str = "webhook-signature";
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if now_unix.abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let key = standard_key(secret);
    let expected = hmac_sha256(
        &key,
        &[id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body],
    )
    .ok_or(VerifyError::SignatureMismatch(NAME))?;

    let mut saw_v1 = false;
    let mut matched = subtle::Choice::from(0);
    for entry in signature_header.split_whitespace() {
        let Some(("v1", b64)) = entry.split_once(',') else {
            continue; // other versions (e.g. v1a asymmetric) are not handled here
        };
        saw_v1 = true;
        if let Ok(provided) = BASE64.decode(b64) {
            matched |= expected.ct_eq(&provided);
        }
    }
    if !saw_v1 {
        return Err(VerifyError::BadSignatureFormat(NAME));
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch(NAME))
    }
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
    tolerance_secs: u64,
    seen: Mutex<SeenDeliveries>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(VerifyError::MissingHeader(name))
}

fn verify_request(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    verify_beema(
        &state.secret,
        body,
        header_str(headers, "x-beema-signature")?,
    )?;
    verify_standard(
        &state.secret,
        header_str(headers, "webhook-id")?,
        header_str(headers, "webhook-timestamp")?,
        header_str(headers, "webhook-signature")?,
        body,
        now_unix,
        state.tolerance_secs,
    )
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

    if let Err(err) = verify_request(&state, headers, &body, now_unix()) {
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
        tolerance_secs: args.tolerance_secs,
        seen: Mutex::new(SeenDeliveries::new(DEDUPE_CAPACITY)),
    });

    tracing::info!(listen = %args.listen, tolerance_secs = args.tolerance_secs, "webhook receiver listening");
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

    fn std_verify(secret: &str, sig: &str, now: i64) -> Result<(), VerifyError> {
        verify_standard(secret, ID, &TS.to_string(), sig, BODY, now, 300)
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
    fn standard_known_answer() {
        assert_eq!(std_verify(SECRET, STD_SIG, TS), Ok(()));
    }

    #[test]
    fn standard_spec_vector() {
        // Test vector published with the Standard Webhooks reference libraries.
        assert_eq!(
            verify_standard(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                br#"{"test": 2432232314}"#,
                1_614_265_330,
                300,
            ),
            Ok(())
        );
    }

    #[test]
    fn standard_secret_without_prefix_uses_raw_bytes() {
        assert_eq!(std_verify("plain-secret", PLAIN_STD_SIG, TS), Ok(()));
        assert_eq!(standard_key("whsec_!!notbase64"), b"whsec_!!notbase64");
    }

    #[test]
    fn standard_accepts_any_matching_v1_entry() {
        let header = format!("v1a,abc v1,AAAA v1,bm9wZQ== {STD_SIG}");
        assert_eq!(std_verify(SECRET, &header, TS), Ok(()));
        assert_eq!(
            std_verify(SECRET, "v1,AAAA v1,bm9wZQ==", TS),
            Err(VerifyError::SignatureMismatch("webhook-signature"))
        );
        assert_eq!(
            std_verify(SECRET, "v2,abc", TS),
            Err(VerifyError::BadSignatureFormat("webhook-signature"))
        );
    }

    #[test]
    fn standard_enforces_tolerance() {
        assert_eq!(std_verify(SECRET, STD_SIG, TS + 300), Ok(()));
        assert_eq!(std_verify(SECRET, STD_SIG, TS - 300), Ok(()));
        assert_eq!(
            std_verify(SECRET, STD_SIG, TS + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            std_verify(SECRET, STD_SIG, TS - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify_standard(SECRET, ID, "yesterday", STD_SIG, BODY, TS, 300),
            Err(VerifyError::BadTimestamp)
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
        let std = hmac_sha256(
            &standard_key(SECRET),
            &[ID.as_bytes(), b".", ts.as_bytes(), b".", body],
        )
        .unwrap_or_default();
        vec![
            (
                "x-beema-signature",
                format!("sha256={}", hex::encode(beema)),
            ),
            ("x-beema-event", "claim/opened".to_owned()),
            ("x-beema-delivery", delivery.to_owned()),
            ("webhook-id", ID.to_owned()),
            ("webhook-timestamp", ts),
            ("webhook-signature", format!("v1,{}", BASE64.encode(std))),
        ]
    }

    #[actix_web::test]
    async fn handler_accepts_dedupes_and_rejects() {
        let state = web::Data::new(AppState {
            secret: SECRET.to_owned(),
            tolerance_secs: 300,
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
