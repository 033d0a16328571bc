//! `POST /orders` and `GET /orders/{id}`: each takes a permit of the in-flight bound
//! first ([`crate::overload`]), then calls orders. The request body is read up to
//! [`MAX_BODY`].

use std::pin::pin;

use proto::v1::{CreateOrderRequest, GetOrderRequest};
use tokio_stream::StreamExt;
use tonic::{
    Code,
    metadata::{MetadataMap, MetadataValue},
};
use warp::{
    Buf, Reply, Stream,
    http::{StatusCode, header::HeaderValue},
    reply::Response,
};

use super::Gateway;
use crate::{
    auth::{Caller, OWNER_METADATA},
    balance::Repeat,
    errors::ApiError,
    idempotency_key::{
        IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_METADATA, IDEMPOTENT_REPLAYED_HEADER,
        IDEMPOTENT_REPLAYED_METADATA, parse_idempotency_key,
    },
    rest::{self, CreateOrderAnswer, GetOrderAnswer, OrderBody},
};

/// Largest accepted request body: 1 MiB.
pub const MAX_BODY: u64 = 1024 * 1024;
/// How much of an oversized body is read (and discarded) before answering 413, so
/// the client, still sending, sees the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 16 * MAX_BODY;

impl Gateway {
    /// `POST /orders`. `idempotency_key` is every value of the request's
    /// `Idempotency-Key` header: at most one valid key, forwarded to orders as the
    /// `idempotency-key` metadata. A replayed answer carries `Idempotent-Replayed:
    /// true`; the key reused for another request is 422 (orders' FAILED_PRECONDITION),
    /// the key's first request still in progress 409 (ABORTED).
    pub(crate) async fn create_order<S, B>(
        self,
        caller: Caller,
        content_length: Option<u64>,
        idempotency_key: Vec<HeaderValue>,
        body: S,
    ) -> Response
    where
        S: Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        // Before the body is read: a shed request costs next to nothing.
        let _admitted = match self.in_flight.try_admit() {
            Ok(admitted) => admitted,
            Err(shed) => return shed.into_response(),
        };
        let result = async {
            let key = parse_idempotency_key(idempotency_key.iter().map(HeaderValue::as_bytes))?;
            let body = read_body(content_length, body).await?;
            let order = match caller {
                Caller::Anonymous => rest::parse_create_order(&body)?,
                Caller::User(user) => rest::parse_create_order_as(&body, user)?,
            };
            let message = CreateOrderRequest::from(order);
            let mut metadata = MetadataMap::new();
            if let Some(key) = &key {
                // Checked above: visible ASCII, which is valid metadata.
                let value = MetadataValue::try_from(key.as_str()).map_err(|err| {
                    ApiError::invalid_argument(format!("{IDEMPOTENCY_KEY_HEADER} header: {err}"))
                })?;
                metadata.insert(IDEMPOTENCY_KEY_METADATA, value);
            }
            // Keyed, orders answers a repeat with the same order: safe to send to
            // another replica after a failure; unkeyed, a repeat could store it twice.
            let repeat = if key.is_some() {
                Repeat::Safe
            } else {
                Repeat::Once
            };
            let response = self
                .call_with(
                    "CreateOrder",
                    repeat,
                    message,
                    metadata,
                    |mut client, request| async move { client.create_order(request).await },
                )
                .await
                .map_err(|err| match err.code {
                    // The only FAILED_PRECONDITION of CreateOrder: the key was used
                    // for another request: 422.
                    Code::FailedPrecondition if key.is_some() => ApiError::with_status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        err.code,
                        err.message,
                    ),
                    _ => err,
                })?;
            telemetry::spans::record_order_id(
                &tracing::Span::current(),
                response.get_ref().order_id,
            );
            let replayed = response
                .metadata()
                .get(IDEMPOTENT_REPLAYED_METADATA)
                .is_some_and(|value| value == "true");
            Ok::<_, ApiError>((
                CreateOrderAnswer {
                    order_id: response.into_inner().order_id,
                },
                replayed,
            ))
        };
        match result.await {
            Ok((created, replayed)) => {
                let mut response = warp::reply::json(&created).into_response();
                if replayed {
                    response
                        .headers_mut()
                        .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
                }
                response
            }
            Err(err) => err.into_response(),
        }
    }

    /// `GET /orders/{id}`; an empty `id` (`GET /orders/`) is a bad one, 400. An
    /// authenticated caller's user goes with the call ([`OWNER_METADATA`]): orders
    /// answers another user's order as a missing one.
    pub(crate) async fn get_order(self, caller: Caller, id: String) -> Response {
        let _admitted = match self.in_flight.try_admit() {
            Ok(admitted) => admitted,
            Err(shed) => return shed.into_response(),
        };
        let result = async {
            let order_id = rest::parse_order_id(&id)?;
            telemetry::spans::record_order_id(&tracing::Span::current(), order_id);
            let mut metadata = MetadataMap::new();
            if let Caller::User(user) = caller {
                metadata.insert(OWNER_METADATA, MetadataValue::from(user));
            }
            // A read: safe to repeat on another replica.
            let message = GetOrderRequest { order_id };
            let response = self
                .call_with(
                    "GetOrder",
                    Repeat::Safe,
                    message,
                    metadata,
                    |mut client, request| async move { client.get_order(request).await },
                )
                .await?
                .into_inner();
            let order = response.order.ok_or_else(|| {
                tracing::error!(order_id, "orders answered GetOrder without an order");
                ApiError::new(Code::Internal, "internal error")
            })?;
            Ok(GetOrderAnswer {
                order: OrderBody::from(order),
            })
        };
        answer(result.await)
    }
}

fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Reads at most [`MAX_BODY`] bytes. A larger body (by its `content-length`, or as
/// it streams in when chunked) is 413.
async fn read_body<S, B>(content_length: Option<u64>, body: S) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("request body is larger than {MAX_BODY} bytes (1 MiB)"),
        )
    };
    let declared = content_length.unwrap_or(0);
    if declared > DRAIN_LIMIT {
        return Err(too_large());
    }
    let mut over = declared > MAX_BODY;
    let capacity = usize::try_from(declared.min(MAX_BODY)).unwrap_or(0);
    let mut data = Vec::with_capacity(capacity);
    let mut read: u64 = 0;
    let mut body = pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|err| {
            ApiError::invalid_argument(format!("cannot read the request body: {err}"))
        })?;
        read = read.saturating_add(chunk.remaining() as u64);
        if read > MAX_BODY {
            over = true;
        }
        if read > DRAIN_LIMIT {
            break;
        }
        while !over && chunk.has_remaining() {
            let part = chunk.chunk();
            data.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    if over { Err(too_large()) } else { Ok(data) }
}
