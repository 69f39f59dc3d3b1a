//! HTTP connections shared by the webhooks that send to one receiver origin.
//!
//! Each origin (scheme, host, port) gets one HTTP client per worker thread, and so one connection
//! pool, used by every webhook actor of that thread sending there: 10,000 webhooks on one receiver
//! keep a few hundred warm connections between them instead of opening 10,000. A [`FairGate`] caps
//! the requests in flight to the origin (`BEEMA_HOST_CONNECTIONS` per worker thread), and so the
//! connections it holds, handing freed permits to the waiting webhook that holds the fewest. What
//! stays each webhook's own: its timeout, the URL guard's verdict on its URL, its own cap on
//! requests in flight, its rate limit and breaker.
//!
//! Clients are per thread because a connection's task runs on the thread that opened it: sharing
//! one across the actors' threads would hand every response across threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::ThreadId;

use super::fair_gate::{FairGate, GatePermit, Holder};
use super::sender;
use super::ssrf::TargetPolicy;

/// The client and the gate of one origin on one thread.
#[derive(Debug)]
pub struct HostPool {
    client: reqwest::Client,
    gate: Arc<FairGate>,
}

impl HostPool {
    /// The shared client (cheap to clone: a handle on the same pool).
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Waits for one of the origin's request slots for `webhook`.
    pub async fn slot(&self, webhook: Holder) -> GatePermit {
        self.gate.acquire(webhook).await
    }
}

/// Every live [`HostPool`]; a pool closes (with its connections) when no actor holds it.
#[derive(Debug)]
pub struct HostPools {
    per_host: usize,
    policy: Arc<TargetPolicy>,
    tls: Arc<rustls::ClientConfig>,
    pools: Mutex<HashMap<(ThreadId, String), Weak<HostPool>>>,
}

impl HostPools {
    /// Pools whose clients guard targets by `policy`, with at most `per_host` requests in flight
    /// to one origin from one thread.
    pub fn new(per_host: usize, policy: Arc<TargetPolicy>, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            per_host: per_host.max(1),
            policy,
            tls,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool for `url`'s origin on the calling thread, made on first use.
    pub fn pool_for(&self, url: &url::Url) -> reqwest::Result<Arc<HostPool>> {
        let key = (
            std::thread::current().id(),
            url.origin().ascii_serialization(),
        );
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
            return Ok(pool);
        }
        let pool = Arc::new(HostPool {
            client: sender::build_client(self.policy.clone(), &self.tls, self.per_host)?,
            gate: FairGate::new(self.per_host),
        });
        // Forget closed pools now and then, so the map stays as small as the live ones.
        if pools.len() >= 64 && pools.len().is_power_of_two() {
            pools.retain(|_, p| p.strong_count() > 0);
        }
        pools.insert(key, Arc::downgrade(&pool));
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> HostPools {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = Arc::new(sender::tls_config().unwrap());
        HostPools::new(4, Arc::new(TargetPolicy::default()), tls)
    }

    #[test]
    fn one_pool_per_origin_while_it_is_held() {
        let p = pools();
        let u = |s: &str| url::Url::parse(s).unwrap();
        let a = p.pool_for(&u("https://a.example/x")).unwrap();
        let a2 = p.pool_for(&u("https://a.example:443/y?z")).unwrap();
        let b = p.pool_for(&u("https://a.example:8443/x")).unwrap();
        let c = p.pool_for(&u("http://a.example/x")).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        // Released by every holder, the pool closes; the next use makes a new one.
        let weak = Arc::downgrade(&a);
        drop((a, a2));
        assert!(weak.upgrade().is_none());
        let _again = p.pool_for(&u("https://a.example/")).unwrap();
    }

    #[test]
    fn each_thread_has_its_own_pool() {
        let p = Arc::new(pools());
        let u = url::Url::parse("https://a.example/").unwrap();
        let here = p.pool_for(&u).unwrap();
        let there = {
            let (p, u) = (p.clone(), u.clone());
            std::thread::spawn(move || p.pool_for(&u).unwrap())
                .join()
                .unwrap()
        };
        assert!(!Arc::ptr_eq(&here, &there));
    }
}
