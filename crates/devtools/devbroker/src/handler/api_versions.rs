//! ApiVersions: the table of the APIs and versions served. Any version gets an answer
//! (a v0 body), the way Kafka answers it: see [`crate::protocol::api_versions`].

use crate::protocol::{Encoder, api_versions};

pub(super) fn handle(version: i16) -> Encoder {
    api_versions::encode_response(version)
}
