//! Committed consumer offsets per group, topic and partition.
//!
//! In memory by default. With a data directory every commit is appended to
//! `<data-dir>/offsets.log` and `fdatasync`ed before the OffsetCommit response is sent,
//! one record per partition:
//!
//! ```text
//! len: u32, crc32(payload): u32, payload = group, topic (i16-length strings),
//! partition: i32, offset: i64, metadata (i16-length string)
//! ```
//!
//! On start-up the file is replayed (last record per key wins, a torn tail is ignored)
//! and rewritten compacted through a temporary file and a rename.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::log::{StorageError, io_err, lock, warn_torn_tail};

const FILE_NAME: &str = "offsets.log";
/// Kafka's default `offset.metadata.max.bytes`.
pub const MAX_METADATA_LEN: usize = 4096;

type Key = (String, String, i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
}

pub struct OffsetStore {
    /// Held across the file write, so the file and the map see commits in one order.
    /// Never taken by readers.
    writer: Mutex<()>,
    /// The committed offsets; locked only briefly, never across file I/O.
    map: Mutex<HashMap<Key, Committed>>,
    file: Option<Arc<File>>,
}

/// One offset to commit.
pub struct Commit<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub metadata: &'a str,
}

impl OffsetStore {
    pub fn open(data_dir: Option<&Path>) -> Result<Self, StorageError> {
        let (map, file) = match data_dir {
            None => (HashMap::new(), None),
            Some(dir) => {
                let (map, file) = open_file(dir)?;
                (map, Some(Arc::new(file)))
            }
        };
        Ok(Self {
            writer: Mutex::new(()),
            map: Mutex::new(map),
            file,
        })
    }

    /// Whether commits go to a file (blocking I/O) too.
    pub fn persistent(&self) -> bool {
        self.file.is_some()
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        lock(&self.map)
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .cloned()
    }

    /// Records the commits (written to the file, if any, before memory is updated) and
    /// returns the file to sync before acknowledging. With a file this does blocking
    /// I/O: call it off the async worker threads.
    pub fn commit(&self, group: &str, commits: &[Commit<'_>]) -> io::Result<Option<Arc<File>>> {
        let _writer = lock(&self.writer);
        if let Some(file) = &self.file {
            let mut buf = Vec::new();
            for c in commits {
                encode_record(group, c.topic, c.partition, c.offset, c.metadata, &mut buf);
            }
            (&**file).write_all(&buf)?;
        }
        let mut map = lock(&self.map);
        for c in commits {
            map.insert(
                (group.to_owned(), c.topic.to_owned(), c.partition),
                Committed {
                    offset: c.offset,
                    metadata: c.metadata.to_owned(),
                },
            );
        }
        Ok(self.file.clone())
    }

    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    buf.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn encode_record(
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: &str,
    buf: &mut Vec<u8>,
) {
    let mut payload = Vec::with_capacity(group.len() + topic.len() + metadata.len() + 18);
    put_str(&mut payload, group);
    put_str(&mut payload, topic);
    payload.extend_from_slice(&partition.to_be_bytes());
    payload.extend_from_slice(&offset.to_be_bytes());
    put_str(&mut payload, metadata);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    buf.extend_from_slice(&payload);
}

fn decode_payload(p: &[u8]) -> Option<(Key, Committed)> {
    let mut d = crate::protocol::Decoder::new(p);
    let group = d.string("group").ok()?;
    let topic = d.string("topic").ok()?;
    let partition = d.i32("partition").ok()?;
    let offset = d.i64("offset").ok()?;
    let metadata = d.string("metadata").ok()?;
    d.finish().ok()?;
    Some(((group, topic, partition), Committed { offset, metadata }))
}

fn replay(data: &[u8]) -> (HashMap<Key, Committed>, usize) {
    let mut map = HashMap::new();
    let mut pos = 0;
    while data.len() - pos >= 8 {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().unwrap_or([0; 4]));
        let start = pos + 8;
        if data.len() - start < len {
            break;
        }
        let payload = &data[start..start + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some((k, v)) = decode_payload(payload) else {
            break;
        };
        map.insert(k, v);
        pos = start + len;
    }
    (map, pos)
}

fn open_file(dir: &Path) -> Result<(HashMap<Key, Committed>, File), StorageError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let path = dir.join(FILE_NAME);
    let mut data = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut data).map_err(io_err("read", &path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("open", &path)(e)),
    }
    let (map, valid) = replay(&data);
    warn_torn_tail(&path, data.len(), valid, "ignoring");
    // Compact: write the live offsets to a temporary file, sync, rename over.
    let tmp = dir.join("offsets.log.tmp");
    let mut buf = Vec::new();
    for ((g, t, p), c) in &map {
        encode_record(g, t, *p, c.offset, &c.metadata, &mut buf);
    }
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&buf)
        .and_then(|()| f.sync_all())
        .map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    Ok((map, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = OffsetStore::open(Some(dir.path())).unwrap();
            let c = |partition, offset| Commit {
                topic: "t",
                partition,
                offset,
                metadata: "",
            };
            s.commit("g", &[c(0, 5), c(1, 7)]).unwrap();
            s.commit("g", &[c(0, 9)]).unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2, 3]).unwrap();
        drop(f);
        let s = OffsetStore::open(Some(dir.path())).unwrap();
        assert_eq!(s.get("g", "t", 0).unwrap().offset, 9);
        assert_eq!(s.get("g", "t", 1).unwrap().offset, 7);
        assert!(s.get("other", "t", 0).is_none());
    }
}
