//! A counting gate shared by the webhooks that send to one receiver host, handing its permits out
//! fairly: when permits are short, the next one goes to the waiting webhook that holds the fewest
//! (ties: the one waiting longest), so a webhook whose receiver is slow can pile up requests
//! without starving another webhook of the same host.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Who holds or waits for permits (a webhook id).
pub type Holder = i64;

/// A fixed number of permits, shared fairly between holders.
#[derive(Debug)]
pub struct FairGate {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_use: usize,
    /// Permits each holder has now (absent: none).
    held: HashMap<Holder, usize>,
    /// Each waiting holder's requests, oldest first.
    queues: HashMap<Holder, VecDeque<oneshot::Sender<GatePermit>>>,
    /// The waiting holders by (permits held, turn, holder): the first is served next.
    order: BTreeSet<(usize, u64, Holder)>,
    /// Each waiting holder's current key in `order`.
    keys: HashMap<Holder, (usize, u64)>,
    /// Turns handed out: a holder that waits again queues behind the others with as many permits.
    turn: u64,
}

/// One permit of a [`FairGate`]; handed back when dropped.
#[derive(Debug)]
pub struct GatePermit {
    gate: Arc<FairGate>,
    holder: Holder,
    armed: bool,
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        if self.armed {
            self.gate.release(self.holder);
        }
    }
}

impl FairGate {
    /// A gate of `capacity` permits (at least one).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Permits in use now.
    pub fn in_use(&self) -> usize {
        self.lock().in_use
    }

    /// Waits for a permit for `holder`. Dropping the future gives up the place in the queue (a
    /// permit granted meanwhile is handed back).
    pub async fn acquire(self: &Arc<Self>, holder: Holder) -> GatePermit {
        loop {
            let rx = {
                let mut s = self.lock();
                if s.in_use < self.capacity && s.queues.is_empty() {
                    s.take(holder);
                    return self.permit(holder);
                }
                let (tx, rx) = oneshot::channel();
                s.enqueue(holder, tx);
                rx
            };
            // A sender is only dropped unsent when its receiver is gone, so this always holds;
            // should it not, queue again rather than send without a permit.
            if let Ok(permit) = rx.await {
                return permit;
            }
        }
    }

    fn permit(self: &Arc<Self>, holder: Holder) -> GatePermit {
        GatePermit {
            gate: self.clone(),
            holder,
            armed: true,
        }
    }

    fn release(self: &Arc<Self>, holder: Holder) {
        let mut s = self.lock();
        s.give_back(holder);
        // Hand freed permits to the fairest waiters whose requests are still wanted.
        while s.in_use < self.capacity {
            let Some(next) = s.next_waiter() else { break };
            let Some(tx) = s.pop_request(next) else {
                continue;
            };
            s.take(next);
            if let Err(mut unwanted) = tx.send(self.permit(next)) {
                // The request was dropped meanwhile: undo, without re-entering the lock.
                unwanted.armed = false;
                s.give_back(next);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across every early exit, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn take(&mut self, holder: Holder) {
        self.in_use += 1;
        *self.held.entry(holder).or_default() += 1;
        self.reorder(holder);
    }

    fn give_back(&mut self, holder: Holder) {
        self.in_use = self.in_use.saturating_sub(1);
        if let Some(n) = self.held.get_mut(&holder) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&holder);
            }
        }
        self.reorder(holder);
    }

    fn enqueue(&mut self, holder: Holder, tx: oneshot::Sender<GatePermit>) {
        let queue = self.queues.entry(holder).or_default();
        queue.push_back(tx);
        if queue.len() == 1 {
            self.turn += 1;
            let key = (self.held.get(&holder).copied().unwrap_or(0), self.turn);
            self.keys.insert(holder, key);
            self.order.insert((key.0, key.1, holder));
        }
    }

    /// The waiting holder served next.
    fn next_waiter(&self) -> Option<Holder> {
        self.order.first().map(|&(_, _, h)| h)
    }

