//! Group commit of concurrent `CreateOrder` calls (`ORDERS_BATCH_MAX`).
//!
//! Validated orders go to one queue. A few writer threads ([`writers_for_pool`]: a
//! quarter of the pool, 1 to 4) each take the first order waiting, drain whatever
//! else is queued up to `ORDERS_BATCH_MAX`, and write all of them, with their items,
//! outbox rows and idempotency keys, in ONE statement (one transaction;
//! [`OrderStore::create_many`], which keeps each key's guarantees inside the batch:
//! two requests with one key make one order). There is no timer: a lone order is
//! written at once, and orders arriving while a batch commits queue for the next one.
//!
//! Each caller gets its own answer: its order, a replay, or its key's conflict. A
//! batch the database refuses for a reason other than being unreachable (e.g. one
//! order breaks a constraint or a trigger) is retried one order at a time, so the
//! others commit and only the guilty caller gets its error
//! (`orders_batch_split_orders_total` counts the orders so retried). A batch that
//! cannot commit because the database is unreachable answers UNAVAILABLE to each of
//! its callers: one transaction, so nothing of it is visible. Orders whose caller
//! already left (deadline passed, hung up) are not written.
//!
//! `ORDERS_BATCH_MAX=1` turns batching off: every call writes its own order
//! ([`OrderStore::create`]), one transaction each, as before group commit.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, Receiver, Sender},
    },
    time::Instant,
};

use ops_http::{COUNT_BUCKETS, Counter, Histogram, Metrics};
use service_skeleton::ErrorChain;
use tokio::sync::oneshot;

use crate::{
    idempotency::IdempotencyKey,
    store::{Created, OrderRequest, OrderStore, StoreError},
    validation::NewOrder,
};

/// Default of `ORDERS_BATCH_MAX`: orders written in one transaction at most.
pub const DEFAULT_BATCH_MAX: u32 = 64;

/// Largest `ORDERS_BATCH_MAX` accepted.
pub const MAX_BATCH_MAX: u32 = 1000;

/// Most writer threads (and so database connections held for batches at once).
pub const MAX_WRITERS: u32 = 4;

/// Writer threads for a pool of `pool_size` connections: a quarter of it, 1 to
/// [`MAX_WRITERS`] (4 for the default pool of 16), leaving the rest of the pool to
/// reads, keyed creates, the relay and readiness. A few batches committing at once
/// keep PostgreSQL's WAL flushes overlapping, as pgbench's many clients do.
pub fn writers_for_pool(pool_size: u32) -> u32 {
    (pool_size / 4).clamp(1, MAX_WRITERS)
}

/// The batch metrics: `orders_batch_size`, `orders_batch_commit_seconds`,
/// `orders_batch_split_orders_total`.
#[derive(Clone)]
pub struct BatchMetrics {
    size: Histogram,
    commit: Histogram,
    split: Counter,
}

impl BatchMetrics {
    /// Registers the batch metrics.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            size: metrics.histogram_with_buckets(
                "orders_batch_size",
                "New orders per committed CreateOrder batch (one transaction); replays under an idempotency key are not counted.",
                &COUNT_BUCKETS,
            ),
            commit: metrics.histogram(
                "orders_batch_commit_seconds",
                "Time to write one CreateOrder batch (ids, then one statement), whatever the outcome.",
            ),
            split: metrics.counter(
                "orders_batch_split_orders_total",
                "Orders of batches the database refused, retried one order at a time.",
            ),
        }
    }
}

/// One caller's order and where its answer goes.
struct Job {
    order: NewOrder,
    key: Option<IdempotencyKey>,
    trace: Option<telemetry::TraceHeaders>,
    reply: oneshot::Sender<Result<Created, StoreError>>,
}

impl Job {
    fn request(&self) -> OrderRequest<'_> {
        OrderRequest {
            order: &self.order,
            key: self.key.as_ref(),
            trace: self.trace.as_ref(),
        }
    }
}

