//! Event-type patterns (README, Routing and payloads): a webhook's `event_type` is an exact type,
//! `*` (every event of its tenant but the dispatcher's own `beema/` events) or `<prefix>/*` (every
//! type starting with `<prefix>/`). Matching stays an index lookup: an event type is looked up
//! under a handful of route keys ([`route_keys`]), one per `/` in it, never by scanning the
//! webhooks.

/// Event types the dispatcher publishes about itself; `*` does not get them.
pub const OPS_PREFIX: &str = "beema/";

fn name_chars(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b))
}

/// An exact event type: 1–256 characters of `[A-Za-z0-9_.:/-]`.
pub fn exact(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 256 || !name_chars(v) {
        return Err("must be 1–256 characters of A-Z a-z 0-9 _ . : / -".into());
    }
    Ok(())
}

/// A webhook's `event_type`: `*`, `<prefix>/*` with a prefix of 1–254 characters of
/// `[A-Za-z0-9_.:/-]`, or an exact type.
pub fn event_type(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    if let Some(prefix) = v.strip_suffix("/*") {
        if !prefix.is_empty() && prefix.len() <= 254 && name_chars(prefix) {
            return Ok(());
        }
    }
    exact(v).map_err(|_| {
        "must be `*`, `<prefix>/*` or 1–256 characters of A-Z a-z 0-9 _ . : / - \
         (a prefix is 1–254 of those characters)"
            .to_string()
    })
}

/// The route keys an event of type `ty` is found under: the type itself, `<prefix>/*` for every
/// `/` in it, and `*` unless it is an ops event. Each key appears once.
pub fn route_keys(ty: &str) -> Vec<String> {
    let mut keys = vec![ty.to_string()];
    for (i, _) in ty.match_indices('/') {
        let key = format!("{}*", &ty[..=i]);
        if key != ty {
            keys.push(key);
        }
    }
    if ty != "*" && !ty.starts_with(OPS_PREFIX) {
        keys.push("*".to_string());
    }
    keys
}

/// True when a webhook whose `event_type` is `pattern` gets events of type `ty`.
pub fn matches(pattern: &str, ty: &str) -> bool {
    match pattern {
        "*" => !ty.starts_with(OPS_PREFIX),
        p => match p.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => ty.starts_with(prefix),
            _ => p == ty,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_non_patterns() {
        let long_prefix = format!("{}/*", "a".repeat(254));
        let too_long = format!("{}/*", "a".repeat(255));
        let table: &[(&str, bool)] = &[
            ("*", true),
            ("claim/*", true),
            ("claim/reserve/*", true),
            ("claim/opened", true),
            ("beema/*", true),
            (long_prefix.as_str(), true),
            (too_long.as_str(), false),
            ("cl*im", false),
            ("claim*", false),
            ("*/opened", false),
            ("claim/*/x", false),
            ("claim/**", false),
            ("/*", false),
            ("**", false),
            ("", false),
            ("claim opened", false),
        ];
        for (v, ok) in table {
            assert_eq!(event_type(v).is_ok(), *ok, "{v}");
        }
    }

    #[test]
    fn route_keys_are_the_type_its_prefixes_and_star() {
        let table: &[(&str, &[&str])] = &[
            ("claim/opened", &["claim/opened", "claim/*", "*"]),
            (
                "claim/reserve/changed",
                &["claim/reserve/changed", "claim/*", "claim/reserve/*", "*"],
            ),
            ("plain", &["plain", "*"]),
            (
                "beema/delivery.failed",
                &["beema/delivery.failed", "beema/*"],
            ),
            ("claim/*", &["claim/*", "*"]),
            ("*", &["*"]),
        ];
        for (ty, keys) in table {
            assert_eq!(route_keys(ty), *keys, "{ty}");
        }
    }

    #[test]
    fn matching_by_pattern() {
        let table: &[(&str, &str, bool)] = &[
            ("claim/*", "claim/opened", true),
            ("claim/*", "claim/reserve/changed", true),
            ("claim/*", "claims/opened", false),
            ("claim/*", "claim", false),
            ("claim/reserve/*", "claim/opened", false),
            ("*", "policy/bound", true),
            ("*", "beema/circuit.opened", false),
            ("beema/*", "beema/circuit.opened", true),
            ("claim/opened", "claim/opened", true),
            ("claim/opened", "claim/settled", false),
        ];
        for (p, ty, want) in table {
            assert_eq!(matches(p, ty), *want, "{p} {ty}");
            // The index agrees with the predicate.
            assert_eq!(
                route_keys(ty).iter().any(|k| k == p),
                *want,
                "keys {p} {ty}"
            );
        }
    }
}
