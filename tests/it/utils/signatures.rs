//! Signature checks for what receivers got, by implementations independent of the server:
//! the `standardwebhooks` crate for `webhook-signature`, a plain HMAC for `X-Beema-Signature`.

use super::Received;

/// The Standard Webhooks verifier for `secret`, keyed as the README says ("What a receiver gets"): a `whsec_<base64>`
/// secret is decoded by the crate, any other secret is used as its bytes.
pub fn standard_webhook(secret: &str) -> standardwebhooks::Webhook {
    secret
        .strip_prefix("whsec_")
        .and_then(|_| standardwebhooks::Webhook::new(secret).ok())
        .unwrap_or_else(|| {
            standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec()).expect("any key")
        })
}

/// The request's `webhook-*` headers as the `standardwebhooks` crate takes them.
fn standard_headers(got: &Received) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = got
            .header(name)
            .unwrap_or_else(|| panic!("the delivery has no {name} header"));
        headers.insert(name, value.parse().expect("a header value"));
    }
    headers
}

/// Whether one of the request's `webhook-signature` entries verifies with `secret`.
pub fn standard_verifies(secret: &str, got: &Received) -> bool {
    standard_webhook(secret)
        .verify(&got.body, &standard_headers(got))
        .is_ok()
}

/// The `v1,` signature `secret` gives the request (its id, timestamp and body).
pub fn standard_signature(secret: &str, got: &Received) -> String {
    let id = got.header("webhook-id").expect("webhook-id header");
    let ts = got
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("numeric webhook-timestamp");
    standard_webhook(secret)
        .sign(id, ts, &got.body)
        .expect("a UTF-8 body")
}

/// `X-Beema-Signature`: `sha256=` and the hex HMAC-SHA256 of the body keyed by the secret as written.
pub fn beema_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
