//! FindCoordinator (key 10, "GroupCoordinator" in 0.9/0.10), version 0. This broker
//! coordinates every group itself.

use super::{DecodeError, Decoder, Encoder};

#[derive(Debug)]
pub struct FindCoordinatorRequest {
    pub group_id: String,
}

impl FindCoordinatorRequest {
    pub fn decode(d: &mut Decoder<'_>, _version: i16) -> Result<Self, DecodeError> {
        let group_id = d.string("group_id")?;
        d.finish()?;
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

impl FindCoordinatorResponse {
    pub fn encode(&self, _version: i16) -> Encoder {
        let mut e = Encoder::new();
        e.i16(self.error_code)
            .i32(self.node_id)
            .string(&self.host)
            .i32(self.port);
        e
    }
}