/// The queue in front of the writer threads; they stop when it is dropped.
pub struct Batcher {
    queue: Sender<Job>,
}

impl Batcher {
    /// Starts `writers` threads writing batches of up to `max` orders to `store`. A
    /// thread that cannot be spawned is logged; with none at all every call gets
    /// UNAVAILABLE.
    pub fn start(store: OrderStore, max: u32, writers: u32, metrics: BatchMetrics) -> Self {
        let (queue, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let max = usize::try_from(max).unwrap_or(1).max(1);
        for index in 0..writers.max(1) {
            let writer = Writer {
                store: store.clone(),
                queue: Arc::clone(&receiver),
                max,
                metrics: metrics.clone(),
            };
            if let Err(err) = std::thread::Builder::new()
                .name(format!("orders-batch-{index}"))
                .spawn(move || writer.run())
            {
                tracing::error!(%err, "cannot start an order batch writer");
            }
        }
        Self { queue }
    }

    /// Queues `order` (under `key`, if given; its outbox row in `trace`) for the next
    /// batch and waits for its own answer.
    pub async fn create(
        &self,
        order: NewOrder,
        key: Option<IdempotencyKey>,
        trace: Option<telemetry::TraceHeaders>,
    ) -> Result<Created, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                order,
                key,
                trace,
                reply,
            })
            .map_err(|_| StoreError::NoWriter)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// One writer thread's state.
struct Writer {
    store: OrderStore,
    queue: Arc<Mutex<Receiver<Job>>>,
    max: usize,
    metrics: BatchMetrics,
}

impl Writer {
    /// Takes batches until the queue's sender is dropped.
    fn run(self) {
        while let Some(batch) = self.next_batch() {
            self.write(batch);
        }
    }

    /// Waits for the first order, then takes what else is queued, up to `max`; the
    /// lock is held only while taking, so another writer can take the next batch
    /// while this one commits. `None` once the queue is closed.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let first = queue.recv().ok()?;
        let mut batch = vec![first];
        while batch.len() < self.max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    fn write(&self, batch: Vec<Job>) {
        // A caller that left (deadline, hang-up) never hears of its order: skip it.
        let batch: Vec<Job> = batch
            .into_iter()
            .filter(|job| !job.reply.is_closed())
            .collect();
        if batch.is_empty() {
            return;
        }
        let requests: Vec<OrderRequest<'_>> = batch.iter().map(Job::request).collect();
        let started = Instant::now();
        let result = self.store.create_many(&requests);
        self.metrics.commit.observe(started.elapsed());
        drop(requests);
        match result {
            Ok(answers) => {
                let created = answers
                    .iter()
                    .filter(|answer| matches!(answer, Ok(created) if !created.replayed))
                    .count();
                self.metrics.size.observe_count(created as u64);
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer.map_err(StoreError::from));
                }
            }
            // Refused for one order's sake (or so it may be): one at a time, so
            // only that one fails.
            Err(err) if err.is_internal() && batch.len() > 1 => {
                tracing::warn!(
                    error = %ErrorChain(&err),
                    orders = batch.len(),
                    "order batch refused, retrying its orders one at a time"
                );
                self.metrics.split.add(batch.len() as u64);
                for job in batch {
                    let result = self.store.create(job.request());
                    if matches!(result, Ok(created) if !created.replayed) {
                        self.metrics.size.observe_count(1);
                    }
                    let _ = job.reply.send(result);
                }
            }
            // Unreachable (or a lone order refused): the same answer to everyone,
            // and nothing was written (one transaction).
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_are_a_quarter_of_the_pool_from_one_to_four() {
        assert_eq!(writers_for_pool(1), 1);
        assert_eq!(writers_for_pool(4), 1);
        assert_eq!(writers_for_pool(8), 2);
        assert_eq!(writers_for_pool(16), 4);
        assert_eq!(writers_for_pool(100), 4);
    }
}
