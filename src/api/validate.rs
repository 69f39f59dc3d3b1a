//! Field rules of the webhook API (README, API), as plain functions returning the message.

/// 1–200 characters.
pub fn webhook_name(v: &str) -> Result<(), String> {
    let n = v.chars().count();
    // NUL cannot be stored in PostgreSQL text: refused on every backend alike.
    if n == 0 || n > 200 || v.trim().is_empty() || v.contains('\0') {
        return Err("must be 1–200 characters without NUL".into());
    }
    Ok(())
}

/// 1–128 characters of `[A-Za-z0-9_.:-]`.
pub fn tenant_id(v: &str) -> Result<(), String> {
    if v.is_empty()
        || v.len() > 128
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err("must be 1–128 characters of A-Z a-z 0-9 _ . : -".into());
    }
    Ok(())
}

/// A webhook's event type: `*`, `<prefix>/*` or 1–256 characters of `[A-Za-z0-9_.:/-]`.
pub fn event_type(v: &str) -> Result<(), String> {
    crate::routing::pattern::event_type(v)
}

/// An event's name: 1–256 characters of `[A-Za-z0-9_.:/-]` (no wildcard).
pub fn event_name(v: &str) -> Result<(), String> {
    if v.is_empty()
        || v.len() > 256
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b))
    {
        return Err("must be `*` or 1–256 characters of A-Z a-z 0-9 _ . : / -".into());
    }
    Ok(())
}

/// A custom header: a valid name that does not collide with the protocol's own, and a valid value.
pub fn header(name: &str, value: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if [
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
    ]
    .contains(&lower.as_str())
        || lower.starts_with("x-beema-")
        || lower.starts_with("webhook-")
    {
        return Err(format!(
            "`{name}` is set by the dispatcher and cannot be overridden"
        ));
    }
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("`{name}` is not a valid header name"));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err("header values must be visible ASCII text".into());
    }
    Ok(())
}

/// Checks an integer lies in `lo..=hi`.
pub fn range(v: i64, lo: i64, hi: i64) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("must be between {lo} and {hi}"));
    }
    Ok(())
}

/// A caller-supplied secret: 8–1024 visible characters.
pub fn secret(v: &str) -> Result<(), String> {
    let n = v.chars().count();
    if !(8..=1024).contains(&n) || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be 8–1024 characters without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(webhook_name("Slack").is_ok());
        assert!(webhook_name("").is_err());
        assert!(webhook_name(&"x".repeat(201)).is_err());
        assert!(tenant_id("tenant-1:eu.a_b").is_ok());
        assert!(tenant_id("tenant 1").is_err());
        assert!(tenant_id(&"t".repeat(129)).is_err());
    }

    #[test]
    fn event_types() {
        assert!(event_type("*").is_ok());
        assert!(event_type("claim/opened").is_ok());
        assert!(event_type("claim opened").is_err());
        assert!(event_name("*").is_err());
        assert!(event_type(&"a".repeat(257)).is_err());
    }

    #[test]
    fn headers() {
        assert!(header("Authorization", "Bearer t").is_ok());
        for bad in [
            "Host",
            "content-length",
            "Content-Type",
            "X-Beema-Signature",
            "webhook-id",
            "bad name",
        ] {
            assert!(header(bad, "v").is_err(), "{bad}");
        }
        assert!(header("X-Ok", "line\nbreak").is_err());
    }

    #[test]
    fn ranges_and_secrets() {
        assert!(range(1, 1, 50).is_ok());
        assert!(range(51, 1, 50).is_err());
        assert!(secret("whsec_abcdefgh").is_ok());
        assert!(secret("short").is_err());
        assert!(secret("has space in it").is_err());
    }
}
