//! The Kafka wire protocol at the versions pre-0.11 clients speak.
//!
//! This module is pure data: it turns request bodies into typed structs and typed
//! responses into bytes. It knows nothing about logs, offsets or sockets. Each API has
//! its own module, with a [`Request`] and a [`Response`]; the primitive codec
//! ([`Decoder`], [`Encoder`]) is [`codec`]'s. Here: the API keys and versions served,
//! the error codes, the request header and the response frame.
//!
//! Field layouts follow Apache Kafka's message definitions
//! (`clients/src/main/resources/common/message/*.json`).

pub mod api_versions;
pub mod codec;
pub mod create_topics;
pub mod fetch;
pub mod find_coordinator;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;

use bytes::{BufMut, Bytes, BytesMut};

pub use codec::{DecodeError, Decoder, Encoder};

/// API keys the broker knows.
pub mod api_key {
    pub const PRODUCE: i16 = 0;
    pub const FETCH: i16 = 1;
    pub const LIST_OFFSETS: i16 = 2;
    pub const METADATA: i16 = 3;
    pub const OFFSET_COMMIT: i16 = 8;
    pub const OFFSET_FETCH: i16 = 9;
    pub const FIND_COORDINATOR: i16 = 10;
    pub const API_VERSIONS: i16 = 18;
    pub const CREATE_TOPICS: i16 = 19;
}

/// `(api key, min version, max version)` for every API served. ApiVersions answers with
/// exactly this table, and the server rejects versions outside it.
pub const SUPPORTED_APIS: &[(i16, i16, i16)] = &[
    (api_key::PRODUCE, 0, 2),
    (api_key::FETCH, 0, 3),
    (api_key::LIST_OFFSETS, 0, 1),
    (api_key::METADATA, 0, 1),
    (api_key::OFFSET_COMMIT, 0, 2),
    (api_key::OFFSET_FETCH, 0, 1),
    (api_key::FIND_COORDINATOR, 0, 0),
    (api_key::API_VERSIONS, 0, 0),
    (api_key::CREATE_TOPICS, 0, 4),
];

/// The supported version range of an API key, if the key is served at all.
pub fn supported_versions(key: i16) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Kafka error codes used by the broker.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
}

/// One topic's entries per partition: the `[name, [partition]]` nesting most requests
/// and responses share.
#[derive(Debug)]
pub struct TopicPartitions<P> {
    pub name: String,
    pub partitions: Vec<P>,
}

/// A request's entry for one partition, which names the partition it is about.
pub trait PartitionEntry {
    /// The partition number.
    fn index(&self) -> i32;
}

/// [`PartitionEntry`] for request entries whose `index` field is the partition.
macro_rules! partition_entries {
    ($($entry:ty),+) => {$(
        impl PartitionEntry for $entry {
            fn index(&self) -> i32 {
                self.index
            }
        }
    )+};
}

partition_entries!(
    fetch::FetchPartition,
    list_offsets::ListOffsetsPartition,
    offset_commit::CommitPartition
);

impl<P> TopicPartitions<P> {
    /// The same topic with `f` applied to each partition's entry (a request's entry to
    /// its answer).
    pub fn map<'a, Q>(&'a self, f: impl FnMut(&'a P) -> Q) -> TopicPartitions<Q> {
        TopicPartitions {
            name: self.name.clone(),
            partitions: self.partitions.iter().map(f).collect(),
        }
    }
}

/// One API's request body.
pub trait Request<'a>: Sized {
    /// Reads the body's fields in `version`'s layout.
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError>;

    /// Reads the whole body: its fields, and nothing after them (a request longer than
    /// its schema is malformed).
    fn decode(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        let request = Self::decode_fields(d, version)?;
        d.finish()?;
        Ok(request)
    }
}

/// One API's response body.
pub trait Response {
    /// Writes the body's fields in `version`'s layout.
    fn encode_fields(&self, e: &mut Encoder, version: i16);

    /// The whole body.
    fn encode(&self, version: i16) -> Encoder {
        let mut e = Encoder::new();
        self.encode_fields(&mut e, version);
        e
    }
}

/// The request header (v1: api key, version, correlation id, client id) common to every
/// API at these versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

impl RequestHeader {
    /// Reads the fixed 8-byte prefix only. Enough to answer (or refuse) a request even
    /// when the rest of the header uses a newer layout, e.g. ApiVersions v3's flexible header.
    pub fn decode_prefix(d: &mut Decoder<'_>) -> Result<(i16, i16, i32), DecodeError> {
        Ok((
            d.i16("api_key")?,
            d.i16("api_version")?,
            d.i32("correlation_id")?,
        ))
    }
}

/// Frames a response: int32 size, correlation id, body.
pub fn frame_response(correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + body.len());
    buf.put_i32(i32::try_from(4 + body.len()).unwrap_or(i32::MAX));
    buf.put_i32(correlation_id);
    buf.put_slice(body);
    buf.freeze()
}
