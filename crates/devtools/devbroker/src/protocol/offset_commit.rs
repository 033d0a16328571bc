//! OffsetCommit (key 8), versions 0-2.
//!
//! v1 adds generation/member id and a per-partition commit timestamp; v2 replaces the
//! timestamp with a request-wide retention time. The broker has no group membership, so
//! generation and member are accepted as given (the `kafka` crate sends -1 and "").

use super::{DecodeError, Decoder, Encoder, Request, Response, TopicPartitions};

#[derive(Debug)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    /// The offsets to commit, per topic.
    pub topics: Vec<TopicPartitions<CommitPartition>>,
}

#[derive(Debug)]
pub struct CommitPartition {
    pub index: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

impl<'a> Request<'a> for OffsetCommitRequest {
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        let group_id = d.string("group_id")?;
        if version >= 1 {
            let _generation = d.i32("generation_id")?;
            let _member = d.nullable_string("member_id")?;
        }
        if version >= 2 {
            let _retention = d.i64("retention_time_ms")?;
        }
        let topics = d.topics(14, |d| {
            let index = d.i32("partition")?;
            let offset = d.i64("committed_offset")?;
            if version == 1 {
                let _timestamp = d.i64("commit_timestamp")?;
            }
            let metadata = d.nullable_string("committed_metadata")?;
            Ok(CommitPartition {
                index,
                offset,
                metadata,
            })
        })?;
        Ok(Self { group_id, topics })
    }
}

#[derive(Debug, Default)]
pub struct OffsetCommitResponse {
    /// `(partition, error_code)` per partition.
    pub topics: Vec<TopicPartitions<(i32, i16)>>,
}

impl Response for OffsetCommitResponse {
    fn encode_fields(&self, e: &mut Encoder, _version: i16) {
        e.topics(&self.topics, |e, &(index, code)| {
            e.i32(index).i16(code);
        });
    }
}
