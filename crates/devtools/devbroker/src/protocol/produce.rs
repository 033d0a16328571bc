//! Produce (key 0), versions 0-2.
//!
//! v0 and v1 differ only in the response (v1 adds throttle time); v2 adds the log append
//! time per partition. All three carry message sets of format v0/v1.

use super::{DecodeError, Decoder, Encoder, Request, Response, TopicPartitions};

#[derive(Debug)]
pub struct ProduceRequest<'a> {
    pub acks: i16,
    pub timeout_ms: i32,
    /// The produced message sets, per topic.
    pub topics: Vec<TopicPartitions<PartitionData<'a>>>,
}

#[derive(Debug)]
pub struct PartitionData<'a> {
    pub index: i32,
    /// The raw message set, validated later by `crate::message_set`.
    pub records: Option<&'a [u8]>,
}

impl<'a> Request<'a> for ProduceRequest<'a> {
    fn decode_fields(d: &mut Decoder<'a>, _version: i16) -> Result<Self, DecodeError> {
        let acks = d.i16("acks")?;
        let timeout_ms = d.i32("timeout_ms")?;
        let topics = d.topics(8, |d| {
            Ok(PartitionData {
                index: d.i32("partition")?,
                records: d.nullable_bytes("records")?,
            })
        })?;
        Ok(Self {
            acks,
            timeout_ms,
            topics,
        })
    }
}

#[derive(Debug, Default)]
pub struct ProduceResponse {
    /// The produce results, per topic.
    pub topics: Vec<TopicPartitions<PartitionResponse>>,
}

#[derive(Debug)]
pub struct PartitionResponse {
    pub index: i32,
    pub error_code: i16,
    pub base_offset: i64,
}

impl Response for ProduceResponse {
    fn encode_fields(&self, e: &mut Encoder, version: i16) {
        e.topics(&self.topics, |e, p| {
            e.i32(p.index).i16(p.error_code).i64(p.base_offset);
            if version >= 2 {
                // log_append_time: -1 means the producer's CreateTime is kept.
                e.i64(-1);
            }
        });
        if version >= 1 {
            e.i32(0); // throttle_time_ms
        }
    }
}
