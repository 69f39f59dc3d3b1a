//! HTTP clients shared by the webhooks of one host: one connection pool per `scheme://host:port`,
//! held by the actors that send there and dropped when the last of them lets go.
//!
//! Every client is built alike (the same URL guard, TLS settings and redirect policy), so sharing
//! one changes nothing a receiver sees; what stays per webhook is its timeout (set on each request)
//! and its cap on attempts in flight (its actor's). A slow receiver cannot starve another webhook
//! of connections: a pool opens a new connection whenever none is idle, it never makes a request
//! wait for one. With 10,000 webhooks on one receiver, one pool replaces 10,000.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::delivery::sender;
use crate::delivery::ssrf::TargetPolicy;

/// Clients by origin; cheap to share.
pub struct ClientPools {
    policy: Arc<TargetPolicy>,
    tls: Arc<rustls::ClientConfig>,
    by_origin: Mutex<HashMap<String, Weak<reqwest::Client>>>,
}

impl ClientPools {
    /// Pools that build their clients with `policy` and `tls`.
    pub fn new(policy: Arc<TargetPolicy>, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            policy,
            tls,
            by_origin: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `url`'s origin, built when no webhook holds one.
    pub fn for_url(&self, url: &str) -> reqwest::Result<Arc<reqwest::Client>> {
        let key = origin(url);
        let mut map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(client);
        }
        // Entries of origins nobody uses any more go when a new one comes.
        map.retain(|_, w| w.strong_count() > 0);
        let client = Arc::new(sender::build_client(self.policy.clone(), &self.tls)?);
        map.insert(key, Arc::downgrade(&client));
        Ok(client)
    }

    /// Origins with a live client (for tests and health of the pool itself).
    pub fn live(&self) -> usize {
        let map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// `scheme://host:port` of a URL, lowercased; the URL itself when it does not parse (its request
/// then fails on its own).
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default().to_ascii_lowercase(),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> ClientPools {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = Arc::new(sender::tls_config().expect("tls"));
        ClientPools::new(Arc::new(TargetPolicy::default()), tls)
    }

    #[test]
    fn webhooks_of_one_origin_share_a_client_until_the_last_lets_go() {
        let p = pools();
        let a = p.for_url("http://Receiver.example:8080/a").unwrap();
        let b = p.for_url("http://receiver.example:8080/b?x=1").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = p.for_url("https://receiver.example/a").unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(p.live(), 2);
        drop((a, b));
        assert_eq!(p.live(), 1);
        let again = p.for_url("http://receiver.example:8080/a").unwrap();
        assert_eq!(p.live(), 2);
        drop((again, other));
        assert_eq!(p.live(), 0);
    }

    #[test]
    fn origins_name_scheme_host_and_port() {
        assert_eq!(origin("https://a.example/x"), "https://a.example:443");
        assert_eq!(origin("http://A.example:81"), "http://a.example:81");
        assert_eq!(origin("not a url"), "not a url");
    }
}
