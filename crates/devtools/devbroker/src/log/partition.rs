//! A partition's log: an append-only list of entries, each one message set entry as
//! served (a single message, or a kept compressed wrapper covering several offsets),
//! held in memory and, with a data directory, also appended to the partition file
//! ([`super::disk`]).
//!
//! The append side ([`Writer`]) and the read side ([`Entries`]) have separate locks:
//! the writer holds its own across the file write, so offsets are assigned in file
//! order, while readers lock only theirs, and only briefly: a fetch never waits for a
//! disk.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::disk::{RECORD_HEADER_LEN, encode_record};
use super::lock;
use crate::message_set::{self, Prepared};

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
    pub(super) fn new(entries: Vec<Entry>, file: Option<(Arc<File>, u64)>) -> Self {
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
    pub(super) fn sync(&self) -> io::Result<()> {
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
