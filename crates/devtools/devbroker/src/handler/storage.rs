//! Storage access several APIs share: topics looked up or auto-created, the error code
//! of a failed topic, each requested partition looked up, and the `fdatasync` of the
//! files a write touched.

use lifecycle::ErrorChain;
use std::fs::File;
use std::sync::Arc;

use crate::log::{Partition, StorageError, Topic};
use crate::protocol::{PartitionEntry, TopicPartitions, error_code};
use crate::state::State;

/// The error code of a topic that cannot be had: its name is invalid, or storage failed.
pub(super) fn topic_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidTopic(_) => error_code::INVALID_TOPIC_EXCEPTION,
        _ => error_code::UNKNOWN_SERVER_ERROR,
    }
}

/// The topic, created with the broker default if missing (Kafka's
/// auto.create.topics.enable). Creation is storage work; an existing topic is not.
pub(super) async fn get_or_create_topic(
    state: &Arc<State>,
    name: &str,
) -> Result<Arc<Topic>, StorageError> {
    if let Some(t) = state.log.topic(name) {
        return Ok(t);
    }
    let name = name.to_owned();
    state
        .storage(move |s| s.log.get_or_create(&name, None))
        .await?
}

/// Answers each requested partition of `topics`: `answer` gets the topic's name, the
/// entry, and the partition (`None` when the topic or partition does not exist).
pub(super) fn answer_each<'a, P: PartitionEntry, Q>(
    state: &State,
    topics: &'a [TopicPartitions<P>],
    mut answer: impl FnMut(&'a str, &'a P, Option<&Partition>) -> Q,
) -> Vec<TopicPartitions<Q>> {
    topics
        .iter()
        .map(|t| {
            let topic = state.log.topic(&t.name);
            t.map(|p| {
                let partition = topic.as_ref().and_then(|topic| topic.partition(p.index()));
                answer(&t.name, p, partition)
            })
        })
        .collect()
}

/// `fdatasync`s each distinct file once. Blocking: run it as storage work.
pub(super) fn sync_files(files: Vec<Arc<File>>) -> bool {
    let mut distinct: Vec<Arc<File>> = Vec::new();
    for f in files {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, &f)) {
            distinct.push(f);
        }
    }
    match distinct.iter().try_for_each(|f| f.sync_data()) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "fdatasync failed");
            false
        }
    }
}
