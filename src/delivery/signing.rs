//! Webhook payload signing: the legacy Beema `sha256=` scheme and the Standard Webhooks `v1,`
//! scheme, plus secret generation. Verifying is the receiver's job (`examples/webhook_receiver.rs`);
//! the tests check what is signed here with the independent `standardwebhooks` crate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix used by Standard Webhooks for base64-encoded secrets.
const WHSEC_PREFIX: &str = "whsec_";

/// An HMAC-SHA256 key set up once for many messages: each signature clones the keyed state, which
/// skips the key setup (two SHA-256 blocks) and, for a `whsec_` secret, its base64 decoding.
#[derive(Clone)]
pub struct SigningKey(Option<HmacSha256>);

impl SigningKey {
    /// Keyed by `key` exactly.
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length, so this is never None; None would yield an empty,
        // non-matching MAC rather than a panic inside a delivery worker.
        Self(<HmacSha256 as KeyInit>::new_from_slice(key).ok())
    }

    /// The key of the legacy Beema scheme: the secret string exactly as written (including any
    /// `whsec_` prefix), because that is what existing Beema receivers were told to use.
    pub fn beema(secret: &str) -> Self {
        Self::new(secret.as_bytes())
    }

    /// The key of the Standard Webhooks scheme: [`secret_key_bytes`].
    pub fn standard(secret: &str) -> Self {
        Self::new(&secret_key_bytes(secret))
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self.0.clone() {
            Some(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            None => Vec::new(),
        }
    }

    /// The legacy Beema signature header value: `sha256=<lowercase hex>` of the body; `self`
    /// from [`Self::beema`].
    pub fn beema_signature(&self, body: &[u8]) -> String {
        format!("sha256={}", hex::encode(self.mac(&[body])))
    }

    /// One Standard Webhooks signature, `v1,<base64(HMAC-SHA256)>` over `"{msg_id}.{timestamp}."`
    /// followed by the body; `self` from [`Self::standard`].
    pub fn standard_signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let prefix = format!("{msg_id}.{timestamp}.");
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(&[prefix.as_bytes(), body]))
        )
    }
}

/// Returns the raw key bytes for a secret.
///
/// Secrets of the form `whsec_<base64>` (Standard Webhooks) are base64-decoded; any other
/// secret, or a `whsec_` secret whose remainder is not valid standard base64, is used as
/// its UTF-8 bytes so that operator-supplied plain secrets keep working.
pub fn secret_key_bytes(secret: &str) -> Vec<u8> {
    if let Some(rest) = secret.strip_prefix(WHSEC_PREFIX) {
        if let Ok(bytes) = STANDARD.decode(rest) {
            return bytes;
        }
    }
    secret.as_bytes().to_vec()
}

/// Computes the legacy Beema signature header value: `sha256=<lowercase hex>` (see
/// [`SigningKey::beema`] for its key).
pub fn beema_signature(secret: &str, body: &[u8]) -> String {
    SigningKey::beema(secret).beema_signature(body)
}

/// Computes one Standard Webhooks signature: `v1,<base64(HMAC-SHA256)>` over
/// `"{msg_id}.{timestamp}."` followed by the body bytes, keyed by [`secret_key_bytes`].
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    SigningKey::standard(secret).standard_signature(msg_id, timestamp, body)
}

/// Generates a fresh secret: `whsec_` followed by standard padded base64 of 32 bytes
/// from the operating system CSPRNG.
///
/// # Panics
///
/// Panics if the OS random source is unavailable. A secret from a weaker source would
/// silently compromise every signature made with it, so failing loudly is the only safe
/// option; on supported platforms this does not happen after boot.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("OS random source");
    format!("{WHSEC_PREFIX}{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Standard Webhooks reference vector (also reproduced with python3 hmac/hashlib).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn secret_key_bytes_decodes_whsec() {
        let key = secret_key_bytes("whsec_aGVsbG8=");
        assert_eq!(key, b"hello");
    }

    #[test]
    fn secret_key_bytes_plain_and_invalid_base64() {
        assert_eq!(secret_key_bytes("mysecret"), b"mysecret");
        // Not valid base64 after the prefix: fall back to the whole string.
        assert_eq!(secret_key_bytes("whsec_!!!"), b"whsec_!!!");
        // Prefix must be exact (case-sensitive).
        assert_eq!(secret_key_bytes("WHSEC_aGVsbG8="), b"WHSEC_aGVsbG8=");
        assert_eq!(secret_key_bytes(""), b"");
        assert_eq!(secret_key_bytes("whsec_"), b"");
    }

    #[test]
    fn beema_signature_known_answer() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'mysecret',b'hello world',hashlib.sha256).hexdigest())"
        assert_eq!(
            beema_signature("mysecret", b"hello world"),
            "sha256=5dc9f8d0806f528337ec17cfa299ccac8b5b5eedf6e8a8926aabeccc0233870d"
        );
    }

    #[test]
    fn beema_signature_uses_whsec_string_as_written() {
        assert_eq!(
            beema_signature(SPEC_SECRET, SPEC_BODY),
            "sha256=80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"
        );
    }

    #[test]
    fn standard_signature_spec_vector() {
        assert_eq!(
            standard_signature(SPEC_SECRET, SPEC_MSG_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIG
        );
    }

    #[test]
    fn standard_signature_plain_secret_known_answer() {
        assert_eq!(
            standard_signature("plainsecret", "msg_1", 1_700_000_000, b"body"),
            "v1,tZAsnHDK8Bx4MF5EduW+dnSp9Ns4DLO6FaZgqzOp7fY="
        );
    }

    #[test]
    fn generate_secret_shape_and_uniqueness() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_key_bytes(&a).len(), 32);
        // 32 bytes -> 44 chars of padded base64.
        assert_eq!(a.len(), 6 + 44);
    }

    /// The `standardwebhooks` crate, keyed as the dispatcher keys a secret.
    fn reference(secret: &str) -> standardwebhooks::Webhook {
        standardwebhooks::Webhook::from_bytes(secret_key_bytes(secret)).unwrap()
    }

    #[test]
    fn the_reference_crate_agrees_with_every_signature() {
        for secret in [SPEC_SECRET, "plainsecret", "whsec_b2xkc2VjcmV0"] {
            assert_eq!(
                standard_signature(secret, SPEC_MSG_ID, SPEC_TS, SPEC_BODY),
                reference(secret)
                    .sign(SPEC_MSG_ID, SPEC_TS, SPEC_BODY)
                    .unwrap(),
                "{secret}"
            );
        }
        // A whsec_ secret is the base64 key the reference crate decodes itself.
        assert_eq!(
            standardwebhooks::Webhook::new(SPEC_SECRET)
                .unwrap()
                .sign(SPEC_MSG_ID, SPEC_TS, SPEC_BODY)
                .unwrap(),
            SPEC_SIG
        );
    }
}
