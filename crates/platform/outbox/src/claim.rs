//! The SQL side of the relay: claim, mark sent, release.

use std::time::Duration;

use pgsetup::{DbError, Pool};

/// An outbox row taken for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub event_id: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: String,
    /// The trace the row was written in ([`crate::OutboxRow::traced`]), if any.
    pub trace_context: Option<String>,
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

/// Marks the previous batch sent and claims the next, in one statement (one round trip
/// per relay cycle instead of two). `$3` are the acknowledged ids (none: claim only),
/// `$1` how many to claim (0: mark only), `$2` the lease in seconds. The claim skips
/// the ids being marked: a row whose lease ran out during its publish would otherwise
/// be marked and claimed by one statement. Result rows: one per claimed event
/// (`waited` NULL), then one per marked row (`event_id` NULL) with its wait in seconds
/// from insert to now, both read from the database clock.
///
/// The claim starts at the lowest unsent id (`event_id >= (SELECT min(...))`). Rows
/// marked sent stay in the `events_unsent` index until VACUUM removes them, and the
/// planner, estimating few unsent rows, would otherwise read the whole index with a
/// bitmap scan on every claim: all the sent rows' entries since the last autovacuum,
/// each with a heap visit (6 ms for 20,000 of them, growing for a minute or more, on
/// every relay cycle). The `min()` is an index scan from the low end, which marks the
/// entries of rows that are dead to everyone as such, so each cycle skips them
/// (0.6 ms), and the bound keeps the claim itself to the unsent range. It excludes no
/// row the claim could take: every visible unsent row is at or above the minimum.
///
/// The claimed ids are collected once into an array (`= ANY(ARRAY(...))`, an InitPlan)
/// rather than joined (`IN (...)`): as a join, a plan cached while the table was small
/// can scan the whole table against the candidates, or run the candidate scan (and its
/// `<> ALL($3)` against up to a batch of ids) again for every row; such a statement
/// was seen running at full CPU for over ten minutes with the relay stuck behind it.
/// Collected once, the update is an index look-up of at most `$1` ids, whatever plan.
const MARK_SENT_AND_CLAIM: &str = "
WITH sent AS (
    UPDATE events SET sent_at = now(), claimed_until = NULL
    WHERE event_id = ANY($3) AND sent_at IS NULL
      AND set_config('synchronous_commit', 'off', true) = 'off'
    RETURNING EXTRACT(EPOCH FROM now() - created_at)::float8 AS waited
), claimed AS (
    UPDATE events SET claimed_until = now() + make_interval(secs => $2)
    WHERE event_id = ANY(ARRAY(
        SELECT event_id FROM events
        WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
          AND event_id >= (SELECT min(event_id) FROM events WHERE sent_at IS NULL)
          AND event_id <> ALL($3)
        ORDER BY event_id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )) AND set_config('synchronous_commit', 'off', true) = 'off'
    RETURNING event_id, topic, message_key, payload::text AS payload, trace_context
)
SELECT NULL::float8, event_id, topic, message_key, payload, trace_context FROM claimed
UNION ALL
SELECT waited, NULL, NULL, NULL, NULL, NULL FROM sent";

/// What one [`OutboxTable::mark_sent_and_claim`] did.
#[derive(Debug, Default)]
pub struct RelayStep {
    /// Per row marked sent, how long it waited from its insert to the mark (rows
    /// another relay already marked are not counted).
    pub waited: Vec<Duration>,
    /// The newly claimed rows, oldest first.
    pub claimed: Vec<ClaimedEvent>,
}

impl OutboxTable {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Claims up to `limit` unsent rows for `lease`, oldest first.
    pub fn claim(&self, limit: u32, lease: Duration) -> Result<Vec<ClaimedEvent>, DbError> {
        Ok(self.mark_sent_and_claim(&[], limit, lease)?.claimed)
    }

    /// Marks the rows published and returns, per row, how long it waited from its
    /// insert to now (both read from the database clock, so host clocks do not matter).
    /// A row another relay re-published after this claim's lease ran out keeps its
    /// first `sent_at` and is timed once.
    pub fn mark_sent(&self, event_ids: &[i64]) -> Result<Vec<Duration>, DbError> {
        Ok(self
            .mark_sent_and_claim(event_ids, 0, Duration::ZERO)?
            .waited)
    }

