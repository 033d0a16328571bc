//! CreateTopics (key 19), versions 0-4 (the non-flexible ones).
//!
//! v1 adds `validate_only` to the request and a per-topic error message to the response;
//! v2 adds the response's leading throttle time; v3 and v4 change nothing on the wire
//! (v4 lets clients send -1 partitions / replication factor without an assignment,
//! which this broker accepts at every version).

use super::{DecodeError, Decoder, Encoder, Request, Response};

#[derive(Debug)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    /// Ignored: creation on one node is done before the answer.
    pub timeout_ms: i32,
    /// v1+: check only, create nothing.
    pub validate_only: bool,
}

#[derive(Debug)]
pub struct CreatableTopic {
    pub name: String,
    /// -1 = the broker default (or the assignment's size).
    pub num_partitions: i32,
    /// -1 = the broker default (1 here).
    pub replication_factor: i16,
    /// Manual assignment: `(partition index, broker ids)`.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// `(name, value)`.
    pub configs: Vec<(String, Option<String>)>,
}

impl<'a> Request<'a> for CreateTopicsRequest {
    fn decode_fields(d: &mut Decoder<'a>, version: i16) -> Result<Self, DecodeError> {
        // Smallest topic: name length 2 + partitions 4 + replication 2 + two arrays 4+4.
        let topics = d.array_of("topics", 16, |d| {
            let name = d.string("topic name")?;
            let num_partitions = d.i32("num_partitions")?;
            let replication_factor = d.i16("replication_factor")?;
            let assignments = d.array_of("assignments", 8, |d| {
                let index = d.i32("partition_index")?;
                let brokers = d.array_of("broker_ids", 4, |d| d.i32("broker id"))?;
                Ok((index, brokers))
            })?;
            let configs = d.array_of("configs", 4, |d| {
                Ok((d.string("config name")?, d.nullable_string("config value")?))
            })?;
            Ok(CreatableTopic {
                name,
                num_partitions,
                replication_factor,
                assignments,
                configs,
            })
        })?;
        let timeout_ms = d.i32("timeout_ms")?;
        let validate_only = if version >= 1 {
            d.bool("validate_only")?
        } else {
            false
        };
        Ok(Self {
            topics,
            timeout_ms,
            validate_only,
        })
    }
}

#[derive(Debug, Default)]
pub struct CreateTopicsResponse {
    pub topics: Vec<CreatableTopicResult>,
}

#[derive(Debug)]
pub struct CreatableTopicResult {
    pub name: String,
    pub error_code: i16,
    /// v1+; `None` on success.
    pub error_message: Option<String>,
}

impl Response for CreateTopicsResponse {
    fn encode_fields(&self, e: &mut Encoder, version: i16) {
        if version >= 2 {
            e.i32(0); // throttle_time_ms
        }
        e.array(&self.topics, |e, t| {
            e.string(&t.name).i16(t.error_code);
            if version >= 1 {
                e.nullable_string(t.error_message.as_deref());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_body(validate_only: u8) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array_len(1).string("t").i32(3).i16(1);
        e.array_len(1).i32(0).array_len(1).i32(0); // assignments
        e.array_len(2).string("a").string("1").string("b").i16(-1); // configs
        e.i32(5000).i8(validate_only as i8);
        e.into_bytes().to_vec()
    }

    #[test]
    fn decodes_every_field() {
        let body = v1_body(1);
        let req = CreateTopicsRequest::decode(&mut Decoder::new(&body), 1).unwrap();
        assert!(req.validate_only);
        assert_eq!(req.timeout_ms, 5000);
        let t = &req.topics[0];
        assert_eq!(
            (t.name.as_str(), t.num_partitions, t.replication_factor),
            ("t", 3, 1)
        );
        assert_eq!(t.assignments, vec![(0, vec![0])]);
        assert_eq!(
            t.configs,
            vec![("a".into(), Some("1".into())), ("b".into(), None)]
        );
        // v0 has no validate_only: the extra byte is trailing garbage.
        assert_eq!(
            CreateTopicsRequest::decode(&mut Decoder::new(&body), 0).unwrap_err(),
            DecodeError::TrailingBytes(1)
        );
        // Truncated anywhere is an error, never a panic.
        for cut in 0..body.len() {
            assert!(CreateTopicsRequest::decode(&mut Decoder::new(&body[..cut]), 1).is_err());
        }
    }

    #[test]
    fn response_layouts() {
        let resp = CreateTopicsResponse {
            topics: vec![CreatableTopicResult {
                name: "t".into(),
                error_code: 36,
                error_message: Some("m".into()),
            }],
        };
        let v0 = resp.encode(0).into_bytes();
        assert_eq!(&v0[..], &[0, 0, 0, 1, 0, 1, b't', 0, 36]);
        let v1 = resp.encode(1).into_bytes();
        assert_eq!(&v1[..], &[0, 0, 0, 1, 0, 1, b't', 0, 36, 0, 1, b'm']);
        let v2 = resp.encode(2).into_bytes();
        assert_eq!(&v2[..4], &[0, 0, 0, 0]);
        assert_eq!(&v2[4..], &v1[..]);
    }
}
