//! The consumer side, client-neutral: [`api`] holds the types both consumer loops take
//! (configuration, message, handler, lag observer); [`spawn`] starts a loop on its
//! thread, on the client the configuration names.
//!
//! The contract both loops keep:
//!
//! - A partition's new messages go to the [`Handler`](crate::Handler) (one by one
//!   unless it batches); a message's offset is committed only after the handler
//!   returned `Ok` for it.
//! - Handler `Err` = transient: the same message is retried with backoff, nothing after
//!   it (in its partition) is handled and its offset is not committed, until `Ok` or
//!   shutdown; the progress before it is committed meanwhile.
//! - Poison messages are the handler's business: it records them and returns `Ok`.
//! - Shutdown (the `CancellationToken` cancelled): finish the message in hand, commit,
//!   return. Backoff sleeps wake at once ([`lifecycle::stop::sleep`]).
//! - Lag: with a [`LagObserver`](crate::LagObserver), every
//!   [`LAG_INTERVAL`](crate::LAG_INTERVAL) each partition's lag is reported (for a
//!   metric).
//!
//! The loops themselves: `crate::kafka_crate::consumer` (no group membership, reads
//! the partitions it is given) and `crate::rd::consumer` (joins the group).

pub(crate) mod api;
pub(crate) mod spawn;
