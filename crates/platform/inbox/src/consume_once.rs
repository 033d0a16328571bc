//! Consuming a poll of Kafka messages into PostgreSQL exactly once: the loop every
//! consumer into PostgreSQL shares (payments' `OrderCreated`, orders' `PaymentStatus`).
//!
//! [`consume_poll`] decodes each message and then takes one of two paths, both ending
//! in one commit for the whole poll:
//!
//! - **together** (the common case): every message is a valid event, no event id and
//!   no order twice. The service applies them all at once ([`Apply::apply_together`]),
//!   typically in one statement built on [`crate::record_many_cte`]: a poll costs one
//!   round trip, not several per event.
//! - **one by one**: a poison message, or an order named twice (the order of its
//!   events matters: the first decision stands). In ONE transaction, in the poll's
//!   order: a message that is not a valid event goes to `dead_letters` with the reason;
//!   each event is applied by [`Apply::apply_one`], which records its `event_id` first
//!   ([`crate::record_sql`]) and skips a redelivered one.
//!
//! Either way nothing of the poll is visible unless all of it is, so the consumer
//! commits the poll's offsets only after this returns `Ok`, and a failure (the
//! database down) is retried with nothing half-written.

use std::collections::HashSet;

use contracts::{OrderCreated, PaymentStatus, Validate};
use pgsetup::{Pool, PooledClient};
use postgres::Transaction;
use serde::de::DeserializeOwned;

use crate::DeadLetter;

/// An event consumed once: deduplicated on its id, about one order.
pub trait InboxEvent: DeserializeOwned + Validate {
    /// The producer's outbox row id: the identity `processed_events` records.
    fn event_id(&self) -> i64;
    /// The order it is about; two events of one order in a poll are applied in order.
    fn order_id(&self) -> i64;
}

impl InboxEvent for OrderCreated {
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn order_id(&self) -> i64 {
        self.order_id
    }
}

impl InboxEvent for PaymentStatus {
    fn event_id(&self) -> i64 {
        self.event_id
    }
    fn order_id(&self) -> i64 {
        self.order_id
    }
}

/// How a service applies its events; [`consume_poll`] decides which path runs.
pub trait Apply {
    type Event: InboxEvent;
    /// What applying one event did (for the service's logs and metrics).
    type Outcome;
    /// The statements [`Apply::apply_one`] uses, prepared before the transaction.
    type Prepared;
    type Error: From<postgres::Error> + From<r2d2::Error>;

    /// The together path: `events` (valid, distinct event ids, distinct orders, with
    /// the message each came from) applied at once on `client`, atomically (one
    /// statement, or a transaction the implementation opens). One outcome per event,
    /// in order.
    fn apply_together(
        &mut self,
        client: &mut PooledClient,
        events: &[(&Self::Event, &bus::Message<'_>)],
    ) -> Result<Vec<Self::Outcome>, Self::Error>;

    /// Before the one-by-one path opens its transaction, with no connection held:
    /// work that must not hold a transaction open (payments asks its provider here).
    fn before_one_by_one(&mut self, events: &[&Self::Event]) -> Result<(), Self::Error> {
        let _ = events;
        Ok(())
    }

    /// Prepares the statements of the one-by-one path on the poll's connection.
    fn prepare(&mut self, client: &mut PooledClient) -> Result<Self::Prepared, Self::Error>;

    /// The one-by-one path: one event inside the poll's transaction. Records its
    /// `event_id` first and changes nothing more for one handled before.
    fn apply_one(
        &mut self,
        tx: &mut Transaction<'_>,
        prepared: &Self::Prepared,
        event: &Self::Event,
        message: &bus::Message<'_>,
    ) -> Result<Self::Outcome, Self::Error>;
}

/// What became of one message of a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Consumed<E, O> {
    /// A valid event, applied (or skipped as a duplicate: `outcome` says).
    Applied { event: E, outcome: O },
    /// Not a valid event: kept in `dead_letters` with this reason.
    DeadLettered { reason: String },
}

impl<E, O> Consumed<E, O> {
    /// The outcome of a valid event; `None` for a dead letter.
    pub fn outcome(&self) -> Option<&O> {
        match self {
            Consumed::Applied { outcome, .. } => Some(outcome),
            Consumed::DeadLettered { .. } => None,
        }
    }
}

/// What became of each message of a poll, in order.
pub type Poll<A> = Vec<Consumed<<A as Apply>::Event, <A as Apply>::Outcome>>;

/// Consumes a poll: one result per message, in order; see the module docs.
pub fn consume_poll<A: Apply>(
    pool: &Pool,
    apply: &mut A,
    messages: &[bus::Message<'_>],
) -> Result<Poll<A>, A::Error> {
    let decoded: Vec<Result<A::Event, String>> = messages
        .iter()
        .map(|message| contracts::decode::<A::Event>(message.value).map_err(|err| err.to_string()))
        .collect();
    let outcomes = match together(&decoded, messages) {
        Some(events) => {
            let mut client = pool.get()?;
            apply
                .apply_together(&mut client, &events)?
                .into_iter()
                .map(Ok)
                .collect()
        }
        None => one_by_one(pool, apply, &decoded, messages)?,
    };
    Ok(decoded
        .into_iter()
        .zip(outcomes)
        .map(|(event, outcome)| match (event, outcome) {
            (Ok(event), Ok(outcome)) => Consumed::Applied { event, outcome },
            (_, Err(reason)) | (Err(reason), _) => Consumed::DeadLettered { reason },
        })
        .collect())
}

/// The one-by-one path, in one transaction: per message its outcome, or the reason
/// it was kept as a dead letter.
fn one_by_one<A: Apply>(
    pool: &Pool,
    apply: &mut A,
    decoded: &[Result<A::Event, String>],
    messages: &[bus::Message<'_>],
) -> Result<Vec<Result<A::Outcome, String>>, A::Error> {
    let valid: Vec<&A::Event> = decoded
        .iter()
        .filter_map(|event| event.as_ref().ok())
        .collect();
    apply.before_one_by_one(&valid)?;
    let mut client = pool.get()?;
    let prepared = apply.prepare(&mut client)?;
    let mut tx = client.transaction()?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for (event, message) in decoded.iter().zip(messages) {
        outcomes.push(match event {
            Ok(event) => Ok(apply.apply_one(&mut tx, &prepared, event, message)?),
            Err(reason) => Err(keep_dead_letter(&mut tx, message, reason.clone())?),
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Keeps `message` in `dead_letters` because of `reason`, in `tx`; returns the reason.
pub fn keep_dead_letter(
    tx: &mut Transaction<'_>,
    message: &bus::Message<'_>,
    reason: String,
) -> Result<String, postgres::Error> {
    let kept = DeadLetter::of(message, reason);
    tx.execute(crate::INSERT_DEAD_LETTER, &kept.params())?;
    Ok(kept.reason)
}

/// The poll's events with their messages, if they can be applied together: all
/// valid, no event id and no order twice.
fn together<'d, 'm, 'a, E: InboxEvent>(
    decoded: &'d [Result<E, String>],
    messages: &'m [bus::Message<'a>],
) -> Option<Vec<(&'d E, &'m bus::Message<'a>)>> {
    let mut event_ids = HashSet::with_capacity(decoded.len());
    let mut order_ids = HashSet::with_capacity(decoded.len());
    decoded
        .iter()
        .zip(messages)
        .map(|(event, message)| {
            let event = event.as_ref().ok()?;
            (event_ids.insert(event.event_id()) && order_ids.insert(event.order_id()))
                .then_some((event, message))
        })
        .collect()
}
