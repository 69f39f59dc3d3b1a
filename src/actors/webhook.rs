//! `WebhookActor`: one per registration. Owns the webhook's queue window, rate limiter, circuit
//! breaker, retry timers and HTTP client; a thin shell over the pure pieces in [`crate::delivery`].
//!
//! Memory stays bounded: at most `window` deliveries live here (queued, waiting for a retry or in
//! flight); the rest wait in the database and are paged in as the window drains: by delivery id
//! on SQLite (one process writes, so id order is acceptance order), in commit order on PostgreSQL
//! (other nodes add deliveries too). Everything here can be rebuilt from the database, which is what
//! a restart, or a new owner in a cluster, does.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::messages::*;
use super::status::{ActorState, WebhookStatus};
use super::WebhookDeps;
use crate::db::models::DeliveryRow;
use crate::db::store::sent::{self, SentBodyRow};
use crate::delivery::breaker::{BreakerSnapshot, CircuitBreaker, CircuitState};
use crate::delivery::host_pool::HostPool;
use crate::delivery::retry::{decide, random_jitter, RetryDecision};
use crate::delivery::sender::{self, AttemptResult, Outgoing, PreparedRequest};
use crate::domain::ops::{is_ops_type, OpsDetail, OpsFact};
use crate::domain::{Attempt, DeliveryStatus, DeliveryUpdate, RetryConfig, Webhook};

/// How long a webhook stays idle before its HTTP client (and connections) are dropped.
const CLIENT_IDLE: Duration = Duration::from_secs(60);

/// The actor of one webhook.
pub struct WebhookActor {
    webhook: Arc<Webhook>,
    deps: Arc<WebhookDeps>,
    /// Where a 410 is reported, so that the registry stops matching this webhook.
    router: Recipient<DisabledByReceiver>,
    status: Arc<WebhookStatus>,
    /// The connections to the webhook's receiver origin, shared with other webhooks sending there.
    host: Option<Arc<HostPool>>,
    /// What every request of the webhook shares, prepared at its first attempt after each
    /// configuration (an unparsable URL: why nothing can be sent).
    prepared: Option<Result<Arc<PreparedRequest>, String>>,
    limiter: Option<DefaultDirectRateLimiter>,
    breaker: CircuitBreaker,
    /// Due now, in acceptance order.
    ready: VecDeque<Job>,
    /// Waiting for a retry, by due time.
    waiting: BTreeMap<(DateTime<Utc>, String), Job>,
    /// Ids of every delivery held here (ready, waiting, in flight).
    known: HashSet<String>,
    in_flight: HashSet<String>,
    /// Highest delivery id taken from the database or the router; paging continues after it.
    cursor: Option<String>,
    /// The database may hold deliveries of this webhook that are not in memory.
    backlog: bool,
    loading: bool,
    /// Deliveries arrived during a load; load again afterwards.
    load_again: bool,
    wake: Option<(DateTime<Utc>, SpawnHandle)>,
    /// An idle check of the HTTP client is scheduled.
    idle_check: bool,
    /// Paused by recorder backpressure, waiting for it to catch up.
    awaiting_recorder: bool,
    draining: bool,
    retired: bool,
    /// Batching: when the oldest plain delivery in `ready` became ready.
    batch_since: Option<DateTime<Utc>>,
    /// PostgreSQL: the epoch of this node's lease; outcomes are written only while it holds.
    epoch: Option<i64>,
    /// PostgreSQL: deliveries that went final here since the last page began; their outcome may
    /// not be written yet, so a page that still finds them open must not take them again.
    recently_final: HashSet<String>,
    /// The same for the page under way (written once the recorder flush before it returned).
    final_before_page: HashSet<String>,
}

impl WebhookActor {
    /// An actor for `webhook`; `backlog` says whether the database may already hold deliveries for
    /// it.
    pub fn new(
        webhook: Arc<Webhook>,
        deps: Arc<WebhookDeps>,
        router: Recipient<DisabledByReceiver>,
        status: Arc<WebhookStatus>,
        backlog: bool,
        lease: Option<(i64, Option<BreakerSnapshot>)>,
    ) -> Self {
        let (epoch, resumed) = lease.map_or((None, None), |(e, b)| (Some(e), b));
        let breaker = match &resumed {
            Some(snap) => CircuitBreaker::restore(webhook.breaker, snap),
            None => CircuitBreaker::new(webhook.breaker),
        };
        let limiter = build_limiter(&webhook);
        Self {
            webhook,
            deps,
            router,
            status,
            host: None,
            prepared: None,
            limiter,
            breaker,
            ready: VecDeque::new(),
            waiting: BTreeMap::new(),
            known: HashSet::new(),
            in_flight: HashSet::new(),
            cursor: None,
            backlog,
            loading: false,
            load_again: false,
            wake: None,
            idle_check: false,
            awaiting_recorder: false,
            draining: false,
            retired: false,
            batch_since: None,
            epoch,
            recently_final: HashSet::new(),
            final_before_page: HashSet::new(),
        }
    }

