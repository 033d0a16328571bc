//! Topic and partition logs: the broker's storage.
//!
//! Every partition is an append-only list of entries, each one message set entry as
//! served (a single message, or a kept compressed wrapper covering several offsets).
//! Entries are held in memory; with a data directory they are also appended to
//! `<data-dir>/topics/<topic>/<partition>.log`, one record per entry:
//!
//! ```text
//! base_offset: i64, last_offset: i64, len: u32, crc32(entry): u32, entry: [u8; len]
//! ```
//!
//! A record is written with one `write` before the produce is acknowledged; the caller
//! decides whether to `fdatasync` too (acks=all does). On start-up a torn or corrupt
//! tail (a crash in the middle of a write) is cut off at the last whole record.
//!
//! Appends bump a broker-wide counter in a `watch` channel; long-polling fetches wait on
//! it instead of polling.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

use crate::message_set::{self, Prepared};

/// Longest legal topic name (Kafka's limit).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Most partitions a topic may have (a devbroker limit; Kafka has none as such).
pub const MAX_PARTITIONS: i32 = 10_000;
const RECORD_HEADER_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid topic name {0:?} (1-249 chars of [a-zA-Z0-9._-], not . or ..)")]
    InvalidTopic(String),
    #[error("invalid partition count {0} for topic {1:?}")]
    InvalidPartitions(i32, String),
    #[error("topic {0:?} is on disk with a bad partition count file")]
    BadTopicMeta(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("storage work did not finish: {0}")]
    Unfinished(#[source] tokio::task::JoinError),
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Logs the bytes of `path` after its last whole record (a write a crash cut short,
/// or corruption), if `valid` of the `read` bytes leaves any; `action` says what
/// happens to them.
pub(crate) fn warn_torn_tail(path: &Path, read: usize, valid: usize, action: &str) {
    if valid < read {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = read - valid,
            "{action} a torn or corrupt tail"
        );
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the data
/// consistent before anything that could panic, so a poisoned lock is still sound.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One stored entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub base: i64,
    pub last: i64,
    /// Magic 1 timestamp of the entry (-1 if none), for ListOffsets by time.
    pub timestamp: i64,
    /// The wire entry: `offset, size, message`.
    pub data: Bytes,
}

/// What a fetch at an offset found.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub high_watermark: i64,
    pub out_of_range: bool,
    pub entries: Vec<Entry>,
    pub bytes: usize,
}

/// The append side of a partition. Held across the file write (so offsets are assigned
/// in file order), never by readers.
struct Writer {
    /// The next offset to assign: the log end once the append in hand is done.
    next: i64,
    file_len: u64,
    /// Set if a failed write could not be rolled back: appending more would put records
    /// after garbage, which recovery would then drop.
    broken: bool,
}

/// The read side: what fetches and offset look-ups see. Locked only briefly, never
/// across file I/O, so a slow write does not hold up readers.
struct Entries {
    list: Vec<Entry>,
    log_end: i64,
}

pub struct Partition {
    writer: Mutex<Writer>,
    entries: Mutex<Entries>,
    /// The partition file, with a data dir.
    file: Option<Arc<File>>,
}

/// Result of an append: the first assigned offset and, with a data dir, the file to
/// `fdatasync` if the producer asked for acks=all.
pub struct Appended {
    pub base_offset: i64,
    pub file: Option<Arc<File>>,
}

impl Partition {
    fn new(entries: Vec<Entry>, file: Option<(Arc<File>, u64)>) -> Self {
        let log_end = entries.last().map_or(0, |e| e.last + 1);
        let (file, file_len) = match file {
            Some((f, len)) => (Some(f), len),
            None => (None, 0),
        };
        Self {
            writer: Mutex::new(Writer {
                next: log_end,
                file_len,
                broken: false,
            }),
            entries: Mutex::new(Entries {
                list: entries,
                log_end,
            }),
            file,
        }
    }

    /// Assigns offsets to `units` and appends them (file if any, then memory). With a
    /// data dir this does blocking file I/O: call it off the async worker threads.
    pub fn append(&self, units: Vec<Prepared>) -> io::Result<Appended> {
        let mut w = lock(&self.writer);
        if w.broken {
            return Err(io::Error::other(
                "partition log is broken after a failed write",
            ));
        }
        let base_offset = w.next;
        let (new_entries, next) = assign_offsets(base_offset, units);
        if let Some(file) = &self.file {
            write_records(file, &mut w, &new_entries)?;
        }
        {
            let mut e = lock(&self.entries);
            e.list.extend(new_entries);
            e.log_end = next;
        }
        w.next = next;
        Ok(Appended {
            base_offset,
            file: self.file.clone(),
        })
    }

    pub fn log_end(&self) -> i64 {
        lock(&self.entries).log_end
    }

    /// The log start: nothing is ever deleted, so it is 0.
    pub fn log_start(&self) -> i64 {
        0
    }

    /// Entries from `offset` on, up to about `max_bytes` (at least one whole entry, so a
    /// large message never blocks a consumer).
    pub fn read(&self, offset: i64, max_bytes: usize) -> ReadResult {
        let st = lock(&self.entries);
        let mut r = ReadResult {
            high_watermark: st.log_end,
            ..ReadResult::default()
        };
        if offset < 0 || offset > st.log_end {
            r.out_of_range = true;
            return r;
        }
        let start = st.list.partition_point(|e| e.last < offset);
        for e in &st.list[start..] {
            if !r.entries.is_empty() && r.bytes + e.data.len() > max_bytes {
                break;
            }
            r.bytes += e.data.len();
            r.entries.push(e.clone());
        }
        r
    }

    /// The first entry with a timestamp at or after `ts`: `(offset, timestamp)`.
    pub fn offset_for_time(&self, ts: i64) -> Option<(i64, i64)> {
        let st = lock(&self.entries);
        st.list
            .iter()
            .find(|e| e.timestamp >= ts)
            .map(|e| (e.base, e.timestamp))
    }

    /// Holds the append side, as a write stuck on a slow disk would: says so on `held`,
    /// then waits for `release` (tests).
    #[cfg(test)]
    pub(crate) fn stall_appends(
        &self,
        held: &std::sync::mpsc::Sender<()>,
        release: &std::sync::mpsc::Receiver<()>,
    ) {
        let _writer = lock(&self.writer);
        let _ = held.send(());
        let _ = release.recv();
    }

    /// Syncs the partition file (used at shutdown).
    fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// Gives `units` consecutive offsets from `base`; returns the entries and the next offset.
fn assign_offsets(base: i64, units: Vec<Prepared>) -> (Vec<Entry>, i64) {
    let mut next = base;
    let mut entries = Vec::with_capacity(units.len());
    for u in units {
        let last = next + u.count - 1;
        // A kept wrapper carries the offset of its last inner message.
        let data = message_set::encode_entry(last, &u.body);
        entries.push(Entry {
            base: next,
            last,
            timestamp: u.timestamp,
            data,
        });
        next = last + 1;
    }
    (entries, next)
}

/// Writes `entries` as records with one `write`; on failure rolls the file back so the
/// next append does not land after a torn record (or marks the writer broken).
fn write_records(file: &File, w: &mut Writer, entries: &[Entry]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(
        entries
            .iter()
            .map(|e| e.data.len() + RECORD_HEADER_LEN)
            .sum(),
    );
    for e in entries {
        encode_record(e, &mut buf);
    }
    if let Err(e) = (&*file).write_all(&buf) {
        if file.set_len(w.file_len).is_err() {
            w.broken = true;
        }
        return Err(e);
    }
    w.file_len += buf.len() as u64;
    Ok(())
}

fn encode_record(e: &Entry, buf: &mut Vec<u8>) {
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

pub struct Topic {
    pub name: String,
    pub partitions: Vec<Partition>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Partition> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// All topics, plus the append notification channel.
pub struct Log {
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation so two racing auto-creates make one topic.
    create_lock: Mutex<()>,
    data_dir: Option<PathBuf>,
    default_partitions: i32,
    appended: watch::Sender<u64>,
}

impl Log {
    /// Opens the log: loads every topic under `data_dir` (if any), then creates the
    /// `initial` topics that do not exist yet.
    pub fn open(
        data_dir: Option<&Path>,
        default_partitions: i32,
        initial: &[(String, i32)],
    ) -> Result<Self, StorageError> {
        let mut topics = HashMap::new();
        let data_dir = data_dir.map(|d| d.join("topics"));
        if let Some(dir) = &data_dir {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            for ent in fs::read_dir(dir).map_err(io_err("read", dir))? {
                let ent = ent.map_err(io_err("read", dir))?;
                let Ok(name) = ent.file_name().into_string() else {
                    continue;
                };
                if !valid_topic_name(&name) || !ent.path().is_dir() {
                    continue;
                }
                if let Some(topic) = load_topic(&ent.path(), &name)? {
                    topics.insert(name, Arc::new(topic));
                }
            }
        }
        let (appended, _) = watch::channel(0);
        let log = Self {
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            data_dir,
            default_partitions,
            appended,
        };
        for (name, partitions) in initial {
            log.get_or_create(name, Some(*partitions))?;
        }
        Ok(log)
    }

    /// Whether topics live in files too (a data dir is set): creation and appends then
    /// do blocking file I/O.
    pub fn persistent(&self) -> bool {
        self.data_dir.is_some()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// All topics as `(name, partition count)`, sorted by name.
    pub fn topic_list(&self) -> Vec<(String, i32)> {
        let mut v: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|t| (t.name.clone(), t.partition_count()))
            .collect();
        v.sort();
        v
    }

    /// The topic, created with `partitions` (or the default) if it does not exist.
    /// Creation does blocking file I/O if [`Log::persistent`].
    pub fn get_or_create(
        &self,
        name: &str,
        partitions: Option<i32>,
    ) -> Result<Arc<Topic>, StorageError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        self.create_new(name, partitions, true)
    }

    /// Creates the topic with `partitions` (or the default), failing with
    /// [`StorageError::TopicExists`] if it exists already (CreateTopics). Serialised with
    /// [`Log::get_or_create`], so of a racing auto-creation and an explicit one exactly
    /// one creates the topic.
    pub fn create(&self, name: &str, partitions: Option<i32>) -> Result<Arc<Topic>, StorageError> {
        self.create_new(name, partitions, false)
    }

    /// The partition count a creation with `partitions` would get, if valid.
    pub fn resolve_partitions(&self, partitions: Option<i32>) -> Option<i32> {
        let n = partitions.unwrap_or(self.default_partitions);
        (1..=MAX_PARTITIONS).contains(&n).then_some(n)
    }

    /// Creates a topic under the creation lock; an existing one is returned if
    /// `existing_ok`, else refused.
    fn create_new(
        &self,
        name: &str,
        partitions: Option<i32>,
        existing_ok: bool,
    ) -> Result<Arc<Topic>, StorageError> {
        if !valid_topic_name(name) {
            return Err(StorageError::InvalidTopic(name.to_owned()));
        }
        let Some(n) = self.resolve_partitions(partitions) else {
            let n = partitions.unwrap_or(self.default_partitions);
            return Err(StorageError::InvalidPartitions(n, name.to_owned()));
        };
        let _guard = lock(&self.create_lock);
        if let Some(t) = self.topic(name) {
            return if existing_ok {
                Ok(t)
            } else {
                Err(StorageError::TopicExists(name.to_owned()))
            };
        }
        let topic = match &self.data_dir {
            None => Topic {
                name: name.to_owned(),
                partitions: (0..n).map(|_| Partition::new(Vec::new(), None)).collect(),
            },
            Some(dir) => create_topic_on_disk(dir, name, n)?,
        };
        tracing::info!(topic = name, partitions = n, "created topic");
        let topic = Arc::new(topic);
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Wakes waiting fetches after an append.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Flushes every partition file (shutdown).
    pub fn sync_all(&self) {
        let topics: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for t in topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if let Err(e) = p.sync() {
                    tracing::warn!(topic = %t.name, partition = i, error = %e, "sync failed");
                }
            }
        }
    }
}

const PARTITIONS_FILE: &str = "partitions";

fn create_topic_on_disk(dir: &Path, name: &str, n: i32) -> Result<Topic, StorageError> {
    let tdir = dir.join(name);
    fs::create_dir_all(&tdir).map_err(io_err("create", &tdir))?;
    let mut partitions = Vec::with_capacity(n as usize);
    for p in 0..n {
        partitions.push(open_partition(&tdir, p)?);
    }
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
    Ok(Topic {
        name: name.to_owned(),
        partitions,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

fn load_topic(tdir: &Path, name: &str) -> Result<Option<Topic>, StorageError> {
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
    let mut partitions = Vec::with_capacity(n as usize);
    for p in 0..n {
        partitions.push(open_partition(tdir, p)?);
    }
    Ok(Some(Topic {
        name: name.to_owned(),
        partitions,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_set::build_message;

    fn unit(v: &[u8]) -> Prepared {
        Prepared {
            body: Bytes::from(build_message(1, 0, Some(5), None, Some(v))),
            count: 1,
            timestamp: 5,
        }
    }

    #[test]
    fn topic_names() {
        assert!(valid_topic_name("order-topic"));
        assert!(valid_topic_name("a.b_c-1"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }

    #[test]
    fn disk_log_survives_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = Log::open(Some(dir.path()), 2, &[]).unwrap();
            let t = log.get_or_create("t", None).unwrap();
            assert_eq!(t.partition_count(), 2);
            let p = t.partition(1).unwrap();
            assert_eq!(
                p.append(vec![unit(b"a"), unit(b"b")]).unwrap().base_offset,
                0
            );
            assert_eq!(p.append(vec![unit(b"c")]).unwrap().base_offset, 2);
        }
        // Simulate a crash mid-write: garbage after the last whole record.
        let path = dir.path().join("topics/t/1.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 0, 0, 0, 0, 3, 1, 2]).unwrap();
        drop(f);

        let log = Log::open(Some(dir.path()), 2, &[]).unwrap();
        let t = log.topic("t").unwrap();
        let p = t.partition(1).unwrap();
        assert_eq!(p.log_end(), 3);
        let r = p.read(1, usize::MAX);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(p.append(vec![unit(b"d")]).unwrap().base_offset, 3);
        drop(log);
        let log = Log::open(Some(dir.path()), 2, &[]).unwrap();
        assert_eq!(log.topic("t").unwrap().partition(1).unwrap().log_end(), 4);
    }

    #[test]
    fn create_refuses_an_existing_topic_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = Log::open(Some(dir.path()), 2, &[]).unwrap();
            assert_eq!(log.create("c", Some(5)).unwrap().partition_count(), 5);
            assert!(matches!(
                log.create("c", Some(5)),
                Err(StorageError::TopicExists(_))
            ));
            // Auto-creation gets the existing topic, not the default count.
            assert_eq!(log.get_or_create("c", None).unwrap().partition_count(), 5);
            log.get_or_create("auto", None).unwrap();
            assert!(matches!(
                log.create("auto", None),
                Err(StorageError::TopicExists(_))
            ));
            assert!(matches!(
                log.create("bad/name", None),
                Err(StorageError::InvalidTopic(_))
            ));
            assert!(matches!(
                log.create("zero", Some(0)),
                Err(StorageError::InvalidPartitions(0, _))
            ));
            assert!(matches!(
                log.create("huge", Some(MAX_PARTITIONS + 1)),
                Err(StorageError::InvalidPartitions(..))
            ));
            assert!(log.topic("zero").is_none() && log.topic("huge").is_none());
        }
        let log = Log::open(Some(dir.path()), 2, &[]).unwrap();
        assert_eq!(log.topic("c").unwrap().partition_count(), 5);
        assert_eq!(log.topic("auto").unwrap().partition_count(), 2);
    }

    #[test]
    fn racing_create_and_auto_create_make_one_topic() {
        for _ in 0..50 {
            let log = Arc::new(Log::open(None, 2, &[]).unwrap());
            let explicit = {
                let log = log.clone();
                std::thread::spawn(move || log.create("r", Some(7)).map(|t| t.partition_count()))
            };
            let auto = log.get_or_create("r", None).unwrap().partition_count();
            match explicit.join().unwrap() {
                // The explicit creation won: auto-creation saw its topic.
                Ok(n) => assert_eq!((n, auto), (7, 7)),
                // Auto-creation won: the explicit one was refused, nothing replaced.
                Err(StorageError::TopicExists(_)) => assert_eq!(auto, 2),
                Err(e) => panic!("{e}"),
            }
            assert_eq!(log.topic("r").unwrap().partition_count(), auto);
        }
    }

    #[test]
    fn read_returns_at_least_one_entry_and_flags_out_of_range() {
        let log = Log::open(None, 1, &[]).unwrap();
        let t = log.get_or_create("t", None).unwrap();
        let p = t.partition(0).unwrap();
        p.append(vec![unit(&[0; 100]), unit(&[1; 100])]).unwrap();
        assert_eq!(p.read(0, 1).entries.len(), 1);
        assert_eq!(p.read(0, usize::MAX).entries.len(), 2);
        assert!(p.read(2, 10).entries.is_empty());
        assert!(!p.read(2, 10).out_of_range);
        assert!(p.read(3, 10).out_of_range);
    }
}