    /// Marks `sent` (the acknowledged ids of the previous batch) published and claims up
    /// to `limit` unsent rows for `lease`, in one statement and transaction.
    pub fn mark_sent_and_claim(
        &self,
        sent: &[i64],
        limit: u32,
        lease: Duration,
    ) -> Result<RelayStep, DbError> {
        let mut client = self.pool.get()?;
        // Prepared once per connection: a plain `query` would parse and plan it on
        // every relay cycle, in a round trip of its own.
        let statement = client.prepare_cached(MARK_SENT_AND_CLAIM)?;
        let rows = client
            .query(
                &statement,
                &[&i64::from(limit), &lease.as_secs_f64(), &sent],
            )
            .map_err(|err| client.forget_stale_statements(err))?;
        let mut step = RelayStep::default();
        for row in &rows {
            match row.try_get::<_, Option<f64>>(0)? {
                // A negative or absurd value cannot come from one clock; keep it out
                // of the histogram's sum rather than fail the batch.
                Some(seconds) => step
                    .waited
                    .push(Duration::try_from_secs_f64(seconds).unwrap_or_default()),
                None => step.claimed.push(ClaimedEvent {
                    event_id: row.try_get(1)?,
                    topic: row.try_get(2)?,
                    message_key: row.try_get(3)?,
                    payload: row.try_get(4)?,
                    trace_context: row.try_get(5)?,
                }),
            }
        }
        // RETURNING does not promise the subquery's order.
        step.claimed.sort_by_key(|event| event.event_id);
        Ok(step)
    }

    /// Gives rows back at once after a failed publish, instead of waiting out the lease.
    pub fn release(&self, event_ids: &[i64]) -> Result<(), DbError> {
        let mut client = self.pool.get()?;
        let statement = client.prepare_cached(
            "UPDATE events SET claimed_until = NULL WHERE event_id = ANY($1) AND sent_at IS NULL",
        )?;
        client
            .execute(&statement, &[&event_ids])
            .map_err(|err| client.forget_stale_statements(err))?;
        Ok(())
    }

    /// Rows not yet published (for the backlog gauge).
    pub fn backlog(&self) -> Result<i64, DbError> {
        let mut client = self.pool.get()?;
        let statement =
            client.prepare_cached("SELECT count(*) FROM events WHERE sent_at IS NULL")?;
        let row = client
            .query_one(&statement, &[])
            .map_err(|err| client.forget_stale_statements(err))?;
        Ok(row.try_get(0)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::MARK_SENT_AND_CLAIM;

    /// Every node of a plan (EXPLAIN ANALYZE, JSON) as (type, loops).
    fn nodes(plan: &serde_json::Value, out: &mut Vec<(String, u64)>) {
        out.push((
            plan["Node Type"].as_str().unwrap_or_default().to_owned(),
            plan["Actual Loops"].as_u64().unwrap_or_default(),
        ));
        for child in plan["Plans"].as_array().into_iter().flatten() {
            nodes(child, out);
        }
    }

    #[test]
    fn the_claim_runs_each_step_once_whatever_join_the_planner_would_prefer() {
        let db = testkit::TestDatabase::new("outbox_claim_plan");
        let pool = pgsetup::prepare(
            &db.dsn(),
            crate::migrations(),
            pgsetup::PoolOptions {
                max_size: 1,
                connect_timeout: std::time::Duration::from_secs(5),
            },
        )
        .unwrap();
        drop(pool);
        let mut client = db.client();
        // A relay's table mid-flight: sent rows, rows claimed by another relay, and
        // the last batch (acknowledged, to be marked by this statement).
        client
            .batch_execute(
                "INSERT INTO events (topic, message_key, payload)
                     SELECT 't', i::text, '{}' FROM generate_series(1, 20000) i;
                 UPDATE events SET sent_at = now() WHERE event_id <= 8000;
                 UPDATE events SET claimed_until = now() + interval '1 hour'
                     WHERE event_id > 8000 AND event_id <= 19000;
                 ANALYZE events;",
            )
            .unwrap();
        let acknowledged: Vec<i64> = (19_001..19_501).collect();
        let mut transaction = client.transaction().unwrap();
        // The planner steered towards nested loops, as a plan cached on a small
        // table may be.
        transaction
            .batch_execute(
                "SET LOCAL enable_hashjoin = off; SET LOCAL enable_hashagg = off;
                 SET LOCAL enable_mergejoin = off; SET LOCAL plan_cache_mode = force_generic_plan;",
            )
            .unwrap();
        let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {MARK_SENT_AND_CLAIM}");
        let row = transaction
            .query_one(explain.as_str(), &[&500_i64, &30.0_f64, &acknowledged])
            .unwrap();
        let plan: serde_json::Value = row.get(0);
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let repeated: Vec<&(String, u64)> = all.iter().filter(|(_, loops)| *loops > 1).collect();
        assert!(
            repeated.is_empty(),
            "nodes run more than once: {repeated:?}\n{plan:#}"
        );
        assert!(
            !all.iter()
                .any(|(node, _)| node.contains("Join") || node == "Nested Loop"),
            "{plan:#}"
        );
        // It did its work: 500 claimed (from 19501 up), 500 marked.
        let claimed: i64 = transaction
            .query_one(
                "SELECT count(*) FROM events WHERE claimed_until > now() + interval '10 s'
                     AND claimed_until < now() + interval '1 minute'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(claimed, 500);
        transaction.rollback().unwrap();
    }
}
