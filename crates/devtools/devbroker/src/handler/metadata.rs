//! Metadata: this node as the only broker and leader, and the topics asked for (all
//! of them, or the named ones, which are auto-created).

use lifecycle::ErrorChain;
use std::sync::Arc;

use super::storage::{get_or_create_topic, topic_error_code};
use super::{Advertised, Handled, NODE_ID};
use crate::protocol::metadata::{MetadataRequest, MetadataResponse, TopicMetadata};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

pub(super) async fn handle(
    state: &Arc<State>,
    me: &Advertised,
    d: &mut Decoder<'_>,
    version: i16,
) -> Handled {
    let req = MetadataRequest::decode(d, version)?;
    let topics = match req.topics {
        None => state
            .log
            .topic_list()
            .into_iter()
            .map(|(name, partitions)| TopicMetadata {
                error_code: error_code::NONE,
                name,
                partitions,
            })
            .collect(),
        // Naming a topic creates it, like Kafka's auto.create.topics.enable.
        Some(names) => {
            let mut topics = Vec::with_capacity(names.len());
            for name in names {
                topics.push(match get_or_create_topic(state, &name).await {
                    Ok(t) => TopicMetadata {
                        error_code: error_code::NONE,
                        partitions: t.partition_count(),
                        name,
                    },
                    Err(e) => {
                        tracing::warn!(topic = %name, error = %ErrorChain(&e), "metadata for a topic that cannot be created");
                        TopicMetadata {
                            error_code: topic_error_code(&e),
                            partitions: 0,
                            name,
                        }
                    }
                });
            }
            topics
        }
    };
    let resp = MetadataResponse {
        node_id: NODE_ID,
        host: me.host.clone(),
        port: me.port,
        topics,
    };
    Ok(Some(resp.encode(version)))
}