    /// True on PostgreSQL, where other nodes add deliveries too: pages re-scan the open queue
    /// in commit order instead of following a cursor of ids.
    fn rescans(&self) -> bool {
        self.deps.db.is_pg()
    }

    /// A delivery is final here (or handed back to the database): no longer held.
    fn forget(&mut self, delivery_id: &str) {
        if self.known.remove(delivery_id) && self.rescans() {
            self.recently_final.insert(delivery_id.to_string());
        }
    }

    /// The fence of this actor's outcomes (PostgreSQL).
    fn fence(&self) -> Option<(i64, i64)> {
        self.epoch.map(|e| (self.webhook.id, e))
    }

    fn held(&self) -> usize {
        self.ready.len() + self.waiting.len() + self.in_flight.len()
    }

    fn max_in_flight(&self) -> usize {
        if self.webhook.ordered {
            1
        } else {
            self.deps.tuning.max_in_flight
        }
    }

    /// Runs `f`, turning a panic into a stop, which the Supervisor answers with a restart
    /// (a panic in a handler would otherwise close the mailbox and kill the actor for good).
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))).is_err() {
            tracing::error!(
                webhook_id = self.webhook.id,
                "webhook actor panicked; restarting"
            );
            ctx.stop();
        }
    }

    /// Starts every attempt that may start now, then arranges to be woken for the next one.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.retired || self.draining {
            // Outcomes of the last attempts still count: health (and the next owner) see them.
            self.status.set_in_flight(self.in_flight.len());
            self.status.set_circuit(&self.breaker);
            return;
        }
        let now = Utc::now();
        self.promote_due(now);
        let mut next_wake: Option<Duration> =
            self.waiting.keys().next().map(|(due, _)| until(now, *due));
        if self.webhook.enabled {
            if let Some(wait) = self.start_ready(now, ctx) {
                next_wake = Some(next_wake.map_or(wait, |w| w.min(wait)));
            }
        }
        if let Some(delay) = next_wake {
            self.schedule_wake(now, delay, ctx);
        }
        self.page_in_if_needed(ctx);
        self.release_client_when_idle(ctx);
        self.status.set_in_flight(self.in_flight.len());
        self.status.set_circuit(&self.breaker);
    }

    /// Lets go of the origin's connection pool once the webhook has been idle for a while; the pool
    /// (and its sockets) closes when no webhook holds it, so quiet receivers keep no connections.
    /// It is taken again on demand.
    fn release_client_when_idle(&mut self, ctx: &mut Context<Self>) {
        if self.host.is_none() || self.held() > 0 || self.backlog || self.idle_check {
            return;
        }
        self.idle_check = true;
        ctx.run_later(CLIENT_IDLE, |act, _| {
            act.idle_check = false;
            if act.held() == 0 && !act.backlog {
                act.host = None;
            }
        });
    }

    /// Starts attempts from `ready`; returns how long to wait when something other than
    /// an empty queue stopped it (breaker, rate limit, recorder backpressure).
    fn start_ready(&mut self, now: DateTime<Utc>, ctx: &mut Context<Self>) -> Option<Duration> {
        while self.in_flight.len() < self.max_in_flight() && !self.ready.is_empty() {
            if self.webhook.ordered && !self.waiting.is_empty() {
                return None; // the head waits for its retry; nothing overtakes it
            }
            if self.deps.recorder.backpressure().is_behind() && self.wait_for_recorder(ctx) {
                return None;
            }
            if let Some(wait) = self.batch_wait(now) {
                return Some(wait);
            }
            if !self.breaker.try_acquire(now) {
                return Some(
                    self.breaker
                        .wait_time(now)
                        .unwrap_or(Duration::from_millis(50)),
                );
            }
            if let Some(limiter) = &self.limiter {
                if let Err(not_until) = limiter.check() {
                    if self.breaker.state() == CircuitState::HalfOpen {
                        self.breaker.release_probe();
                    }
                    return Some(not_until.wait_time_from(DefaultClock::default().now()));
                }
            }
            if let Some(job) = self.next_job() {
                self.start_attempt(job, ctx);
            }
        }
        None
    }

    /// Batching: how long to hold the ready deliveries before a batch of them goes (None: now).
    /// A batch goes when it is full or `maxWaitMs` after its first delivery became ready; held
    /// back meanwhile (rate limit, breaker, ordered head) it keeps filling.
    fn batch_wait(&mut self, now: DateTime<Utc>) -> Option<Duration> {
        let b = self.webhook.batch?;
        if !self.ready.front().is_some_and(|j| j.members.is_empty()) {
            return None; // a batch being retried goes as it is
        }
        let since = *self.batch_since.get_or_insert(now);
        // Someone asked for these: manual retries ready together go as one batch, at once, and a
        // `/test` event as a batch of one (ahead of a filling batch, unless order is kept).
        let asked = |j: &Job| j.members.is_empty() && (j.manual || is_test(j));
        if self.ready.front().is_some_and(asked)
            || (!self.webhook.ordered && self.ready.iter().any(asked))
        {
            return None;
        }
        // Full by count, or by size: the next delivery would not fit under the body limit.
        let mut plain = 0;
        let mut size = BATCH_FRAME;
        let mut full_by_size = false;
        for j in self.ready.iter().take(b.max_events as usize) {
            if !(j.members.is_empty() && !j.manual && !is_test(j)) {
                break;
            }
            size += j.batch_entry_len();
            if plain > 0 && size > self.deps.tuning.max_batch_bytes {
                full_by_size = true;
                break;
            }
            plain += 1;
        }
        let due = since + chrono::Duration::milliseconds(b.max_wait_ms as i64);
        if plain >= b.max_events as usize || full_by_size || now >= due {
            return None;
        }
        Some(until(now, due))
    }

    /// The next job to send: the head of `ready`, or with batching a new batch of the ready
    /// deliveries at the head (up to `maxEvents`, and under the body limit).
    fn next_job(&mut self) -> Option<Job> {
        let Some(b) = self.webhook.batch else {
            return self.ready.pop_front();
        };
        if !self.ready.front()?.members.is_empty() {
            return self.ready.pop_front();
        }
        let max = b.max_events as usize;
        let head_only = self.webhook.ordered;
        if let Some(pos) = self
            .ready
            .iter()
            .take(if head_only { 1 } else { usize::MAX })
            .position(|j| j.members.is_empty() && is_test(j))
        {
            return self.ready.remove(pos).map(|j| Job::batch(vec![j]));
        }
        if !head_only && self.ready.iter().any(|j| j.members.is_empty() && j.manual) {
            let mut members = Vec::new();
            let mut rest = VecDeque::with_capacity(self.ready.len());
            for j in self.ready.drain(..) {
                if members.len() < max && j.members.is_empty() && j.manual {
                    members.push(j);
                } else {
                    rest.push_back(j);
                }
            }
            self.ready = rest;
            return Some(Job::batch(members));
        }
        self.batch_since = None;
        let manual = self.ready.front()?.manual;
        let mut members = Vec::new();
        let mut size = BATCH_FRAME;
        while members.len() < max {
            let Some(next) = self.ready.front() else {
                break;
            };
            let len = next.batch_entry_len();
            if !next.members.is_empty()
                || next.manual != manual
                || is_test(next)
                || (!members.is_empty() && size + len > self.deps.tuning.max_batch_bytes)
            {
                break;
            }
            size += len;
            members.extend(self.ready.pop_front());
        }
        Some(Job::batch(members))
    }

    /// Sleeps until the recorder has caught up (no polling: with thousands of webhooks holding
    /// work, a timer each would mean a wake-up storm while the database is slow). False when it
    /// caught up meanwhile and attempts may go on.
    fn wait_for_recorder(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.awaiting_recorder {
            return true;
        }
        let mut caught_up = self.deps.recorder.backpressure().subscribe();
        // Seen before the check below: a catch-up after it wakes the wait at once.
        caught_up.borrow_and_update();
        if !self.deps.recorder.backpressure().is_behind() {
            return false;
        }
        self.awaiting_recorder = true;
        ctx.spawn(
            async move { caught_up.changed().await.is_ok() }
                .into_actor(self)
                .map(|ok, act, ctx| {
                    act.awaiting_recorder = false;
                    if ok {
                        act.guarded(ctx, |a, c| a.pump(c));
                    } else {
                        // The recorder is gone (shutdown): nothing will be written anyway.
                        tracing::debug!(webhook_id = act.webhook.id, "recorder gone");
                    }
                }),
        );
        true
    }

    fn promote_due(&mut self, now: DateTime<Utc>) {
        let due: Vec<_> = self
            .waiting
            .range(..(now, String::from("\u{10FFFF}")))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due.into_iter().rev() {
            if let Some(job) = self.waiting.remove(&key) {
                // A retry goes before newer deliveries: for an ordered webhook it is the head.
                self.ready.push_front(job);
            }
        }
    }

    fn schedule_wake(&mut self, now: DateTime<Utc>, delay: Duration, ctx: &mut Context<Self>) {
        let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
        if let Some((existing, handle)) = &self.wake {
            if *existing <= at {
                return;
            }
            ctx.cancel_future(*handle);
        }
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.guarded(ctx, |a, c| a.pump(c));
        });
        self.wake = Some((at, handle));
    }

    fn start_attempt(&mut self, job: Job, ctx: &mut Context<Self>) {
        if crate::testing::take_injected_panic(self.webhook.id, &self.webhook.url) {
            panic!("injected fault in webhook actor {}", self.webhook.id);
        }
        let webhook = &self.webhook;
        let prepared = self
            .prepared
            .get_or_insert_with(|| PreparedRequest::new(webhook).map(Arc::new))
            .clone();
        let target = prepared
            .map_err(|e| format!("invalid URL: {e}"))
            .and_then(|p| match self.host_pool(&p.url) {
                Ok(host) => Ok((p, host)),
                Err(e) => Err(format!("HTTP client: {e}")),
            });
        self.in_flight.insert(job.delivery_id.clone());
        let webhook_id = self.webhook.id;
        let (request, host) = match target {
            Ok(t) => t,
            Err(error) => return self.finish(job, sender::not_sent(error), None, ctx),
        };
        let policy = self.deps.policy.clone();
        if !job.members.is_empty() {
            self.known.insert(job.delivery_id.clone());
        }
        let out = Outgoing {
            delivery_id: job.delivery_id.clone(),
            event_type: job.event_type.clone(),
            payload: job.payload.clone(),
        };
        // The first send runs the current `transform`; later attempts reuse its bytes.
        let program = if job.transformed {
            None
        } else {
            self.webhook.transform.clone()
        };
        let pool = self.deps.transform.clone();
        let applied = program.is_some();
        let attempt = async move {
            let out = match program {
                Some(code) => match pool.run(&code, &out.payload).await {
                    Ok(body) => Outgoing {
                        payload: Arc::from(body),
                        ..out
                    },
                    Err(reason) => return Sent::TransformFailed(reason),
                },
                None => out,
            };
            let payload = out.payload.clone();
            // Held until the response is read: the connection is this webhook's meanwhile.
            let _slot = host.slot(webhook_id).await;
            Sent::Done(
                sender::send(host.client(), &policy, &request, &out).await,
                payload,
            )
        };
        ctx.spawn(
            AssertUnwindSafe(attempt)
                .catch_unwind()
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Sent::Done(result, payload)) => act.guarded(ctx, |a, c| {
                        let mut job = job;
                        let kept = applied.then(|| (job.delivery_id.clone(), payload.clone()));
                        job.payload = payload;
                        job.transformed = true;
                        job.custom_body |= applied;
                        a.finish(job, result, kept, c);
                        a.pump(c);
                    }),
                    Ok(Sent::TransformFailed(reason)) => act.guarded(ctx, |a, c| {
                        a.fail_transform(job, &reason);
                        a.pump(c);
                    }),
                    Err(_) => ctx.stop(),
                }),
        );
    }

    /// A transform that failed ends the delivery at once: no request, no attempt, and the
    /// breaker as it was (a half-open probe permit goes back unused).
    fn fail_transform(&mut self, job: Job, reason: &str) {
        let tracked = self.in_flight.remove(&job.delivery_id);
        self.breaker.release_probe();
        let members = if job.members.is_empty() {
            vec![job.clone()]
        } else {
            job.members.clone()
        };
        for m in members {
            self.status.finished(false);
            self.deps
                .metrics
                .deliveries
                .with_label_values(&[DeliveryStatus::Failed.as_str()])
                .inc();
            let error = format!("transform: {reason}");
            self.emit_failed(&m, m.attempts_made, None, Some(&error));
            self.deps.recorder.record(Outcome {
                fence: self.fence(),
                ..Outcome::closed(
                    m.delivery_id.clone(),
                    DeliveryStatus::Failed,
                    &error,
                    i64::from(m.attempts_made),
                )
            });
            if tracked {
                self.forget(&m.delivery_id);
            }
        }
        if tracked {
            self.forget(&job.delivery_id);
        }
    }

    /// The connection pool of `url`'s origin, kept while the webhook is busy.
    fn host_pool(&mut self, url: &url::Url) -> reqwest::Result<Arc<HostPool>> {
        if let Some(h) = &self.host {
            return Ok(h.clone());
        }
        let h = self.deps.hosts.pool_for(url)?;
        self.host = Some(h.clone());
        Ok(h)
    }

    /// Turns an attempt's result into the delivery's next state, and hands it to the recorder.
    /// `transformed`: the body a transform produced on this send, recorded with the attempt.
    fn finish(
        &mut self,
        mut job: Job,
        result: AttemptResult,
        mut transformed: Option<(String, Arc<str>)>,
        ctx: &mut Context<Self>,
    ) {
        let now = Utc::now();
        let tracked = self.in_flight.remove(&job.delivery_id);
        let attempt_number = job.attempts_made + 1;
        let latency_ms = u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX);
        let success = result.is_success();
        let deps = self.deps.clone();
        let m = &deps.metrics;
        m.attempts
            .with_label_values(&[if success { "success" } else { "failure" }])
            .inc();
        m.attempt_duration
            .with_label_values(&[] as &[&str])
            .observe(result.duration.as_secs_f64());

        let breaker_before = (self.breaker.state(), self.breaker.opened_at());
        let (status, next_at) = if success {
            self.breaker.on_success(now);
            (DeliveryStatus::Success, None)
        } else if result.is_gone() {
            // A probe answered with 410 neither closes nor reopens the breaker, but it must hand
            // its permit back: left half-open with the probe "in flight", nothing would ever go
            // out again once the webhook is re-enabled.
            self.breaker.release_probe();
            self.disable_after_gone(now, &job.delivery_id, ctx);
            (DeliveryStatus::Failed, None)
        } else {
            self.breaker.on_failure(now);
            let retry = if job.manual && !job.members.is_empty() {
                // A batch of manually retried deliveries gets one attempt (README, Routing and
                // payloads).
                RetryConfig {
                    max_attempts: 1,
                    ..self.webhook.retry
                }
            } else {
                self.webhook.retry
            };
            match decide(&retry, attempt_number, result.retry_after, random_jitter()) {
                RetryDecision::Retry(delay) => (
                    DeliveryStatus::Retrying,
                    Some(now + chrono::Duration::from_std(delay).unwrap_or_default()),
                ),
                RetryDecision::GiveUp => (DeliveryStatus::Failed, None),
            }
        };
        self.emit_breaker_change(breaker_before, result.error.as_deref());
        // A batch's request counts once above; each member records the attempt and the status.
        let batch_id = (!job.members.is_empty()).then(|| job.delivery_id.clone());
        let mut single = Vec::new();
        let members = if job.members.is_empty() {
            single.push(&mut job);
            single
        } else {
            job.members.iter_mut().collect()
        };
        for member in members {
            // Health stats count one attempt per delivery; `/metrics` counted the request.
            self.status.attempt(
                now,
                latency_ms,
                if success {
                    None
                } else {
                    result.error.as_deref().or(Some("failed"))
                },
            );
            if !status.is_open() {
                self.status.finished(success);
                m.deliveries.with_label_values(&[status.as_str()]).inc();
            }
            if status == DeliveryStatus::Failed {
                self.emit_failed(
                    member,
                    member.attempts_made + 1,
                    result.status,
                    result.error.as_deref(),
                );
            }
            let member_attempt = i64::from(member.attempts_made + 1);
            self.deps.recorder.record(Outcome {
                attempt: Some(Attempt {
                    delivery_id: member.delivery_id.clone(),
                    webhook_id: self.webhook.id,
                    attempt_number: member_attempt,
                    status_code: result.status.map(i64::from),
                    error_message: result.error.clone(),
                    response_body: result.body.clone(),
                    duration_ms: i64::try_from(latency_ms).unwrap_or(i64::MAX),
                    attempted_at: now,
                    batch_id: batch_id.clone(),
                }),
                delivery_id: member.delivery_id.clone(),
                update: DeliveryUpdate {
                    status,
                    status_code: result.status.map(i64::from),
                    response_body: result.body.clone(),
                    error_message: result.error.clone(),
                    attempt_number: member_attempt,
                    next_attempt_at: next_at,
                    updated_at: now,
                    delivered_at: success.then_some(now),
                },
                // Once per send: a batch's body is kept under the batch id.
                transformed: transformed.take(),
                fence: self.epoch.map(|e| (self.webhook.id, e)),
            });
            member.attempts_made += 1;
            if next_at.is_none() && tracked {
                let id = member.delivery_id.clone();
                self.forget(&id);
            }
        }
        if !tracked {
            return; // an attempt started before a restart; the reloaded copy carries on
        }
        match next_at {
            Some(due) => {
                // A failed batch is retried whole: same id, members and bytes.
                if job.custom_body && !job.stored {
                    self.store_body(&job);
                    job.stored = true;
                }
                job.attempts_made = attempt_number;
                job.due = Some(due);
                self.waiting.insert((due, job.delivery_id.clone()), job);
            }
            None => {
                if job.stored {
                    self.forget_body(&job.delivery_id);
                }
                self.forget(&job.delivery_id);
            }
        }
    }

    /// Stores the body of a batch or transformed delivery about to wait for a retry, so that a
    /// restarted node resends exactly it. Its own task: a write is never dropped half-way.
    fn store_body(&self, job: &Job) {
        let members: Vec<&str> = if job.members.is_empty() {
            vec![job.delivery_id.as_str()]
        } else {
            job.members.iter().map(|m| m.delivery_id.as_str()).collect()
        };
        let row = SentBodyRow {
            sent_id: job.delivery_id.clone(),
            webhook_id: self.webhook.id,
            members: serde_json::to_string(&members).unwrap_or_default(),
            body: job.payload.to_string(),
            manual: job.manual,
            created_at: Utc::now().naive_utc(),
        };
        let db = self.deps.db.clone();
        tokio::spawn(async move {
            let result = match db.write().await {
                Ok(mut conn) => sent::save(&mut conn, &row).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = result {
                tracing::warn!(%error, sent_id = row.sent_id, "storing a sent body failed; a restart would rebuild it");
            }
        });
    }

    /// Drops the stored body of deliveries that are final.
    fn forget_body(&self, sent_id: &str) {
        let db = self.deps.db.clone();
        let sent_id = sent_id.to_string();
        tokio::spawn(async move {
            if let Ok(mut conn) = db.write().await {
                if let Err(error) = sent::delete(&mut conn, &sent_id).await {
                    tracing::warn!(%error, sent_id, "forgetting a sent body failed");
                }
            }
        });
    }

    /// `beema/circuit.opened` when a closed breaker opened (a failed probe re-opening it is not
    /// one), `beema/circuit.closed` when an open one closed.
    fn emit_breaker_change(
        &self,
        (before, opened_at): (CircuitState, Option<DateTime<Utc>>),
        error: Option<&str>,
    ) {
        let detail = match (before, self.breaker.state()) {
            (CircuitState::Closed, CircuitState::Open) => OpsDetail::CircuitOpened {
                consecutive_failures: self.breaker.consecutive_failures(),
                retry_at: self.breaker.retry_at(),
            },
            (CircuitState::Open | CircuitState::HalfOpen, CircuitState::Closed) => {
                OpsDetail::CircuitClosed { opened_at }
            }
            _ => return,
        };
        let reason = match detail {
            OpsDetail::CircuitClosed { .. } => None,
            _ => Some(error.unwrap_or("failed").to_string()),
        };
        self.deps
            .ops
            .emit(OpsFact::about(&self.webhook, reason, detail));
    }

    /// `beema/delivery.failed`, except for a delivery of an operational event (no loops).
    fn emit_failed(&self, job: &Job, attempts: u32, status_code: Option<u16>, error: Option<&str>) {
        if is_ops_type(&job.event_type) {
            return;
        }
        let detail = OpsDetail::DeliveryFailed {
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            event_type: job.event_type.clone(),
            attempts: i64::from(attempts),
            status_code: status_code.map(i64::from),
        };
        let reason = Some(error.unwrap_or("failed").to_string());
        self.deps
            .ops
            .emit(OpsFact::about(&self.webhook, reason, detail));
    }

    fn disable_after_gone(
        &mut self,
        now: DateTime<Utc>,
        delivery_id: &str,
        _ctx: &mut Context<Self>,
    ) {
        // Attempts still in flight may answer 410 too: the webhook is disabled (and told) once.
        let first = self.webhook.enabled;
        let reason = format!("receiver answered 410 Gone at {}", now.to_rfc3339());
        let mut w = (*self.webhook).clone();
        w.enabled = false;
        w.disabled_reason = Some(reason.clone());
        self.webhook = Arc::new(w);
        if first {
            self.deps.ops.emit(OpsFact::about(
                &self.webhook,
                Some(reason.clone()),
                OpsDetail::WebhookDisabled {
                    delivery_id: Some(delivery_id.to_string()),
                },
            ));
        }
        self.router.do_send(DisabledByReceiver {
            webhook_id: self.webhook.id,
            reason,
        });
    }

    fn accept(&mut self, job: Job) {
        if self.known.insert(job.delivery_id.clone()) {
            match job.due {
                Some(due) if due > Utc::now() => {
                    self.waiting.insert((due, job.delivery_id.clone()), job);
                }
                _ => self.ready.push_back(job),
            }
        }
    }

    fn page_in_if_needed(&mut self, ctx: &mut Context<Self>) {
        let window = self.deps.tuning.window;
        if !self.backlog || self.loading || self.retired || self.held() > window / 2 {
            return;
        }
        self.loading = true;
        self.load_again = false;
        if self.rescans() {
            return self.rescan(ctx);
        }
        let limit = (window - self.held()).max(1) as i64;
        let db = self.deps.db.clone();
        let id = self.webhook.id;
        let cursor = self.cursor.clone();
        // Spawned as its own task: a query is never dropped half-way (dropping an in-flight SQLite
        // query calls `block_in_place`, which panics on actix's threads).
        let task = tokio::spawn(async move {
            let mut conn = db.read().await.map_err(|e| e.to_string())?;
            let rows =
                crate::db::store::deliveries::load_open(&mut conn, id, cursor.as_deref(), limit)
                    .await
                    .map_err(|e| e.to_string())?;
            let bodies = sent::list_for_webhook(&mut conn, id)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((rows, bodies))
        });
        ctx.spawn(task.into_actor(self).map(move |res, act, ctx| {
            act.loading = false;
            match res {
                Ok(Ok((rows, bodies))) => act.guarded(ctx, |a, c| {
                    a.take_loaded(rows, bodies, limit);
                    a.pump(c);
                }),
                other => {
                    tracing::warn!(webhook_id = act.webhook.id, error = ?other.err(), "paging in deliveries failed; retrying");
                    ctx.run_later(Duration::from_secs(1), |a, c| a.guarded(c, |a, c| a.pump(c)));
                }
            }
        }));
    }

    /// PostgreSQL paging: the oldest open deliveries of this webhook in commit order, skipping
    /// those held here or gone final here. The recorder is flushed first, so that what went final
    /// before the page began is final in the database too. An ordered webhook only takes rows below
    /// the oldest running transaction: anything committed later sorts after them, so FIFO holds
    /// across nodes; while newer rows wait behind a running transaction it pages again shortly.
    fn rescan(&mut self, ctx: &mut Context<Self>) {
        let window = self.deps.tuning.window;
        let fetch = (self.held() + (window - self.held()).max(1)) as i64;
        self.final_before_page = std::mem::take(&mut self.recently_final);
        let (db, recorder) = (self.deps.db.clone(), self.deps.recorder.clone());
        let (id, ordered) = (self.webhook.id, self.webhook.ordered);
        let task = tokio::spawn(async move {
            recorder.flush().await;
            let mut conn = db.read().await.map_err(|e| e.to_string())?;
            let page = crate::db::store::deliveries::load_queue(&mut conn, id, fetch, ordered)
                .await
                .map_err(|e| e.to_string())?;
            let bodies = sent::list_for_webhook(&mut conn, id)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((page, bodies))
        });
        ctx.spawn(task.into_actor(self).map(move |res, act, ctx| {
            act.loading = false;
            match res {
                Ok(Ok(((rows, held_back), bodies))) => act.guarded(ctx, |a, c| {
                    let full = rows.len() as i64 >= fetch;
                    let fresh: Vec<_> = rows
                        .into_iter()
                        .filter(|(r, _)| {
                            !a.known.contains(&r.delivery_id)
                                && !a.final_before_page.contains(&r.delivery_id)
                                && !a.recently_final.contains(&r.delivery_id)
                        })
                        .collect();
                    a.final_before_page.clear();
                    a.take_loaded(fresh, bodies, i64::MAX);
                    a.backlog = full || a.load_again;
                    if held_back && !a.backlog {
                        // Newer rows wait behind a running transaction: look again shortly.
                        c.run_later(Duration::from_millis(10), |a, c| {
                            a.backlog = true;
                            a.guarded(c, |a, c| a.pump(c));
                        });
                    }
                    a.pump(c);
                }),
                other => {
                    act.recently_final.extend(act.final_before_page.drain());
                    tracing::warn!(webhook_id = act.webhook.id, error = ?other.err(), "paging in deliveries failed; retrying");
                    ctx.run_later(Duration::from_secs(1), |a, c| a.guarded(c, |a, c| a.pump(c)));
                }
            }
        }));
    }

    fn take_loaded(
        &mut self,
        rows: Vec<(DeliveryRow, Option<String>)>,
        bodies: Vec<SentBodyRow>,
        limit: i64,
    ) {
        let full_page = rows.len() as i64 >= limit;
        // Deliveries whose body was fixed when first sent: rebuilt as that batch (or body).
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (i, b) in bodies.iter().enumerate() {
            let members: Vec<String> = serde_json::from_str(&b.members).unwrap_or_default();
            for m in members {
                owner.insert(m, i);
            }
        }
        let mut rebuilt: BTreeMap<usize, Vec<Job>> = BTreeMap::new();
        for (row, payload) in rows {
            self.cursor = Some(row.delivery_id.clone());
            let Some(payload) = payload else {
                self.deps.recorder.record(Outcome {
                    fence: self.fence(),
                    ..Outcome::closed(
                        row.delivery_id,
                        DeliveryStatus::Failed,
                        "event payload not found",
                        row.attempt_number,
                    )
                });
                continue;
            };
            let job = Job::from_row(&row, Arc::from(payload));
            match owner.get(&job.delivery_id) {
                Some(&i) if !self.known.contains(&job.delivery_id) => {
                    rebuilt.entry(i).or_default().push(job);
                }
                _ => self.accept(job),
            }
        }
        for (i, members) in rebuilt {
            let b = &bodies[i];
            let single = members.len() == 1 && members[0].delivery_id == b.sent_id;
            let job = if single {
                let mut job = members.into_iter().next().unwrap_or_else(|| unreachable!());
                job.payload = Arc::from(b.body.as_str());
                job
            } else {
                let mut job = Job::batch(members);
                job.delivery_id = b.sent_id.clone();
                job.payload = Arc::from(b.body.as_str());
                job.manual = b.manual;
                job.attempts_made = job
                    .members
                    .iter()
                    .map(|m| m.attempts_made)
                    .max()
                    .unwrap_or(0);
                job.due = job.members.iter().filter_map(|m| m.due).min();
                for m in &job.members {
                    self.known.insert(m.delivery_id.clone());
                }
                job
            };
            self.accept(Job {
                transformed: true,
                custom_body: true,
                stored: true,
                ..job
            });
        }
        self.backlog = full_page || self.load_again;
    }

    /// Forgets everything a run held and rebuilds it from the webhook's settings; the queues are
    /// paged in again from the database. Nothing of the failed run survives: a panic while the
    /// half-open probe was in flight would otherwise leave the breaker waiting for that probe
    /// for good.
    fn reset(&mut self) {
        self.breaker = CircuitBreaker::new(self.webhook.breaker);
        self.limiter = build_limiter(&self.webhook);
        self.awaiting_recorder = false;
        self.ready.clear();
        self.waiting.clear();
        self.known.clear();
        self.in_flight.clear();
        self.cursor = None;
        self.backlog = true;
        self.loading = false;
        self.load_again = false;
        self.wake = None;
        self.idle_check = false;
        self.host = None;
        self.batch_since = None;
        self.recently_final.clear();
        self.final_before_page.clear();
    }
}

