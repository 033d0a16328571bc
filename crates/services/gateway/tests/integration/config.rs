//! An invalid setting stops the real gateway binary with a non-zero exit and a
//! message that names the variable.

use crate::common;

/// Each `(variable, value, message part)` stops the binary; one row a line.
#[rustfmt::skip]
const BAD_SETTINGS: &[(&str, &str, &str)] = &[
    ("GATEWAY_ORDERS_TIMEOUT", "soon", "expected a Go duration"),
    ("GATEWAY_ORDERS_TIMEOUT", "-1s", "must not be negative"),
    ("GATEWAY_ORDERS_TIMEOUT", "0", "must be greater than 0"),
    ("ORDERS_GRPC_ADDR", "nonsense", "expected host:port or http://host:port"),
    ("ORDERS_GRPC_ADDR", "ftp://orders:1", "unsupported scheme"),
    ("ORDERS_GRPC_ADDR", "https://orders:50051", "https is not supported"),
    ("GATEWAY_HTTP_ADDR", "x:y", "is not a number from 0 to 65535"),
    ("GATEWAY_MAX_IN_FLIGHT", "0", "must be at least 1"),
    ("GATEWAY_MAX_IN_FLIGHT", "lots", ""),
    ("GATEWAY_MAX_IN_FLIGHT", "-1", ""),
    ("GATEWAY_READ_HEADER_TIMEOUT", "soon", "expected a Go duration"),
    ("GATEWAY_READ_HEADER_TIMEOUT", "0", "must be greater than 0"),
    ("GATEWAY_IDLE_TIMEOUT", "-5s", "must not be negative"),
    ("GATEWAY_IDLE_TIMEOUT", "0s", "must be greater than 0"),
];

#[test]
fn invalid_values_stop_the_binary_naming_the_variable() {
    common::assert_settings_refused(BAD_SETTINGS);
}
