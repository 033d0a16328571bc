//! Fetch (key 1), versions 0-3.
//!
//! v1 adds throttle time to the response, v2 allows message format v1 in the response,
//! v3 adds a response-wide `max_bytes`.

use bytes::Bytes;

use super::{DecodeError, Decoder, Encoder, Request, Response, TopicPartitions};

#[derive(Debug)]
pub struct FetchRequest {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    /// Response-wide limit (v3+); `i32::MAX` for older versions.
    pub max_bytes: i32,
    /// The partitions to read, per topic.
    pub topics: Vec<TopicPartitions<FetchPartition>>,
}

#[derive(Debug)]
pub struct FetchPartition {
    pub index: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
}

impl<'a> Request<'a> for FetchRequest {
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        let _replica_id = d.i32("replica_id")?;
        let max_wait_ms = d.i32("max_wait_ms")?;
        let min_bytes = d.i32("min_bytes")?;
        let max_bytes = if version >= 3 {
            d.i32("max_bytes")?
        } else {
            i32::MAX
        };
        let topics = d.topics(16, |d| {
            Ok(FetchPartition {
                index: d.i32("partition")?,
                fetch_offset: d.i64("fetch_offset")?,
                max_bytes: d.i32("partition_max_bytes")?,
            })
        })?;
        Ok(Self {
            max_wait_ms,
            min_bytes,
            max_bytes,
            topics,
        })
    }
}

#[derive(Debug, Default)]
pub struct FetchResponse {
    /// The data read, per topic.
    pub topics: Vec<TopicPartitions<FetchPartitionResponse>>,
}

#[derive(Debug)]
pub struct FetchPartitionResponse {
    pub index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    /// The message set as chunks (stored entries are served without copying them twice).
    pub records: Vec<Bytes>,
}

impl Response for FetchResponse {
    fn encode_fields(&self, e: &mut Encoder, version: i16) {
        if version >= 1 {
            e.i32(0); // throttle_time_ms
        }
        e.topics(&self.topics, |e, p| {
            e.i32(p.index)
                .i16(p.error_code)
                .i64(p.high_watermark)
                .bytes_chunks(&p.records);
        });
    }
}
