//! ApiVersions (key 18), version 0.
//!
//! A request at a newer version is answered the way Apache Kafka answers it: a v0 body
//! with UNSUPPORTED_VERSION and the full table, so clients (librdkafka) retry at v0. The
//! response header is the plain v0 header in every case, as in Kafka.

use super::{Encoder, SUPPORTED_APIS, error_code};

pub fn encode_response(requested_version: i16) -> Encoder {
    let mut e = Encoder::new();
    let code = if requested_version == 0 {
        error_code::NONE
    } else {
        error_code::UNSUPPORTED_VERSION
    };
    e.i16(code);
    e.array(SUPPORTED_APIS, |e, &(key, min, max)| {
        e.i16(key).i16(min).i16(max);
    });
    e
}
