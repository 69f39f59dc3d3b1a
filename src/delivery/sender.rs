//! The HTTP side of an attempt: the exact request of the contract, and what came back.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::StatusCode;

use super::retry::parse_retry_after;
use super::signing::SigningKey;
use super::ssrf::{check_ip_target, GuardedResolver, TargetPolicy};
use crate::domain::{truncate_body, Webhook};

/// `User-Agent` of every delivery.
pub const USER_AGENT_VALUE: &str = concat!("beema-webhooks/", env!("CARGO_PKG_VERSION"));
/// At most this much of a response body is read (the log keeps 1000 characters of it).
const MAX_READ: usize = 4096;

/// What one delivery attempt needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Same on every attempt: receivers dedupe on it.
    pub delivery_id: String,
    /// Event type, for `X-Beema-Event`.
    pub event_type: String,
    /// The exact body (the stored event payload).
    pub payload: Arc<str>,
}

/// What came back from one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Start of the response body.
    pub body: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The receiver's `Retry-After` with a 429 or 503.
    pub retry_after: Option<Duration>,
    /// Wall time of the attempt.
    pub duration: Duration,
}

impl AttemptResult {
    /// Any 2xx.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// `410 Gone`: the receiver asks us to stop.
    pub fn is_gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// A reqwest client for the webhooks of one receiver origin (see [`super::host_pool`]): no
/// redirects, non-public addresses refused at connect time, up to `max_idle` idle connections kept.
pub fn build_client(
    policy: Arc<TargetPolicy>,
    tls: &rustls::ClientConfig,
    max_idle: usize,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .dns_resolver(GuardedResolver::new(policy))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        .build()
}

/// The shared TLS settings (ring provider, the platform's trust store).
pub fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}

/// What the requests of one webhook share, prepared once per configuration rather than on every
/// attempt: the URL parsed (parsing runs IDNA on every host), the timeout, and the headers.
pub struct PreparedRequest {
    /// The webhook's URL.
    pub url: url::Url,
    /// The webhook's `timeout_ms`.
    pub timeout: Duration,
    /// Its headers, all but the per-attempt ones.
    pub headers: HeaderTemplate,
}

impl PreparedRequest {
    /// Prepares the requests of `webhook`; fails on an unparsable URL.
    pub fn new(webhook: &Webhook) -> Result<Self, String> {
        Ok(Self {
            url: url::Url::parse(&webhook.url).map_err(|e| e.to_string())?,
            timeout: Duration::from_millis(webhook.timeout_ms),
            headers: HeaderTemplate::new(webhook),
        })
    }
}

/// The headers of one webhook's attempts (README, "What a receiver gets"): its custom headers,
/// content type and user agent validated once, and its secrets keyed once for signing.
pub struct HeaderTemplate {
    /// Custom headers, then `Content-Type` and `User-Agent` (the validation of the API keeps
    /// custom headers off every name the dispatcher sets).
    fixed: HeaderMap,
    /// The current secret, for `X-Beema-Signature`.
    beema: SigningKey,
    /// Every secret that signs `webhook-signature`, with the end of its rotation window (None:
    /// the current one).
    standard: Vec<(SigningKey, Option<DateTime<Utc>>)>,
}

impl HeaderTemplate {
    /// The template of `webhook`'s headers.
    pub fn new(webhook: &Webhook) -> Self {
        let mut fixed = HeaderMap::new();
        for (k, v) in &webhook.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                fixed.insert(name, value);
            }
        }
        fixed.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        fixed.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let mut standard = vec![(SigningKey::standard(&webhook.secret), None)];
        standard.extend(
            webhook
                .previous_secrets
                .iter()
                .map(|p| (SigningKey::standard(&p.secret), Some(p.expires_at))),
        );
        Self {
            fixed,
            beema: SigningKey::beema(&webhook.secret),
            standard,
        }
    }

    /// The headers of one attempt, signed at `now` with every secret still live then.
    pub fn headers(&self, out: &Outgoing, now: DateTime<Utc>) -> HeaderMap {
        let ts = now.timestamp();
        let body = out.payload.as_bytes();
        let mut h = self.fixed.clone();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        let ts_text = ts.to_string();
        let signatures: Vec<String> = self
            .standard
            .iter()
            .filter(|(_, expires)| expires.is_none_or(|e| e > now))
            .map(|(key, _)| key.standard_signature(&out.delivery_id, ts, body))
            .collect();
        put("x-beema-event", &out.event_type);
        put("x-beema-delivery", &out.delivery_id);
        put("x-beema-timestamp", &ts_text);
        put("x-beema-signature", &self.beema.beema_signature(body));
        put("webhook-id", &out.delivery_id);
        put("webhook-timestamp", &ts_text);
        put("webhook-signature", &signatures.join(" "));
        h
    }
}

/// The headers of an attempt of `webhook`, signed with every live secret (for one-off requests;
/// webhook actors keep a [`HeaderTemplate`]).
pub fn build_headers(webhook: &Webhook, out: &Outgoing, now: DateTime<Utc>) -> HeaderMap {
    HeaderTemplate::new(webhook).headers(out, now)
}

