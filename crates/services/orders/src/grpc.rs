//! `orders.v1.OrdersService` over the [`OrderStore`], with per-call metrics.
//!
//! At most `ORDERS_MAX_IN_FLIGHT` calls are handled at once, whichever connections
//! they come on: a call past it fails at once with UNAVAILABLE ("orders overloaded
//! ..., retry later"; counted in `orders_calls_shed_total`) instead of queueing for
//! a database connection until its deadline. tonic's `concurrency_limit_per_connection`
//! is per connection, and tower's `ConcurrencyLimitLayer` queues: a semaphore's
//! `try_acquire` in the service does neither. Health and reflection are other
//! services, not counted: an overloaded orders still answers its health checks.
//!
//! `CreateOrder` calls, with or without an idempotency key, are group-committed
//! through [`crate::batcher`] (`ORDERS_BATCH_MAX`); with `ORDERS_BATCH_MAX=1` each is
//! written in its own transaction.
//!
//! `GetOrder` with the [`OWNER_METADATA`] a gateway sends for an authenticated user
//! answers only that user's orders; another's is NOT_FOUND like a missing one.

use ops_http::{Counter, Histogram, Metrics};
use proto::v1::{
    CreateOrderRequest, CreateOrderResponse, GetOrderRequest, GetOrderResponse, Money, Order,
    OrderItem, OrderStatus,
    orders_service_server::{OrdersService, SERVICE_NAME},
};
use service_skeleton::ErrorChain;
use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};
use telemetry::{TraceHeaders, spans};
use tracing::Instrument;

use tokio::sync::{Semaphore, SemaphorePermit};

use tonic::{Code, Request, Response, Status, metadata::MetadataValue};

use crate::{
    batcher::{BatchMetrics, Batcher},
    idempotency::{self, IdempotencyKey, KeyConflict},
    store::{Created, OrderRequest, OrderStore, StoreError, StoredOrder},
    validation::validate,
};

/// The `GetOrder` metadata naming the user the order must belong to (the gateway's
/// authenticated caller); absent: any order, as for the Go gateway.
pub const OWNER_METADATA: &str = "owner-user-id";

/// The store appears once the database is created and migrated; until then every
/// call is UNAVAILABLE, so clients retry instead of hanging on a silent port.
pub type StoreSlot = Arc<OnceLock<OrderStore>>;

/// How UNAVAILABLE's message starts for a call shed past `ORDERS_MAX_IN_FLIGHT` (the
/// gateway passes such messages on).
pub const OVERLOADED_PREFIX: &str = "orders overloaded";

pub struct OrdersApi {
    store: StoreSlot,
    metrics: CallMetrics,
    in_flight: Semaphore,
    max_in_flight: usize,
    /// Group commit of creates; see [`BatchSettings`].
    batch: BatchSettings,
    batch_metrics: BatchMetrics,
    /// Started with the first create once the store is ready.
    batcher: OnceLock<Batcher>,
}

/// How `CreateOrder` calls are grouped into transactions (see [`crate::batcher`]).
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// `ORDERS_BATCH_MAX`: most orders per transaction; 1 turns batching off.
    pub max: u32,
    /// Writer threads, each committing one batch at a time.
    pub writers: u32,
}

/// What `/metrics` shows about the gRPC calls, whoever makes them (the gateway or a
/// direct gRPC client).
struct CallMetrics {
    create_duration: Histogram,
    get_duration: Histogram,
    created: Counter,
    replayed: Counter,
    refused: Counter,
    failed: Counter,
    shed: Counter,
}

impl CallMetrics {
    fn new(metrics: &Metrics) -> Self {
        Self {
            create_duration: metrics.histogram(
                "orders_create_order_duration_seconds",
                "Time to answer CreateOrder, whatever the outcome.",
            ),
            get_duration: metrics.histogram(
                "orders_get_order_duration_seconds",
                "Time to answer GetOrder, whatever the outcome.",
            ),
            created: metrics.counter("orders_created_total", "Orders stored by CreateOrder."),
            replayed: metrics.counter(
                "orders_create_replayed_total",
                "CreateOrder calls answered with the order an earlier call with the same idempotency key created (nothing stored).",
            ),
            refused: metrics.counter(
                "orders_calls_refused_total",
                "Calls refused for the caller's mistake (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION: an idempotency key reused for another request, ABORTED: one in progress).",
            ),
            failed: metrics.counter(
                "orders_calls_failed_total",
                "Calls that failed on this side (UNAVAILABLE, INTERNAL, ...) or were abandoned (caller's deadline passed, or it hung up).",
            ),
            shed: metrics.counter(
                "orders_calls_shed_total",
                "Calls refused with UNAVAILABLE at once because ORDERS_MAX_IN_FLIGHT calls were in flight (not in the other counters).",
            ),
        }
    }

    /// Starts timing one call; see [`CallRecord`].
    fn start<'a>(&'a self, duration: &'a Histogram) -> CallRecord<'a> {
        CallRecord {
            metrics: self,
            duration,
            started: Instant::now(),
            outcome: None,
        }
    }
}

