//! FindCoordinator (key 10, "GroupCoordinator" in 0.9/0.10), version 0. This broker
//! coordinates every group itself.

use super::{DecodeError, Decoder, Encoder, Request, Response};

#[derive(Debug)]
pub struct FindCoordinatorRequest {
    pub group_id: String,
}

impl<'a> Request<'a> for FindCoordinatorRequest {
    fn decode_fields(d: &mut Decoder<'a>, _version: i16) -> Result<Self, DecodeError> {
        let group_id = d.string("group_id")?;
        Ok(Self { group_id })
    }
}

#[derive(Debug)]
pub struct FindCoordinatorResponse {
    pub error_code: i16,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl Response for FindCoordinatorResponse {
    fn encode_fields(&self, e: &mut Encoder, _version: i16) {
        e.i16(self.error_code)
            .i32(self.node_id)
            .string(&self.host)
            .i32(self.port);
    }
}
