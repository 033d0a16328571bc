//! FindCoordinator: this node coordinates every group.

use super::{Advertised, Handled, NODE_ID};
use crate::protocol::find_coordinator::{FindCoordinatorRequest, FindCoordinatorResponse};
use crate::protocol::{Decoder, Request, Response, error_code};

pub(super) fn handle(me: &Advertised, d: &mut Decoder<'_>, version: i16) -> Handled {
    let _req = FindCoordinatorRequest::decode(d, version)?;
    let resp = FindCoordinatorResponse {
        error_code: error_code::NONE,
        node_id: NODE_ID,
        host: me.host.clone(),
        port: me.port,
    };
    Ok(Some(resp.encode(version)))
}
