//! Request handling: decodes one request frame's header and hands the body to its
//! API's module, which decodes it (`protocol::<api>`), runs it against the log and the
//! offset store, and encodes the response. This module only dispatches, by API key
//! and version ([`handle`]); each API has the module of the same name as its codec's
//! under `protocol/`, and [`storage`] holds the storage access several share.

mod api_versions;
mod create_topics;
mod fetch;
mod find_coordinator;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod produce;
mod storage;

use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::protocol::{
    DecodeError, Decoder, Encoder, RequestHeader, api_key, frame_response, supported_versions,
};
use crate::state::State;

/// The single node's id.
pub const NODE_ID: i32 = 0;

/// Where clients should reach this broker, as seen on one connection.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub host: String,
    pub port: i32,
}

/// What to do after a request.
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0.
    NoResponse,
    /// The request cannot be answered (malformed, unknown key/version): close.
    Close(String),
}

/// Answers one request frame (header and body) on a connection advertised as `me`;
/// `shutdown` ends a long-polling fetch early.
pub async fn handle(
    state: &Arc<State>,
    me: &Advertised,
    frame: &[u8],
    shutdown: &CancellationToken,
) -> Outcome {
    let mut d = Decoder::new(frame);
    let (key, version, correlation_id) = match RequestHeader::decode_prefix(&mut d) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("bad request header: {e}")),
    };
    if key == api_key::API_VERSIONS {
        // Any version gets an answer, the way Kafka does it (see protocol::api_versions).
        let body = api_versions::handle(version).into_bytes();
        return Outcome::Respond(frame_response(correlation_id, &body));
    }
    match supported_versions(key) {
        None => return Outcome::Close(format!("unknown api key {key}")),
        Some((min, max)) if version < min || version > max => {
            return Outcome::Close(format!(
                "unsupported version {version} of api key {key} (supported {min}-{max})"
            ));
        }
        Some(_) => {}
    }
    if let Err(e) = d.nullable_string("client_id") {
        return Outcome::Close(format!("bad request header: {e}"));
    }
    let result = match key {
        api_key::PRODUCE => produce::handle(state, &mut d, version).await,
        api_key::FETCH => fetch::handle(state, &mut d, version, shutdown).await,
        api_key::LIST_OFFSETS => list_offsets::handle(state, &mut d, version),
        api_key::METADATA => metadata::handle(state, me, &mut d, version).await,
        api_key::OFFSET_COMMIT => offset_commit::handle(state, &mut d, version).await,
        api_key::OFFSET_FETCH => offset_fetch::handle(state, &mut d, version),
        api_key::FIND_COORDINATOR => find_coordinator::handle(me, &mut d, version),
        api_key::CREATE_TOPICS => create_topics::handle(state, &mut d, version).await,
        _ => return Outcome::Close(format!("unknown api key {key}")),
    };
    match result {
        Ok(Some(body)) => Outcome::Respond(frame_response(correlation_id, &body.into_bytes())),
        Ok(None) => Outcome::NoResponse,
        Err(e) => Outcome::Close(format!("malformed request (api key {key} v{version}): {e}")),
    }
}

/// What an API's handler gives back: the response body, none (acks=0), or the reason
/// the request cannot be decoded.
type Handled = Result<Option<Encoder>, DecodeError>;

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::log::Log;
    use crate::message_set;
    use crate::offsets::OffsetStore;

    fn raw(key: i16, version: i16, body: Encoder) -> Vec<u8> {
        let mut e = Encoder::new();
        e.i16(key).i16(version).i32(7).string("unit-test");
        let mut f = e.into_bytes().to_vec();
        f.extend_from_slice(&body.into_bytes());
        f
    }

    /// Produce v0, acks=all, one message to `topic` partition 0.
    fn produce_frame(topic: &str) -> Vec<u8> {
        let msg = message_set::build_message(0, 0, None, None, Some(b"v"));
        let set = message_set::encode_entry(0, &msg);
        let mut e = Encoder::new();
        e.i16(-1).i32(5_000);
        e.array(&[topic], |e, t| {
            e.string(t);
            e.array(&[0i32], |e, p| {
                e.i32(*p).bytes_chunks(std::slice::from_ref(&set));
            });
        });
        raw(api_key::PRODUCE, 0, e)
    }

    /// Fetch v0 of `topic` partition 0 from offset 0, not waiting.
    fn fetch_frame(topic: &str) -> Vec<u8> {
        let mut e = Encoder::new();
        e.i32(-1).i32(0).i32(1);
        e.array(&[topic], |e, t| {
            e.string(t);
            e.array(&[0i32], |e, p| {
                e.i32(*p).i64(0).i32(1 << 20);
            });
        });
        raw(api_key::FETCH, 0, e)
    }

    /// Metadata v0 naming `topic` (which creates it).
    fn metadata_frame(topic: &str) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(&[topic], |e, t| {
            e.string(t);
        });
        raw(api_key::METADATA, 0, e)
    }

    /// Log end of `topic` partition 0.
    fn log_end(state: &State, topic: &str) -> i64 {
        state
            .log
            .topic(topic)
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end()
    }

    /// A current-thread runtime has one worker: if a produce blocked it on the disk, no
    /// other request could run until the disk answered.
    #[tokio::test]
    async fn a_stalled_disk_write_holds_up_only_its_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(Some(dir.path()), 1, &[("t".to_owned(), 1)]).unwrap();
        let offsets = OffsetStore::open(Some(dir.path())).unwrap();
        let state = Arc::new(State::new(log, offsets, 1 << 20));
        let me = Advertised {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let shutdown = CancellationToken::new();

        let topic = state.log.topic("t").unwrap();
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let staller = std::thread::spawn(move || {
            topic
                .partition(0)
                .unwrap()
                .stall_appends(&held_tx, &release_rx);
        });
        held.recv().unwrap();

        let produce = tokio::spawn({
            let (state, me, shutdown) = (state.clone(), me.clone(), shutdown.clone());
            async move { handle(&state, &me, &produce_frame("t"), &shutdown).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!produce.is_finished(), "the produce waits for its write");

        // Meanwhile a fetch of the same partition and a topic creation are answered.
        let fetched = handle(&state, &me, &fetch_frame("t"), &shutdown).await;
        assert!(matches!(fetched, Outcome::Respond(_)));
        let created = handle(&state, &me, &metadata_frame("other"), &shutdown).await;
        assert!(matches!(created, Outcome::Respond(_)));
        assert!(state.log.topic("other").is_some());
        assert_eq!(log_end(&state, "t"), 0);

        release.send(()).unwrap();
        staller.join().unwrap();
        let produced = tokio::time::timeout(Duration::from_secs(10), produce)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(produced, Outcome::Respond(_)));
        assert_eq!(log_end(&state, "t"), 1);
    }
}
