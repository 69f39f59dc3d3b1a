//! Fault injection for the test suite (hidden from the docs): proves that a panic inside a
//! webhook actor or the intake task is survived, and holds a registry reload at a chosen point.
//!
//! The seam stays in the shipped binary, behind one relaxed atomic load per check: a cargo feature
//! would compile it out, but then the binary under test would not be the one we ship, and a
//! `cargo test` without flags would need a self dev-dependency to turn it on. One relaxed load of a
//! flag that is never set in production costs less than the branch around it; the mutex is only
//! taken once a test has armed a fault.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once any actor fault was injected: the fast path of [`take_injected_panic`].
static ARMED: AtomicBool = AtomicBool::new(false);
/// Webhook ids or URLs whose actor panics on its next attempt.
static PANIC_ON_NEXT_ATTEMPT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Tenants whose next published group makes the intake task panic.
static INTAKE_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Set once an intake fault was injected: the fast path of [`take_intake_panic`].
static INTAKE_ARMED: AtomicBool = AtomicBool::new(false);
/// While set, a crashed intake task waits before it is restarted (so that a test sees it down).
static HOLD_INTAKE_RESTART: AtomicBool = AtomicBool::new(false);

fn arm(key: String) {
    let mut g = PANIC_ON_NEXT_ATTEMPT
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashSet::new).insert(key);
    ARMED.store(true, Ordering::Release);
}

/// The actor of `webhook_id` panics when it next starts an attempt.
pub fn inject_panic(webhook_id: i64) {
    arm(format!("id:{webhook_id}"));
}

/// The actor of the webhook whose URL is `url` panics when it next starts an attempt (a URL is
/// unique to a test's receiver, where ids repeat across the tests' databases).
pub fn inject_panic_at(url: &str) {
    arm(format!("url:{url}"));
}

/// True (once) when a panic was injected for this webhook; one relaxed load when none ever was.
pub fn take_injected_panic(webhook_id: i64, url: &str) -> bool {
    if !ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut g = PANIC_ON_NEXT_ATTEMPT
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    g.as_mut().is_some_and(|set| {
        set.remove(&format!("id:{webhook_id}")) || set.remove(&format!("url:{url}"))
    })
}

/// The intake task panics when it next takes a group holding an event of `tenant` (keyed by tenant:
/// tests share the process, and a test's tenant is its own).
pub fn inject_intake_panic(tenant: &str) {
    let mut g = INTAKE_PANICS.lock().unwrap_or_else(|p| p.into_inner());
    g.push(tenant.to_string());
    INTAKE_ARMED.store(true, Ordering::Release);
}

/// True (once per injection) when the intake task should panic on a group with these tenants.
pub fn take_intake_panic<'a>(mut tenants: impl Iterator<Item = &'a str>) -> bool {
    if !INTAKE_ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut g = INTAKE_PANICS.lock().unwrap_or_else(|p| p.into_inner());
    match tenants.find_map(|t| g.iter().position(|x| x == t)) {
        Some(i) => {
            g.remove(i);
            true
        }
        None => false,
    }
}

/// Holds (true) or releases (false) the restart of a crashed intake task.
pub fn hold_intake_restart(hold: bool) {
    HOLD_INTAKE_RESTART.store(hold, Ordering::Release);
}

/// True while a test holds the intake's restart.
pub fn intake_restart_held() -> bool {
    HOLD_INTAKE_RESTART.load(Ordering::Acquire)
}

/// Tenants whose next replay fails after committing this many pages.
static REPLAY_FAULTS: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
/// Set once a replay fault was injected: the fast path of [`replay_fault`].
static REPLAY_ARMED: AtomicBool = AtomicBool::new(false);

/// The next replay of a webhook of `tenant` fails (as a database error would) once it has
/// committed `pages` pages.
pub fn inject_replay_failure(tenant: &str, pages: usize) {
    let mut g = REPLAY_FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    g.push((tenant.to_string(), pages));
    REPLAY_ARMED.store(true, Ordering::Release);
}

/// Taken (once) by a replay of `tenant` as it starts: after how many pages it is to fail.
pub fn replay_fault(tenant: &str) -> Option<usize> {
    if !REPLAY_ARMED.load(Ordering::Relaxed) {
        return None;
    }
    let mut g = REPLAY_FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let i = g.iter().position(|(t, _)| t == tenant)?;
    Some(g.remove(i).1)
}

/// Where a node's registry reload (the cluster listener's, at start and after every reconnect) can
/// be held, so that a test can change webhooks through the API in the middle of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadPoint {
    /// The snapshot of every webhook has been read, and is not applied yet.
    SnapshotRead,
    /// The snapshot has been applied; the notifications that came meanwhile are not handled yet.
    Applied,
}

/// Held points per node id, and the points each node has reached.
static RELOAD_HOLDS: Mutex<Vec<(String, ReloadPoint)>> = Mutex::new(Vec::new());
static RELOAD_REACHED: Mutex<Vec<(String, ReloadPoint)>> = Mutex::new(Vec::new());
/// Set once a reload was held: the fast path of [`reload_point`].
static RELOAD_ARMED: AtomicBool = AtomicBool::new(false);

/// Holds (true) or releases (false) the reloads of node `node` at `point`.
pub fn hold_reload(node: &str, point: ReloadPoint, hold: bool) {
    let mut g = RELOAD_HOLDS.lock().unwrap_or_else(|p| p.into_inner());
    g.retain(|(n, p)| !(n == node && *p == point));
    if hold {
        g.push((node.to_string(), point));
        RELOAD_ARMED.store(true, Ordering::Release);
    }
}

/// True once a reload of node `node` has reached `point` (held there or not).
pub fn reload_reached(node: &str, point: ReloadPoint) -> bool {
    let g = RELOAD_REACHED.lock().unwrap_or_else(|p| p.into_inner());
    g.iter().any(|(n, p)| n == node && *p == point)
}

/// Called by a reload of node `node` at `point`: returns at once unless a test holds it there.
pub async fn reload_point(node: &str, point: ReloadPoint) {
    if !RELOAD_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let held = || {
        let g = RELOAD_HOLDS.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().any(|(n, p)| n == node && *p == point)
    };
    if !held() {
        return;
    }
    RELOAD_REACHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((node.to_string(), point));
    while held() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarmed_check_takes_no_lock() {
        // Held here: a check that took the lock would deadlock on this very thread.
        let _held = PANIC_ON_NEXT_ATTEMPT.lock().expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(take_injected_panic(1, "http://x/"));
        });
        let answer = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(answer, Ok(false), "the check waited for the lock");
    }
}
