//! Webhook secrets at rest: sealed with XChaCha20-Poly1305 when `BEEMA_SECRET_KEY` is set.
//!
//! A sealed secret is stored as `enc:v1:` + base64(nonce ‖ ciphertext); a plain one as written, so
//! a database created without a key keeps working after one is set (new writes get sealed).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// Errors opening a stored secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret is sealed but no key is configured.
    #[error("webhook secret is encrypted but BEEMA_SECRET_KEY is not set")]
    NoKey,
    /// Wrong key or damaged value.
    #[error("webhook secret cannot be decrypted with BEEMA_SECRET_KEY")]
    Undecryptable,
}

/// Seals and opens webhook secrets.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: Option<XChaCha20Poly1305>,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCipher")
            .field("enabled", &self.cipher.is_some())
            .finish()
    }
}

impl SecretCipher {
    /// A cipher keyed by SHA-256 of a domain tag and the configured key; a no-op without a key.
    pub fn new(key: Option<&str>) -> Self {
        let cipher = key.map(|k| {
            let digest = Sha256::new()
                .chain_update(b"beema-webhooks/secret-at-rest/v1\0")
                .chain_update(k)
                .finalize();
            XChaCha20Poly1305::new_from_slice(&digest)
                .expect("SHA-256 output is a valid 32-byte key")
        });
        Self { cipher }
    }

    /// The value to store for a secret.
    pub fn seal(&self, secret: &str) -> String {
        let Some(cipher) = &self.cipher else {
            return secret.to_string();
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("OS random source");
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), secret.as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// The secret behind a stored value.
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(body) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let cipher = self.cipher.as_ref().ok_or(SecretError::NoKey)?;
        let raw = B64.decode(body).map_err(|_| SecretError::Undecryptable)?;
        if raw.len() <= NONCE_LEN {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_hides_the_secret() {
        let c = SecretCipher::new(Some("k1"));
        let sealed = c.seal("whsec_abc");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(c.open(&sealed).unwrap(), "whsec_abc");
        assert_ne!(c.seal("whsec_abc"), sealed, "a fresh nonce every time");
    }

    #[test]
    fn wrong_or_missing_key_fails() {
        let sealed = SecretCipher::new(Some("k1")).seal("s");
        assert!(matches!(
            SecretCipher::new(Some("k2")).open(&sealed),
            Err(SecretError::Undecryptable)
        ));
        assert!(matches!(
            SecretCipher::new(None).open(&sealed),
            Err(SecretError::NoKey)
        ));
    }

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(SecretCipher::new(None).seal("s"), "s");
        assert_eq!(SecretCipher::new(Some("k")).open("plain").unwrap(), "plain");
    }
}
