//! CreateTopics: each topic checked as Kafka checks it (name, partitions, replication
//! on one node, manual assignment) and, unless `validate_only`, created through the log.

use lifecycle::ErrorChain;
use std::collections::HashMap;
use std::sync::Arc;

use super::storage::topic_error_code;
use super::{Handled, NODE_ID};
use crate::log::{MAX_PARTITIONS, StorageError, valid_topic_name};
use crate::protocol::create_topics::{
    CreatableTopic, CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse,
};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

/// CreateTopics: creates each topic through the log (serialised with auto-creation), or
/// with `validate_only` only checks it. One result per distinct name, in request order;
/// a name given twice is refused, as Kafka does.
pub(super) async fn handle(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = CreateTopicsRequest::decode(d, version)?;
    let mut occurrences: HashMap<&str, usize> = HashMap::with_capacity(req.topics.len());
    for t in &req.topics {
        *occurrences.entry(t.name.as_str()).or_default() += 1;
    }
    let mut resp = CreateTopicsResponse::default();
    for t in &req.topics {
        // Each name is answered once: at its first occurrence, which takes it out.
        let Some(n) = occurrences.remove(t.name.as_str()) else {
            continue;
        };
        let outcome = if n > 1 {
            Err((
                error_code::INVALID_REQUEST,
                "Found multiple entries for this topic.".to_owned(),
            ))
        } else {
            create_topic(state, t, req.validate_only).await
        };
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err((code, message)) => {
                tracing::debug!(topic = %t.name, code, %message, "topic not created");
                (code, Some(message))
            }
        };
        resp.topics.push(CreatableTopicResult {
            name: t.name.clone(),
            error_code,
            error_message,
        });
    }
    Ok(Some(resp.encode(version)))
}

/// Checks one topic of a CreateTopics request and, unless `validate_only`, creates it.
/// Errors are `(error code, message)` with Kafka's codes and, mostly, its wording.
async fn create_topic(
    state: &Arc<State>,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if !valid_topic_name(&t.name) {
        return Err((
            error_code::INVALID_TOPIC_EXCEPTION,
            format!(
                "Topic name {:?} is illegal: it must be 1-249 characters of ASCII \
                 alphanumerics, '.', '_' and '-', and not '.' or '..'.",
                t.name
            ),
        ));
    }
    if state.log.topic(&t.name).is_some() {
        return Err(already_exists(&t.name));
    }
    let partitions = if t.assignments.is_empty() {
        if t.num_partitions == 0 || t.num_partitions < -1 {
            return Err((
                error_code::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.".to_owned(),
            ));
        }
        match t.replication_factor {
            -1 | 1 => {}
            r if r < 1 => {
                return Err((
                    error_code::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0.".to_owned(),
                ));
            }
            r => {
                return Err((
                    error_code::INVALID_REPLICATION_FACTOR,
                    format!("Replication factor: {r} larger than available brokers: 1."),
                ));
            }
        }
        (t.num_partitions != -1).then_some(t.num_partitions)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                error_code::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. \
                 Both cannot be used at the same time."
                    .to_owned(),
            ));
        }
        Some(check_assignment(&t.assignments)?)
    };
    let Some(partitions) = state.log.resolve_partitions(partitions) else {
        return Err((
            error_code::INVALID_PARTITIONS,
            format!("Number of partitions must be at most {MAX_PARTITIONS} on devbroker."),
        ));
    };
    if !t.configs.is_empty() {
        tracing::info!(
            topic = %t.name,
            configs = t.configs.len(),
            "ignoring topic configs: devbroker has no per-topic settings"
        );
    }
    if validate_only {
        return Ok(());
    }
    let name = t.name.clone();
    let created = state
        .storage(move |s| s.log.create(&name, Some(partitions)))
        .await
        .and_then(|r| r);
    match created {
        Ok(_) => Ok(()),
        // Created by someone else (e.g. auto-creation) since the check above.
        Err(StorageError::TopicExists(_)) => Err(already_exists(&t.name)),
        Err(e) => {
            tracing::error!(topic = %t.name, error = %ErrorChain(&e), "creating topic failed");
            Err((
                topic_error_code(&e),
                format!("Cannot create the topic: {}", ErrorChain(&e)),
            ))
        }
    }
}

fn already_exists(name: &str) -> (i16, String) {
    (
        error_code::TOPIC_ALREADY_EXISTS,
        format!("Topic '{name}' already exists."),
    )
}

/// A manual assignment on the single node: partitions 0..n, each on exactly this node.
/// Returns n.
fn check_assignment(assignments: &[(i32, Vec<i32>)]) -> Result<i32, (i16, String)> {
    let invalid = |m: String| (error_code::INVALID_REPLICA_ASSIGNMENT, m);
    for (index, brokers) in assignments {
        match brokers.as_slice() {
            [NODE_ID] => {}
            [] => {
                return Err(invalid(format!(
                    "Partition {index} has an empty replica list."
                )));
            }
            [..] if brokers.iter().all(|&b| b == NODE_ID) => {
                return Err(invalid(format!(
                    "Partition {index} lists broker {NODE_ID} more than once."
                )));
            }
            [..] => {
                let other = brokers.iter().find(|&&b| b != NODE_ID).unwrap_or(&NODE_ID);
                return Err(invalid(format!(
                    "Partition {index} is assigned to broker {other}, but the only broker \
                     is {NODE_ID}."
                )));
            }
        }
    }
    let mut indexes: Vec<i32> = assignments.iter().map(|(i, _)| *i).collect();
    indexes.sort_unstable();
    let consecutive = indexes
        .iter()
        .enumerate()
        .all(|(i, &p)| usize::try_from(p).is_ok_and(|p| p == i));
    if !consecutive {
        return Err(invalid(
            "Partitions should be a consecutive 0-based integer sequence.".to_owned(),
        ));
    }
    i32::try_from(indexes.len()).map_err(|_| {
        (
            error_code::INVALID_PARTITIONS,
            format!("Number of partitions must be at most {MAX_PARTITIONS} on devbroker."),
        )
    })
}
