//! `devbroker`: a single-node Kafka broker for the legacy (pre-0.11) protocol.
//!
//! The platform's workers use the synchronous `kafka` crate, which speaks only the old
//! protocol (v0 APIs, message format v0/v1). No installable broker accepts it any more,
//! so this crate is the embedded broker for tests and single-machine runs. It is not a
//! production broker: one node, no replication, no consumer-group membership, no
//! retention, the whole log also held in memory.
//!
//! # How the parts fit
//!
//! ```text
//!  TcpListener ── server ── one task per connection: read frame ─┐
//!                                                                 v
//!        handler::handle: header -> dispatch by API key to handler::<api>:
//!                            │        protocol::<api> decode -> run against storage
//!                            │        -> protocol::<api> encode -> write
//!               ┌────────────┴─────────────┐
//!            log (topics, partitions)   offsets (group commits)
//!               │ message_set validates produced sets (CRC, compression) and
//!               │ down-converts magic 1 for Fetch v0/v1; compression decodes gzip/snappy
//! ```
//!
//! - [`protocol`]: the wire format, one module per API (its `Request` and `Response`),
//!   pure encode/decode; `protocol::codec` reads and writes the primitive types.
//! - `message_set` / `compression`: message format v0/v1: the format itself, what a
//!   produced set is stored as (`message_set::produced`: validated, wrappers kept or
//!   flattened) and the magic-0 form for old fetchers (`message_set::down_conversion`);
//!   `compression` decodes gzip/snappy.
//! - `log`: topics, created under one lock, with a `watch` channel that wakes
//!   long-polling fetches (no polling loops); `log::partition`: a partition as an
//!   append-only entry list; `log::disk`: the files that optionally persist them, and
//!   their recovery on start-up.
//! - `offsets`: committed offsets, optionally persisted.
//! - `state`: the state connections share; `State::storage` runs storage work on the
//!   blocking pool when it does file I/O (inline in memory).
//! - `handler`: its root only dispatches a frame by API key and version; one module per
//!   API, named as its codec under `protocol/`, ties its requests to storage
//!   (`handler::storage`: the topic look-ups, partition answers and syncs several share).
//! - `server`: accept loop and connection tasks; a bad frame closes only its connection.
//! - Stop signal: a `CancellationToken` (the platform's one stop signal); each
//!   connection holds a child of the server's token.
//! - [`Broker`] / [`RunningBroker`]: lifecycle; [`spawn_background`] runs a broker on its
//!   own thread for synchronous tests.
//!
//! # Durability (with `data_dir`)
//!
//! Produce writes each appended entry to the partition file before answering: it then
//! survives a crash of the process (`kill -9`). With acks=all (-1) the file is also
//! `fdatasync`ed before the answer, so the ack means "on disk". OffsetCommit is always
//! written and `fdatasync`ed before its answer. Topic creation is synced too.
//!
//! # Where the file I/O runs
//!
//! Storage work that touches files (topic creation, appends, offset commits, their
//! `fdatasync`s) runs on tokio's blocking pool through `State::storage`, and the request
//! awaits it before answering, so the durability above is unchanged while a slow disk
//! delays only the requests waiting for it, not the runtime's worker threads. A
//! partition (and the offset store) has a writer lock, held across the file write so
//! offsets are assigned in file order, and a separate lock on what readers see, held
//! only briefly: fetches never wait for a disk. In memory the same work runs inline.

mod broker;
mod compression;
mod config;
mod handler;
mod log;
mod message_set;
mod offsets;
pub mod protocol;
mod server;
mod state;

pub use broker::{BackgroundBroker, Broker, BrokerError, RunningBroker, spawn_background};
pub use config::{BrokerConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_PARTITIONS, TopicSpec};
