//! Metadata (key 3), versions 0-1.
//!
//! v0: an empty topic list means "all topics". v1: a null list means all, an empty list
//! means none; the response adds rack, controller id and the internal flag.

use super::{DecodeError, Decoder, Encoder, Request, Response};

#[derive(Debug)]
pub struct MetadataRequest {
    /// `None` = all topics.
    pub topics: Option<Vec<String>>,
}

impl<'a> Request<'a> for MetadataRequest {
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        let topics = match d.array_len("topics", 2)? {
            None => None,
            Some(n) => {
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(d.string("topic name")?);
                }
                if version == 0 && names.is_empty() {
                    None
                } else {
                    Some(names)
                }
            }
        };
        Ok(Self { topics })
    }
}

#[derive(Debug)]
pub struct MetadataResponse {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub topics: Vec<TopicMetadata>,
}

#[derive(Debug)]
pub struct TopicMetadata {
    pub error_code: i16,
    pub name: String,
    /// Partition count (ids 0..n, all led by this node).
    pub partitions: i32,
}

impl Response for MetadataResponse {
    fn encode_fields(&self, e: &mut Encoder, version: i16) {
        e.array_len(1)
            .i32(self.node_id)
            .string(&self.host)
            .i32(self.port);
        if version >= 1 {
            e.nullable_string(None); // rack
            e.i32(self.node_id); // controller_id
        }
        e.array(&self.topics, |e, t| {
            e.i16(t.error_code).string(&t.name);
            if version >= 1 {
                e.bool(false); // is_internal
            }
            e.array_len(t.partitions.max(0) as usize);
            for p in 0..t.partitions {
                e.i16(0).i32(p).i32(self.node_id);
                e.array_len(1).i32(self.node_id); // replicas
                e.array_len(1).i32(self.node_id); // isr
            }
        });
    }
}
