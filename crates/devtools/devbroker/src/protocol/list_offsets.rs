//! ListOffsets (key 2), versions 0-1.
//!
//! v0 asks for up to `max_num_offsets` offsets before a time and gets a list back; v1 asks
//! for one offset per partition and gets it with its timestamp.

use super::{DecodeError, Decoder, Encoder, Request, Response, TopicPartitions};

/// The special timestamps: latest (-1) and earliest (-2).
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

#[derive(Debug)]
pub struct ListOffsetsRequest {
    /// The partitions to look up, per topic.
    pub topics: Vec<TopicPartitions<ListOffsetsPartition>>,
}

#[derive(Debug)]
pub struct ListOffsetsPartition {
    pub index: i32,
    pub timestamp: i64,
    /// v0 only; 1 for v1.
    pub max_num_offsets: i32,
}

impl<'a> Request<'a> for ListOffsetsRequest {
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        let _replica_id = d.i32("replica_id")?;
        let topics = d.topics(12, |d| {
            let index = d.i32("partition")?;
            let timestamp = d.i64("timestamp")?;
            let max_num_offsets = if version == 0 {
                d.i32("max_num_offsets")?
            } else {
                1
            };
            Ok(ListOffsetsPartition {
                index,
                timestamp,
                max_num_offsets,
            })
        })?;
        Ok(Self { topics })
    }
}

#[derive(Debug, Default)]
pub struct ListOffsetsResponse {
    /// The offsets found, per topic.
    pub topics: Vec<TopicPartitions<ListOffsetsPartitionResponse>>,
}

#[derive(Debug)]
pub struct ListOffsetsPartitionResponse {
    pub index: i32,
    pub error_code: i16,
    /// The found offset (-1 if none).
    pub offset: i64,
    /// The found message's timestamp (-1 if unknown). v1 only.
    pub timestamp: i64,
    /// v0 only: how many offsets the client allowed (0 means an empty list).
    pub max_num_offsets: i32,
}

impl Response for ListOffsetsResponse {
    fn encode_fields(&self, e: &mut Encoder, version: i16) {
        e.topics(&self.topics, |e, p| {
            e.i32(p.index).i16(p.error_code);
            if version == 0 {
                if p.offset >= 0 && p.max_num_offsets > 0 {
                    e.array_len(1).i64(p.offset);
                } else {
                    e.array_len(0);
                }
            } else {
                e.i64(p.timestamp).i64(p.offset);
            }
        });
    }
}
