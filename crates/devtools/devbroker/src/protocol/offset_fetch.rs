//! OffsetFetch (key 9), versions 0-1 (v0 meant ZooKeeper storage, v1 Kafka storage; here
//! both read the same store).

use super::{DecodeError, Decoder, Encoder, Request, Response, TopicPartitions};

#[derive(Debug)]
pub struct OffsetFetchRequest {
    pub group_id: String,
    /// The partition indexes asked for, per topic.
    pub topics: Vec<TopicPartitions<i32>>,
}

impl<'a> Request<'a> for OffsetFetchRequest {
    fn decode_fields(d: &mut Decoder<'a>, _version: i16) -> Result<Self, DecodeError> {
        let group_id = d.string("group_id")?;
        let topics = d.topics(4, |d| d.i32("partition"))?;
        Ok(Self { group_id, topics })
    }
}

#[derive(Debug)]
pub struct OffsetFetchPartition {
    pub index: i32,
    /// -1 when the group has no committed offset.
    pub offset: i64,
    pub metadata: String,
    pub error_code: i16,
}

#[derive(Debug, Default)]
pub struct OffsetFetchResponse {
    pub topics: Vec<TopicPartitions<OffsetFetchPartition>>,
}

impl Response for OffsetFetchResponse {
    fn encode_fields(&self, e: &mut Encoder, _version: i16) {
        e.topics(&self.topics, |e, p| {
            // Metadata is sent as "" rather than null: some old clients (the `kafka`
            // crate) decode it as a non-nullable string.
            e.i32(p.index)
                .i64(p.offset)
                .string(&p.metadata)
                .i16(p.error_code);
        });
    }
}