/// Sends one attempt of a webhook prepared as `request`, and reports what happened; never fails.
pub async fn send(
    client: reqwest::Client,
    policy: &TargetPolicy,
    request: &PreparedRequest,
    out: &Outgoing,
) -> AttemptResult {
    let started = Instant::now();
    // reqwest does not call the resolver for IP literals, so those are checked here.
    if let Err(e) = check_ip_target(policy, &request.url) {
        return failed(started, e.to_string());
    }
    let timeout = request.timeout;
    // The body shares the payload's bytes: no copy per attempt.
    let body = bytes::Bytes::from_owner(ArcBytes(out.payload.clone()));
    let pending = client
        .post(request.url.clone())
        .headers(request.headers.headers(out, Utc::now()))
        .timeout(timeout)
        .body(body);
    match pending.send().await {
        Ok(resp) => read_response(resp, started, timeout).await,
        Err(e) => failed(started, describe_error(&e, timeout)),
    }
}

/// A shared payload as the bytes of a request body.
struct ArcBytes(Arc<str>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

async fn read_response(
    mut resp: reqwest::Response,
    started: Instant,
    timeout: Duration,
) -> AttemptResult {
    let status = resp.status();
    let retry_after =
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
    let mut buf = Vec::new();
    let mut error = None;
    while buf.len() < MAX_READ {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(describe_error(&e, timeout));
                break;
            }
        }
    }
    let body = truncate_body(&String::from_utf8_lossy(&buf));
    let error =
        error.or_else(|| (!status.is_success()).then(|| format!("HTTP {}", status.as_u16())));
    AttemptResult {
        status: Some(status.as_u16()),
        body: Some(body),
        error,
        retry_after,
        duration: started.elapsed(),
    }
}

/// An attempt that could not start (an unparsable URL, no HTTP client), recorded like a failed one.
pub fn not_sent(error: String) -> AttemptResult {
    failed(Instant::now(), error)
}

fn failed(started: Instant, error: String) -> AttemptResult {
    AttemptResult {
        status: None,
        body: None,
        error: Some(error),
        retry_after: None,
        duration: started.elapsed(),
    }
}

/// A one-line description of a transport error, naming its root cause.
fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signing::standard_signature;

    fn webhook() -> Webhook {
        Webhook {
            headers: [("Authorization".to_string(), "Bearer x".to_string())].into(),
            timeout_ms: 1000,
            ..Webhook::new(
                1,
                "n",
                "t",
                "*",
                "http://example.com/",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
        }
    }

    #[test]
    fn headers_carry_both_signatures_and_custom_headers() {
        let w = webhook();
        let out = Outgoing {
            delivery_id: "d1".into(),
            event_type: "claim/opened".into(),
            payload: Arc::from("{}"),
        };
        let now = Utc::now();
        let h = build_headers(&w, &out, now);
        assert_eq!(h["x-beema-delivery"], "d1");
        assert_eq!(h["webhook-id"], "d1");
        assert_eq!(h["x-beema-event"], "claim/opened");
        assert_eq!(h["authorization"], "Bearer x");
        assert_eq!(h["content-type"], "application/json");
        // Checked by an independent implementation of Standard Webhooks.
        standardwebhooks::Webhook::new(&w.secret)
            .unwrap()
            .verify(b"{}", &h)
            .expect("webhook-signature verifies");
        // python3 -c "import hmac,hashlib;print(hmac.new(b'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',b'{}',hashlib.sha256).hexdigest())"
        assert_eq!(
            h["x-beema-signature"],
            "sha256=6cbbcdf2c8016ca85b50543b19e8e121ef16137967bdfa3ce660972922bafaeb"
        );
    }

    #[test]
    fn a_template_signs_with_a_previous_secret_until_its_window_ends() {
        let mut w = webhook();
        let ends = Utc::now();
        w.previous_secrets = vec![crate::domain::PreviousSecret {
            secret: "whsec_b2xkc2VjcmV0".into(),
            expires_at: ends,
        }];
        let template = HeaderTemplate::new(&w);
        let out = Outgoing {
            delivery_id: "d1".into(),
            event_type: "claim/opened".into(),
            payload: Arc::from("{}"),
        };
        let signatures = |at| {
            let h = template.headers(&out, at);
            let verifies = |secret: &str| {
                standardwebhooks::Webhook::new(secret)
                    .unwrap()
                    .verify(b"{}", &h)
                    .is_ok()
            };
            (
                h["webhook-signature"].to_str().unwrap().split(' ').count(),
                verifies(&w.secret),
                verifies("whsec_b2xkc2VjcmV0"),
            )
        };
        let second = chrono::Duration::seconds(1);
        assert_eq!(signatures(ends - second), (2, true, true));
        assert_eq!(signatures(ends), (1, true, false));
        // The current secret signs first; each signature is the scheme's own for its secret.
        let before = ends - second;
        let h = template.headers(&out, before);
        let standard = |secret| standard_signature(secret, "d1", before.timestamp(), b"{}");
        assert_eq!(
            h["webhook-signature"],
            format!("{} {}", standard(&w.secret), standard("whsec_b2xkc2VjcmV0")).as_str()
        );
        // Another secret and another body do not verify.
        let reference = standardwebhooks::Webhook::new("whsec_bmV3c2VjcmV0").unwrap();
        assert!(reference.verify(b"{}", &h).is_err());
        let reference = standardwebhooks::Webhook::new(&w.secret).unwrap();
        assert!(reference.verify(b"{ }", &h).is_err());
    }

    #[test]
    fn success_and_gone_are_classified() {
        let r = |s| AttemptResult {
            status: Some(s),
            body: None,
            error: None,
            retry_after: None,
            duration: Duration::ZERO,
        };
        assert!(r(204).is_success());
        assert!(!r(301).is_success());
        assert!(r(410).is_gone());
    }
}
