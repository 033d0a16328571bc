//! The log on disk, under `<data-dir>/topics/`: a directory per topic holding its
//! partition count (`partitions`) and one file per partition, `<partition>.log`, with
//! one record per entry:
//!
//! ```text
//! base_offset: i64, last_offset: i64, len: u32, crc32(entry): u32, entry: [u8; len]
//! ```
//!
//! A record is written with one `write` before the produce is acknowledged; the caller
//! decides whether to `fdatasync` too (acks=all does). On start-up a torn or corrupt
//! tail (a crash in the middle of a write) is cut off at the last whole record. A
//! topic directory without its count file is an interrupted creation, ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::partition::{Entry, Partition};
use super::{MAX_PARTITIONS, StorageError, Topic, io_err, warn_torn_tail};
use crate::message_set;

/// Bytes of a record in front of its entry.
pub(super) const RECORD_HEADER_LEN: usize = 24;

/// Appends `e` to `buf` as one record.
pub(super) fn encode_record(e: &Entry, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&e.base.to_be_bytes());
    buf.extend_from_slice(&e.last.to_be_bytes());
    buf.extend_from_slice(&(e.data.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32fast::hash(&e.data).to_be_bytes());
    buf.extend_from_slice(&e.data);
}

/// Parses partition file records; returns the entries and the length of the valid prefix.
fn decode_records(data: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    let mut expected_base = 0i64;
    while data.len() - pos >= RECORD_HEADER_LEN {
        let h = &data[pos..pos + RECORD_HEADER_LEN];
        let base = i64::from_be_bytes(h[0..8].try_into().unwrap_or([0; 8]));
        let last = i64::from_be_bytes(h[8..16].try_into().unwrap_or([0; 8]));
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_be_bytes(h[20..24].try_into().unwrap_or([0; 4]));
        let body_start = pos + RECORD_HEADER_LEN;
        if data.len() - body_start < len || base != expected_base || last < base {
            break;
        }
        let body = &data[body_start..body_start + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        let timestamp = message_set::entries(body)
            .ok()
            .and_then(|es| {
                es.first()
                    .and_then(|(_, b)| message_set::parse_message(b).ok())
            })
            .and_then(|m| m.timestamp)
            .unwrap_or(-1);
        entries.push(Entry {
            base,
            last,
            timestamp,
            data: Bytes::copy_from_slice(body),
        });
        expected_base = last + 1;
        pos = body_start + len;
    }
    (entries, pos)
}

const PARTITIONS_FILE: &str = "partitions";

pub(super) fn create_topic_on_disk(dir: &Path, name: &str, n: i32) -> Result<Topic, StorageError> {
    let tdir = dir.join(name);
    fs::create_dir_all(&tdir).map_err(io_err("create", &tdir))?;
    let topic = open_topic(&tdir, name, n)?;
    // The count file goes last and is synced, so a topic directory without it is an
    // interrupted creation that the next start-up ignores and redoes.
    let meta = tdir.join(PARTITIONS_FILE);
    let tmp = tdir.join("partitions.tmp");
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(n.to_string().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, &meta).map_err(io_err("rename", &meta))?;
    sync_dir(&tdir)?;
    sync_dir(dir)?;
    Ok(topic)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

pub(super) fn load_topic(tdir: &Path, name: &str) -> Result<Option<Topic>, StorageError> {
    let meta = tdir.join(PARTITIONS_FILE);
    let n: i32 = match fs::read_to_string(&meta) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| StorageError::BadTopicMeta(name.to_owned()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                topic = name,
                "ignoring topic directory without a partition count (interrupted creation)"
            );
            return Ok(None);
        }
        Err(e) => return Err(io_err("read", &meta)(e)),
    };
    if !(1..=MAX_PARTITIONS).contains(&n) {
        return Err(StorageError::BadTopicMeta(name.to_owned()));
    }
    open_topic(tdir, name, n).map(Some)
}

/// Topic `name` in its directory `tdir`, with its `n` partition files opened (created if
/// missing, recovered if not).
fn open_topic(tdir: &Path, name: &str, n: i32) -> Result<Topic, StorageError> {
    let mut partitions = Vec::with_capacity(n as usize);
    for p in 0..n {
        partitions.push(open_partition(tdir, p)?);
    }
    Ok(Topic {
        name: name.to_owned(),
        partitions,
    })
}

fn open_partition(tdir: &Path, p: i32) -> Result<Partition, StorageError> {
    let path = tdir.join(format!("{p}.log"));
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io_err("read", &path))?;
    let (entries, valid) = decode_records(&data);
    warn_torn_tail(&path, data.len(), valid, "cutting off");
    if valid < data.len() {
        file.set_len(valid as u64)
            .and_then(|()| file.sync_all())
            .map_err(io_err("truncate", &path))?;
    }
    Ok(Partition::new(
        entries,
        Some((Arc::new(file), valid as u64)),
    ))
}
