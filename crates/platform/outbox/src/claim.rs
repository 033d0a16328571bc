//! The SQL side of the relay: claim, mark sent, release.

use std::time::Duration;

use pgsetup::Pool;

use crate::RelayError;

/// An outbox row taken for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub event_id: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: String,
}

// The relay's bookkeeping (claims, "sent" marks) commits without waiting for its WAL
// to reach the disk: each statement ends its WHERE with
// `set_config('synchronous_commit', 'off', true) = 'off'`, true for every row it
// changes, which turns `synchronous_commit` off for the statement's own transaction
// only (`true`: local), in the same single round trip (a `SET LOCAL` would need a
// transaction block: four). Safe for these rows: a claim or mark lost in a crash of
// PostgreSQL only means the event is published again, and consumers deduplicate on
// `event_id` (at-least-once either way). The relay's loop no longer waits for two disk
// flushes per batch, which every event waited for.

/// The `events` table of one service's database.
#[derive(Clone)]
pub struct OutboxTable {
    pool: Pool,
}

const CLAIM: &str = "
UPDATE events SET claimed_until = now() + make_interval(secs => $2)
WHERE event_id IN (
    SELECT event_id FROM events
    WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) AND set_config('synchronous_commit', 'off', true) = 'off'
RETURNING event_id, topic, message_key, payload::text";

impl OutboxTable {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Claims up to `limit` unsent rows for `lease`, oldest first.
    pub fn claim(&self, limit: u32, lease: Duration) -> Result<Vec<ClaimedEvent>, RelayError> {
        let mut client = self.pool.get()?;
        let rows = client.query(CLAIM, &[&i64::from(limit), &lease.as_secs_f64()])?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(ClaimedEvent {
                    event_id: row.try_get(0)?,
                    topic: row.try_get(1)?,
                    message_key: row.try_get(2)?,
                    payload: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()?;
        // RETURNING does not promise the subquery's order.
        events.sort_by_key(|event| event.event_id);
        Ok(events)
    }

    /// Marks the rows published and returns, per row, how long it waited from its
    /// insert to now (both read from the database clock, so host clocks do not matter).
    pub fn mark_sent(&self, event_ids: &[i64]) -> Result<Vec<Duration>, RelayError> {
        let mut client = self.pool.get()?;
        let rows = client.query(
            // `sent_at IS NULL`: a row another relay re-published after this claim's
            // lease ran out keeps its first sent_at and is timed once.
            "UPDATE events SET sent_at = now(), claimed_until = NULL
             WHERE event_id = ANY($1) AND sent_at IS NULL
                   AND set_config('synchronous_commit', 'off', true) = 'off'
             RETURNING EXTRACT(EPOCH FROM now() - created_at)::float8",
            &[&event_ids],
        )?;
        rows.iter()
            .map(|row| {
                let seconds: f64 = row.try_get(0)?;
                // A negative or absurd value cannot come from one clock; keep it out of
                // the histogram's sum rather than fail the batch.
                Ok(Duration::try_from_secs_f64(seconds).unwrap_or_default())
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(RelayError::from)
    }

    /// Gives rows back at once after a failed publish, instead of waiting out the lease.
    pub fn release(&self, event_ids: &[i64]) -> Result<(), RelayError> {
        let mut client = self.pool.get()?;
        client.execute(
            "UPDATE events SET claimed_until = NULL WHERE event_id = ANY($1) AND sent_at IS NULL",
            &[&event_ids],
        )?;
        Ok(())
    }

    /// Rows not yet published (for the backlog gauge).
    pub fn backlog(&self) -> Result<i64, RelayError> {
        let mut client = self.pool.get()?;
        let row = client.query_one("SELECT count(*) FROM events WHERE sent_at IS NULL", &[])?;
        Ok(row.try_get(0)?)
    }
}