    /// The holder's oldest request; a holder left without requests stops waiting.
    fn pop_request(&mut self, holder: Holder) -> Option<oneshot::Sender<GatePermit>> {
        let tx = self.queues.get_mut(&holder).and_then(VecDeque::pop_front);
        if self.queues.get(&holder).is_none_or(VecDeque::is_empty) {
            self.queues.remove(&holder);
            if let Some((held, turn)) = self.keys.remove(&holder) {
                self.order.remove(&(held, turn, holder));
            }
        } else {
            // Served once: its next request waits its turn behind holders with as many permits.
            self.turn += 1;
            let turn = self.turn;
            if let Some(key) = self.keys.get_mut(&holder) {
                self.order.remove(&(key.0, key.1, holder));
                key.1 = turn;
                self.order.insert((key.0, key.1, holder));
            }
        }
        tx
    }

    /// Keeps a waiting holder's place in `order` in step with the permits it holds.
    fn reorder(&mut self, holder: Holder) {
        let held = self.held.get(&holder).copied().unwrap_or(0);
        if let Some(key) = self.keys.get_mut(&holder) {
            if key.0 != held {
                self.order.remove(&(key.0, key.1, holder));
                key.0 = held;
                self.order.insert((key.0, key.1, holder));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// Polls `f` once: Some(permit) if it was granted at once.
    fn now<F: std::future::Future<Output = GatePermit>>(f: F) -> Option<GatePermit> {
        f.now_or_never()
    }

    #[tokio::test]
    async fn permits_are_granted_up_to_the_capacity_and_returned_on_drop() {
        let gate = FairGate::new(2);
        let a = now(gate.acquire(1)).expect("first");
        let _b = now(gate.acquire(1)).expect("second");
        assert_eq!(gate.in_use(), 2);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(2).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let c = waiting.await.unwrap();
        assert_eq!(c.holder, 2);
        assert_eq!(gate.in_use(), 2);
        drop(c);
        assert_eq!(gate.in_use(), 1);
    }

    #[tokio::test]
    async fn a_freed_permit_goes_to_the_waiter_holding_fewest() {
        let gate = FairGate::new(3);
        // Holder 1 (slow receiver) holds all three permits and queues three more requests.
        let mut slow: Vec<GatePermit> = (0..3).map(|_| now(gate.acquire(1)).unwrap()).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for h in [1, 1, 1, 2] {
            let (gate, tx) = (gate.clone(), tx.clone());
            tokio::spawn(async move {
                let p = gate.acquire(h).await;
                tx.send(p.holder).unwrap();
                std::future::pending::<()>().await;
                drop(p);
            });
            tokio::task::yield_now().await;
        }
        // Holder 2 queued last but holds nothing: the first freed permit is its.
        slow.pop();
        assert_eq!(rx.recv().await, Some(2));
        slow.pop();
        assert_eq!(rx.recv().await, Some(1));
    }

    #[tokio::test]
    async fn equal_holders_take_turns() {
        let gate = FairGate::new(1);
        let first = now(gate.acquire(9)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for h in [1, 1, 2, 2] {
            let (gate, tx) = (gate.clone(), tx.clone());
            tokio::spawn(async move {
                let p = gate.acquire(h).await;
                tx.send(p.holder).unwrap();
                tokio::task::yield_now().await;
                drop(p);
            });
            tokio::task::yield_now().await;
        }
        drop(first);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(rx.recv().await.unwrap());
        }
        assert_eq!(got, vec![1, 2, 1, 2]);
    }

    #[tokio::test]
    async fn a_request_given_up_while_waiting_does_not_keep_a_permit() {
        let gate = FairGate::new(1);
        let held = now(gate.acquire(1)).unwrap();
        let mut abandoned = Box::pin(gate.acquire(2));
        assert!((&mut abandoned).now_or_never().is_none());
        drop(abandoned);
        drop(held);
        assert_eq!(gate.in_use(), 0);
        assert!(now(gate.acquire(3)).is_some());
    }
}