/// Times one call and counts its outcome when dropped. tonic drops a handler's
/// future when the caller's deadline (`grpc-timeout`) passes or it hangs up, so
/// recording on drop counts those abandoned calls too (as failed), with their time.
struct CallRecord<'a> {
    metrics: &'a CallMetrics,
    duration: &'a Histogram,
    started: Instant,
    /// `None` until the call finishes: the call was abandoned.
    outcome: Option<Result<(), Code>>,
}

impl CallRecord<'_> {
    fn finish<T>(mut self, result: &Result<T, Status>) {
        self.outcome = Some(result.as_ref().map(|_| ()).map_err(Status::code));
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        self.duration.observe(self.started.elapsed());
        match self.outcome {
            Some(Ok(())) => {}
            Some(Err(
                Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::Aborted,
            )) => self.metrics.refused.inc(),
            Some(Err(_)) | None => self.metrics.failed.inc(),
        }
    }
}

impl OrdersApi {
    /// `max_in_flight`: at least 1; larger than tokio's semaphore maximum is capped.
    /// `batch`: group commit.
    pub fn new(
        store: StoreSlot,
        metrics: &Metrics,
        max_in_flight: u32,
        batch: BatchSettings,
    ) -> Self {
        let max_in_flight = usize::try_from(max_in_flight)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            store,
            metrics: CallMetrics::new(metrics),
            in_flight: Semaphore::new(max_in_flight),
            max_in_flight,
            batch,
            batch_metrics: BatchMetrics::register(metrics),
            batcher: OnceLock::new(),
        }
    }

    /// Runs one call's `work`: refused at once past `ORDERS_MAX_IN_FLIGHT` (see
    /// [`OrdersApi::admit`]), otherwise timed in `duration` with its outcome counted.
    async fn call<T>(
        &self,
        duration: &Histogram,
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let _permit = self.admit()?;
        let record = self.metrics.start(duration);
        let result = work.await;
        record.finish(&result);
        result
    }

    /// A permit for one call, or UNAVAILABLE at once when all are taken.
    fn admit(&self) -> Result<SemaphorePermit<'_>, Status> {
        self.in_flight.try_acquire().map_err(|_| {
            self.metrics.shed.inc();
            Status::unavailable(format!(
                "{OVERLOADED_PREFIX}: {} calls in flight, retry later",
                self.max_in_flight
            ))
        })
    }

    async fn create(&self, request: &Request<CreateOrderRequest>) -> Result<Created, Status> {
        let key = IdempotencyKey::from_metadata(request.metadata())
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let order =
            validate(request.get_ref()).map_err(|err| Status::invalid_argument(err.to_string()))?;
        // The insert's span: its context goes into the outbox row, so the trace goes on
        // from the event's publication.
        let insert = spans::database("INSERT", "orders");
        let trace = TraceHeaders::of(&insert);
        let created = match self.batcher() {
            Some(batcher) => batcher
                .create(order, key, trace)
                .instrument(insert.clone())
                .await
                .map_err(store_status)?,
            // Batching off (or the store not ready yet).
            None => {
                self.with_store(move |store| {
                    store.create(OrderRequest {
                        order: &order,
                        key: key.as_ref(),
                        trace: trace.as_ref(),
                    })
                })
                .instrument(insert.clone())
                .await?
            }
        };
        spans::record_order_id(&insert, created.order_id);
        spans::record_order_id(&tracing::Span::current(), created.order_id);
        tracing::debug!(
            order_id = created.order_id,
            replayed = created.replayed,
            "order created"
        );
        Ok(created)
    }

    /// The order `order_id`; with an `owner`, only if it is that user's: another
    /// user's order is NOT_FOUND with the same message as a missing one, after the
    /// same read, so a caller cannot tell the two apart.
    async fn get(&self, order_id: i64, owner: Option<i64>) -> Result<Order, Status> {
        if order_id <= 0 {
            return Err(Status::invalid_argument(format!(
                "order_id must be positive, got {order_id}"
            )));
        }
        let order = self.with_store(move |store| store.get(order_id)).await?;
        match order.filter(|order| owner.is_none_or(|owner| order.user_id == owner)) {
            Some(order) => Ok(to_proto(order)),
            None => Err(Status::not_found(format!("order {order_id} not found"))),
        }
    }

    /// The group-commit queue, started on first use once the store is ready; `None`
    /// with `ORDERS_BATCH_MAX=1` or before the store is ready.
    fn batcher(&self) -> Option<&Batcher> {
        if self.batch.max <= 1 {
            return None;
        }
        if let Some(batcher) = self.batcher.get() {
            return Some(batcher);
        }
        let store = self.store.get()?.clone();
        Some(self.batcher.get_or_init(|| {
            Batcher::start(
                store,
                self.batch.max,
                self.batch.writers,
                self.batch_metrics.clone(),
            )
        }))
    }

    /// Runs a blocking store call off the async runtime.
    async fn with_store<T, F>(&self, call: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&OrderStore) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(store) = self.store.get().cloned() else {
            return Err(Status::unavailable("database not ready yet, retry later"));
        };
        match tokio::task::spawn_blocking(move || call(&store)).await {
            Ok(result) => result.map_err(store_status),
            Err(err) => {
                tracing::error!(%err, "store task failed");
                Err(Status::internal("internal error"))
            }
        }
    }
}