/// Bytes of a batch body around its entries (`{"type":"batch","deliveries":[` … `]}`).
const BATCH_FRAME: usize = 40;

/// A `/test` event: with batching it goes alone, as a batch of one.
fn is_test(job: &Job) -> bool {
    job.event_type == "webhook/test"
}

/// How a started attempt ended.
enum Sent {
    /// The request went out (or failed to); the body it carried.
    Done(AttemptResult, Arc<str>),
    /// The transform failed: nothing was sent.
    TransformFailed(String),
}

fn until(now: DateTime<Utc>, due: DateTime<Utc>) -> Duration {
    (due - now).to_std().unwrap_or(Duration::ZERO)
}

fn build_limiter(w: &Webhook) -> Option<DefaultDirectRateLimiter> {
    let rl = w.rate_limit?;
    let per_second = NonZeroU32::new(rl.per_second)?;
    let burst = NonZeroU32::new(rl.burst).unwrap_or(per_second);
    Some(RateLimiter::direct(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

impl Actor for WebhookActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.status.set_actor(ActorState::Running);
        self.guarded(ctx, |a, c| a.pump(c));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.retired {
            self.status.set_actor(ActorState::Stopped);
        }
    }
}

impl Supervised for WebhookActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        if self.retired {
            // Stopped by `Retire` (webhook deleted): the Supervisor restarts it only because the
            // router's address may not be dropped yet. Not a fault: count nothing; the idle actor
            // ends once that address goes.
            return;
        }
        self.status.restarted();
        self.deps.metrics.actor_restarts.inc();
        self.reset();
    }
}

