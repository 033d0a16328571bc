//! OffsetCommit: checks each partition's commit, then writes and `fdatasync`s the valid
//! ones in one storage step before answering.

use lifecycle::ErrorChain;
use std::sync::Arc;

use super::Handled;
use super::storage::{answer_each, sync_files};
use crate::offsets::{self, Commit};
use crate::protocol::offset_commit::{OffsetCommitRequest, OffsetCommitResponse};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

pub(super) async fn handle(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = OffsetCommitRequest::decode(d, version)?;
    let mut commits = Vec::new();
    let mut codes = answer_each(state, &req.topics, |topic, p, partition| {
        let meta = p.metadata.as_deref().unwrap_or("");
        let code = if req.group_id.is_empty() {
            error_code::INVALID_GROUP_ID
        } else if partition.is_none() {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        } else if meta.len() > offsets::MAX_METADATA_LEN {
            error_code::OFFSET_METADATA_TOO_LARGE
        } else {
            commits.push(Commit {
                topic,
                partition: p.index,
                offset: p.offset,
                metadata: meta,
            });
            error_code::NONE
        };
        (p.index, code)
    });
    let ok = commits.is_empty() || commit_offsets(state, &req.group_id, &commits).await;
    if !ok {
        for t in &mut codes {
            for (_, code) in &mut t.partitions {
                if *code == error_code::NONE {
                    *code = error_code::UNKNOWN_SERVER_ERROR;
                }
            }
        }
    }
    Ok(Some(OffsetCommitResponse { topics: codes }.encode(version)))
}

/// Writes the commits and `fdatasync`s the offsets file (if any) in one storage step;
/// true once they are on disk.
async fn commit_offsets(state: &Arc<State>, group: &str, commits: &[Commit<'_>]) -> bool {
    let group = group.to_owned();
    let owned: Vec<(String, i32, i64, String)> = commits
        .iter()
        .map(|c| {
            (
                c.topic.to_owned(),
                c.partition,
                c.offset,
                c.metadata.to_owned(),
            )
        })
        .collect();
    let stored = state
        .storage(move |s| {
            let commits: Vec<Commit<'_>> = owned
                .iter()
                .map(|(topic, partition, offset, metadata)| Commit {
                    topic,
                    partition: *partition,
                    offset: *offset,
                    metadata,
                })
                .collect();
            match s.offsets.commit(&group, &commits) {
                Ok(file) => sync_files(file.into_iter().collect()),
                Err(e) => {
                    tracing::error!(group = %group, error = %ErrorChain(&e), "offset commit write failed");
                    false
                }
            }
        })
        .await;
    stored.unwrap_or_else(|e| {
        tracing::error!(error = %ErrorChain(&e), "offset commit storage step failed");
        false
    })
}