fn store_status(err: StoreError) -> Status {
    match err {
        StoreError::Key(conflict @ KeyConflict::DifferentRequest(_)) => {
            Status::failed_precondition(conflict.to_string())
        }
        StoreError::Key(conflict @ KeyConflict::InProgress(_)) => {
            Status::aborted(conflict.to_string())
        }
        err if err.is_unavailable() => {
            tracing::warn!(error = %ErrorChain(&err), "database unavailable");
            Status::unavailable("database unavailable, retry later")
        }
        err => {
            tracing::error!(error = %ErrorChain(&err), "database error");
            Status::internal("internal error")
        }
    }
}

#[tonic::async_trait]
impl OrdersService for OrdersApi {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, Status> {
        let span = server_span("CreateOrder", &request);
        let created = self.call(&self.metrics.create_duration, self.create(&request));
        let Created { order_id, replayed } = traced(&span, created).await?;
        let mut response = Response::new(CreateOrderResponse { order_id });
        if replayed {
            self.metrics.replayed.inc();
            response.metadata_mut().insert(
                idempotency::REPLAYED_METADATA,
                MetadataValue::from_static("true"),
            );
        } else {
            self.metrics.created.inc();
        }
        Ok(response)
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, Status> {
        let span = server_span("GetOrder", &request);
        spans::record_order_id(&span, request.get_ref().order_id);
        let owner = owner(request.metadata())?;
        let order = self.call(
            &self.metrics.get_duration,
            self.get(request.get_ref().order_id, owner),
        );
        Ok(Response::new(GetOrderResponse {
            order: Some(traced(&span, order).await?),
        }))
    }
}

/// The server span of one call, continuing the caller's trace from its metadata.
fn server_span<T>(method: &str, request: &Request<T>) -> tracing::Span {
    let span = spans::rpc_server(SERVICE_NAME, method);
    telemetry::continue_trace(
        &span,
        TraceHeaders::from_metadata(request.metadata()).as_ref(),
    );
    span
}

/// Runs `call` in `span` and records its status there.
async fn traced<T>(
    span: &tracing::Span,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let result = call.instrument(span.clone()).await;
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    spans::record_grpc_status(span, code, true);
    result
}

/// The [`OWNER_METADATA`] of a `GetOrder` call: a positive user id, or none.
fn owner(metadata: &tonic::metadata::MetadataMap) -> Result<Option<i64>, Status> {
    let Some(value) = metadata.get(OWNER_METADATA) else {
        return Ok(None);
    };
    match value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
    {
        Some(owner) if owner > 0 => Ok(Some(owner)),
        _ => Err(Status::invalid_argument(format!(
            "{OWNER_METADATA} metadata must be a positive user id"
        ))),
    }
}

fn to_proto(order: StoredOrder) -> Order {
    let status = match order.status.as_str() {
        "new" => OrderStatus::New,
        "paid" => OrderStatus::Paid,
        "payment_failed" => OrderStatus::PaymentFailed,
        _ => OrderStatus::Unspecified,
    };
    Order {
        order_id: order.order_id,
        user_id: order.user_id,
        status: status as i32,
        items: order
            .items
            .into_iter()
            .map(|item| OrderItem {
                product_id: item.product_id,
                quantity: item.quantity,
                price: Some(Money { money: item.price }),
            })
            .collect(),
        total_amount: Some(Money {
            money: order.total_amount,
        }),
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
    }
}

fn timestamp(time: chrono::DateTime<chrono::Utc>) -> proto::Timestamp {
    proto::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_call_abandoned_before_it_finishes_is_timed_and_counted_as_failed() {
        let metrics = Metrics::new();
        let calls = CallMetrics::new(&metrics);
        // Finished: one success, one refusal, one failure; then one dropped mid-way,
        // as tonic drops a handler whose caller's deadline passed.
        calls
            .start(&calls.create_duration)
            .finish(&Ok::<_, Status>(1));
        calls
            .start(&calls.create_duration)
            .finish(&Err::<(), _>(Status::invalid_argument("bad")));
        calls
            .start(&calls.create_duration)
            .finish(&Err::<(), _>(Status::unavailable("down")));
        drop(calls.start(&calls.create_duration));

        assert_eq!(calls.create_duration.count(), 4);
        assert_eq!(calls.refused.get(), 1);
        assert_eq!(
            calls.failed.get(),
            2,
            "the unavailable call and the abandoned one"
        );
    }
}