impl Handler<Enqueue> for WebhookActor {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        if self.retired {
            return;
        }
        for job in msg.jobs {
            if msg.force {
                self.accept(Job {
                    manual: true,
                    ..job
                });
                continue;
            }
            // An ordered webhook on PostgreSQL takes its deliveries in commit order from the
            // database only: one published on another node may sort before this one.
            let in_order_from_db = self.webhook.ordered && self.rescans();
            if in_order_from_db
                || self.backlog
                || self.loading
                || self.held() >= self.deps.tuning.window
            {
                // It is in the database; paging will bring it in, in order.
                self.backlog = true;
                if self.loading {
                    self.load_again = true;
                }
                continue;
            }
            if self
                .cursor
                .as_deref()
                .is_none_or(|c| c < job.delivery_id.as_str())
            {
                self.cursor = Some(job.delivery_id.clone());
            }
            self.accept(job);
        }
        self.guarded(ctx, |a, c| a.pump(c));
    }
}

impl Handler<PageIn> for WebhookActor {
    type Result = ();

    fn handle(&mut self, _: PageIn, ctx: &mut Self::Context) {
        if self.retired {
            return;
        }
        self.backlog = true;
        if self.loading {
            self.load_again = true;
        }
        self.guarded(ctx, |a, c| a.pump(c));
    }
}

impl Handler<Configure> for WebhookActor {
    type Result = ();

    fn handle(&mut self, msg: Configure, ctx: &mut Self::Context) {
        let new = msg.0;
        if new.rate_limit != self.webhook.rate_limit {
            self.limiter = build_limiter(&new);
        }
        self.breaker.set_config(new.breaker);
        // Headers, secrets and timeout may have changed too.
        self.prepared = None;
        if new.url != self.webhook.url {
            self.host = None;
        }
        self.webhook = new;
        self.guarded(ctx, |a, c| a.pump(c));
    }
}

impl Handler<Retire> for WebhookActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.retired = true;
        self.ready.clear();
        self.waiting.clear();
        self.known.clear();
        ctx.stop();
    }
}

impl Handler<Drain> for WebhookActor {
    type Result = usize;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> usize {
        self.draining = true;
        self.in_flight.len()
    }
}
