//! Errors as the client sees them: an HTTP status and `{"error": "<message>", "code": "<gRPC code name>"}`.
//!
//! gRPC codes map to HTTP statuses as the Go gateway did ([`http_status`]); code names
//! are spelled as grpc-go spells them ([`code_name`], e.g. `Canceled`). The message of
//! a 4xx passes through from orders (it names the bad field); a 5xx gets a generic
//! message and the details go to the log, except orders' "overloaded" UNAVAILABLE,
//! whose message passes through. Every 503 carries `Retry-After: 1`.

use std::time::Duration;

use serde::Serialize;
use tonic::Code;
use warp::{
    Reply,
    http::{StatusCode, header},
    reply::Response,
};

/// How orders' UNAVAILABLE message starts when it sheds a call past
/// `ORDERS_MAX_IN_FLIGHT` (a message the gateway may pass on: it names no internals).
pub const OVERLOADED_PREFIX: &str = "orders overloaded";

/// An error answer: status, gRPC code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
}

impl ApiError {
    /// An error with the HTTP status that `code` maps to.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: http_status(code),
            code,
            message: message.into(),
        }
    }

    /// An error whose HTTP status is not the one its code maps to (413, 405, 404 for
    /// an unknown path).
    pub fn with_status(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A client mistake in the request itself: 400 `InvalidArgument`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// What the client gets for a failed call to orders. `timeout` is the configured
    /// deadline, for the message of a 504.
    pub fn from_grpc(status: &tonic::Status, timeout: Duration) -> Self {
        let code = effective_code(status);
        let http = http_status(code);
        if http.is_client_error() {
            return Self::new(code, status.message());
        }
        let message = match code {
            Code::Unavailable if status.message().starts_with(OVERLOADED_PREFIX) => {
                tracing::debug!(message = status.message(), "orders overloaded");
                status.message().to_owned()
            }
            Code::Unavailable => {
                tracing::warn!(message = status.message(), "orders unavailable");
                "orders service unavailable, retry later".to_owned()
            }
            Code::DeadlineExceeded => {
                tracing::warn!(?timeout, "orders did not answer in time");
                format!("orders service did not answer within {timeout:?}")
            }
            Code::Unimplemented => {
                tracing::warn!(
                    message = status.message(),
                    "orders does not implement the call"
                );
                "not implemented by the orders service".to_owned()
            }
            _ => {
                tracing::error!(code = ?status.code(), message = status.message(), "orders call failed");
                "internal error".to_owned()
            }
        };
        Self::new(code, message)
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            code: code_name(self.code),
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Overloaded (this gateway or orders) or orders unreachable: worth
            // retrying, after a pause rather than at once.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of an oversized body is not read: the connection cannot be reused.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// The status's code, except that tonic's own timeouts (connect, request, or the
/// server's `grpc-timeout`), which it reports as CANCELLED "Timeout expired", count
/// as DEADLINE_EXCEEDED: for the client it is a deadline all the same.
pub fn effective_code(status: &tonic::Status) -> Code {
    match status.code() {
        Code::Cancelled if status.message() == tonic::TimeoutExpired(()).to_string() => {
            Code::DeadlineExceeded
        }
        code => code,
    }
}

/// The HTTP status a gRPC code maps to.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code's name as grpc-go's `codes.Code.String()` spells it (the Go gateway's `code`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ApiError::from_grpc` with a 2 s deadline.
    fn from_orders(status: tonic::Status) -> ApiError {
        ApiError::from_grpc(&status, Duration::from_secs(2))
    }

    #[test]
    fn maps_codes_to_statuses() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::OutOfRange, 400),
            (Code::FailedPrecondition, 400),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::PermissionDenied, 500),
            (Code::Cancelled, 500),
        ];
        for (code, status) in cases {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn client_errors_keep_the_message_server_errors_do_not() {
        let bad = from_orders(tonic::Status::invalid_argument(
            "user_id must be positive, got 0",
        ));
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.message, "user_id must be positive, got 0");
        let internal = from_orders(tonic::Status::internal("relation \"x\" does not exist"));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(internal.message, "internal error");
        let late = from_orders(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(
            (late.status, late.code),
            (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded)
        );
    }

    #[test]
    fn every_503_says_when_to_retry_and_orders_overload_is_named() {
        let overloaded = from_orders(tonic::Status::unavailable(
            "orders overloaded: 256 calls in flight, retry later",
        ));
        assert_eq!(
            overloaded.message,
            "orders overloaded: 256 calls in flight, retry later"
        );
        let down = from_orders(tonic::Status::unavailable("tcp connect error"));
        assert_eq!(down.message, "orders service unavailable, retry later");
        for error in [overloaded, down] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .map(|v| v.as_bytes()),
                Some(&b"1"[..])
            );
        }
        let late = ApiError::new(Code::DeadlineExceeded, "late").into_response();
        assert!(late.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn names_codes_the_go_way() {
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::DeadlineExceeded), "DeadlineExceeded");
    }
}
