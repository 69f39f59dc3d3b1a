//! Fault injection for the test suite (hidden from the docs): proves that a panic inside a
//! webhook actor is survived. Costs one uncontended lock per attempt when unused.

use std::collections::HashSet;
use std::sync::Mutex;

static PANIC_ON_NEXT_ATTEMPT: Mutex<Option<HashSet<i64>>> = Mutex::new(None);

/// The actor of `webhook_id` panics when it next starts an attempt.
pub fn inject_panic(webhook_id: i64) {
    let mut g = PANIC_ON_NEXT_ATTEMPT
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashSet::new).insert(webhook_id);
}

/// True (once) when a panic was injected for `webhook_id`.
pub fn take_injected_panic(webhook_id: i64) -> bool {
    let mut g = PANIC_ON_NEXT_ATTEMPT
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    g.as_mut().is_some_and(|set| set.remove(&webhook_id))
}
