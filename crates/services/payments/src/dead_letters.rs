//! The operator's view of `dead_letters`: list the kept poison messages, and replay
//! them once their cause is fixed.
//!
//! A replay publishes the kept message, byte for byte (key and value), to the topic it
//! came from, so it goes through the normal path again: the running workers consume
//! it, deduplicate on `event_id` and pay at most once. The row is deleted in the same
//! transaction that locked it, after the broker acknowledged the message: if the
//! publish fails nothing changes; if the command dies after the publish but before the
//! commit, the row stays and a second replay publishes a duplicate, which the consumer
//! skips. A message that is still poison is simply dead-lettered again (a new row).

use std::time::Duration;

use postgres::Client;

/// One kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub error: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Which kept messages to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(Vec<i64>),
    All,
}

/// Why listing or replaying dead letters failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("cannot reach the payments database (PAYMENTS_PG_DSN)")]
    Setup(#[from] pgsetup::SetupError),
    #[error(transparent)]
    Database(#[from] pgsetup::DbError),
    #[error("cannot reach the brokers (KAFKA_BROKERS)")]
    BrokerUnreachable(#[source] bus::BusError),
    /// A replayed message was not acknowledged; its row is kept.
    #[error("broker")]
    Publish(#[from] bus::BusError),
    #[error("no dead letter with id {0}")]
    NotFound(i64),
}

impl From<postgres::Error> for DeadLetterError {
    fn from(err: postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

const SELECT_COLUMNS: &str = "SELECT id, kafka_topic, kafka_partition, kafka_offset, \
     message_key, payload, error, received_at FROM dead_letters";

fn from_row(row: &postgres::Row) -> DeadLetter {
    DeadLetter {
        id: row.get(0),
        topic: row.get(1),
        partition: row.get(2),
        offset: row.get(3),
        key: row.get(4),
        payload: row.get(5),
        error: row.get(6),
        received_at: row.get(7),
    }
}

/// The kept messages, oldest first, at most `limit`.
pub fn list(client: &mut Client, limit: i64) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let rows = client.query(&format!("{SELECT_COLUMNS} ORDER BY id LIMIT $1"), &[&limit])?;
    Ok(rows.iter().map(from_row).collect())
}

/// Publishes the selected messages to their topics and deletes each one's row once
/// the broker acknowledged it (one transaction per message). Returns the replayed
/// rows; an id that does not exist is an error before anything is published.
pub fn replay(
    client: &mut Client,
    producer: &mut bus::Producer,
    selection: &Selection,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let ids: Vec<i64> = match selection {
        Selection::Ids(ids) => {
            for id in ids {
                let found = client.query_opt("SELECT 1 FROM dead_letters WHERE id = $1", &[id])?;
                if found.is_none() {
                    return Err(DeadLetterError::NotFound(*id));
                }
            }
            ids.clone()
        }
        Selection::All => client
            .query("SELECT id FROM dead_letters ORDER BY id", &[])?
            .iter()
            .map(|row| row.get(0))
            .collect(),
    };
    let mut replayed = Vec::with_capacity(ids.len());
    for id in ids {
        let mut tx = client.transaction()?;
        // Locked, so two operators replaying at once publish each message once.
        let Some(row) = tx.query_opt(
            &format!("{SELECT_COLUMNS} WHERE id = $1 FOR UPDATE SKIP LOCKED"),
            &[&id],
        )?
        else {
            continue; // replayed (or being replayed) by someone else meanwhile
        };
        let letter = from_row(&row);
        producer.send(bus::Record {
            topic: &letter.topic,
            key: &letter.key,
            value: &letter.payload,
            headers: &[],
        })?;
        tx.execute("DELETE FROM dead_letters WHERE id = $1", &[&id])?;
        tx.commit()?;
        tracing::info!(
            id,
            topic = %letter.topic,
            partition = letter.partition,
            offset = letter.offset,
            "dead letter replayed"
        );
        replayed.push(letter);
    }
    Ok(replayed)
}

/// The producer a replay uses: the same settings as the relay's, on the service's
/// Kafka section (brokers, `KAFKA_CLIENT`, TLS/SASL, librdkafka properties).
pub fn producer_config(kafka: &bus::KafkaConnection) -> bus::ProducerConfig {
    bus::ProducerConfig {
        brokers: kafka.hosts(),
        ack_timeout: Duration::from_secs(5),
        max_retries: 5,
        client_id: format!("{}-dead-letters", crate::CLIENT_ID),
        client: kafka.client,
        security: kafka.security.clone(),
        rdkafka_properties: kafka.producer_properties.clone(),
    }
}

/// A one-line, printable summary of a kept message: id, origin, when, reason and the
/// start of the payload (non-UTF-8 bytes escaped).
pub fn describe(letter: &DeadLetter) -> String {
    const PREVIEW: usize = 120;
    let payload = String::from_utf8_lossy(&letter.payload);
    let mut preview: String = payload.chars().take(PREVIEW).collect();
    if payload.chars().count() > PREVIEW {
        preview.push('…');
    }
    format!(
        "{id}\t{topic}/{partition}@{offset}\t{at}\tkey={key:?}\terror={error:?}\tpayload={preview:?}",
        id = letter.id,
        topic = letter.topic,
        partition = letter.partition,
        offset = letter.offset,
        at = letter.received_at.to_rfc3339(),
        key = String::from_utf8_lossy(&letter.key),
        error = letter.error,
    )
}

/// What `payments dead-letters ...` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    List { limit: i64 },
    Replay(Selection),
}

/// Runs `command` against the database and brokers of `config`, writing one line per
/// message to `out`.
pub fn run(
    config: &crate::Config,
    command: &Command,
    out: &mut dyn std::io::Write,
) -> Result<(), DeadLetterError> {
    let pool = pgsetup::prepare(
        &config.payments_pg_dsn,
        crate::schema(),
        pgsetup::PoolOptions {
            max_size: 1,
            connect_timeout: Duration::from_secs(10),
        },
    )?;
    let mut client = pool.get().map_err(pgsetup::DbError::from)?;
    let letters = match command {
        Command::List { limit } => list(&mut client, *limit)?,
        Command::Replay(selection) => {
            let mut producer = bus::Producer::connect(producer_config(&config.kafka))
                .map_err(DeadLetterError::BrokerUnreachable)?;
            replay(&mut client, &mut producer, selection)?
        }
    };
    for letter in &letters {
        // A closed stdout (e.g. `| head`) is not an error of the command.
        let _ = writeln!(out, "{}", describe(letter));
    }
    if let Command::Replay(_) = command {
        let _ = writeln!(out, "replayed {} dead letter(s)", letters.len());
    }
    Ok(())
}
