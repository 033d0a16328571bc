//! The log's tests: names, creation, reading, and persistence across a reopen.

use std::fs::OpenOptions;
use std::io::Write;

use bytes::Bytes;

use super::*;
use crate::message_set::{Prepared, build_message};

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
