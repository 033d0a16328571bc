//! Idempotency keys on `CreateOrder` (request metadata [`METADATA_KEY`]): a client
//! that retries a request under the same key gets the first answer again instead of
//! a second order.
//!
//! - A key is 1 to [`MAX_KEY_LEN`] visible ASCII characters (0x21-0x7E), checked by
//!   [`IdempotencyKey::from_metadata`]; anything else is INVALID_ARGUMENT naming the
//!   metadata key.
//! - It is scoped to the order's `user_id` and stored with the order's id and the
//!   [`fingerprint`] of the request (SHA-256 over a canonical encoding of `user_id` and
//!   the items), in the same statement as the order (see the store): there is never
//!   an order created under a key without its key row, nor the reverse.
//! - The same key with the same request answers the stored order id (response
//!   metadata [`REPLAYED_METADATA`]`: true`), writing nothing; with another request it
//!   is FAILED_PRECONDITION ([`KeyConflict::DifferentRequest`]), writing nothing.
//!   Requests racing on one key are serialized by PostgreSQL on the key's primary key:
//!   one creates the order, the others wait for it to commit and replay it. Should
//!   the key row vanish between the two (retention, expiry), the call is ABORTED
//!   ([`KeyConflict::InProgress`]), which the client retries.
//! - Keys live `ORDERS_IDEMPOTENCY_TTL` ([`DEFAULT_TTL`]): an older row is ignored by
//!   lookups, replaced by the next order under its key, and deleted by the `retention`
//!   crate's thread ([`retention_policy`], bounded batches off the hot path).

use std::time::Duration;

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;

use crate::validation::NewOrder;

/// The request metadata carrying the key (the gateway forwards `Idempotency-Key` as it).
pub const METADATA_KEY: &str = "idempotency-key";

/// Response metadata set to `true` when the answer is a replay of an earlier one.
pub const REPLAYED_METADATA: &str = "idempotent-replayed";

/// Longest key accepted, in characters (bytes: keys are ASCII).
pub const MAX_KEY_LEN: usize = 255;

/// `ORDERS_IDEMPOTENCY_TTL` unless set: how long a key is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The keys table.
pub const TABLE: &str = "idempotency_keys";

/// The keys table for the `retention` crate: a row's age counts from `created_at`
/// (index `idempotency_keys_created_at`); rows are deleted by `order_id`, unique.
pub const RETENTION_TABLE: retention::Table = retention::Table {
    name: TABLE,
    key: "order_id",
    age_column: "created_at",
};

/// Retention of the keys table: rows older than `ttl` go.
pub fn retention_policy(ttl: Duration) -> retention::Policy {
    retention::Policy::new(RETENTION_TABLE, ttl)
}

/// A valid idempotency key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why a key was refused; the message names the metadata key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{METADATA_KEY} must be 1 to {MAX_KEY_LEN} visible ASCII characters (0x21-0x7E), got {0}"
    )]
    Invalid(&'static str),
    #[error("{METADATA_KEY} must be given at most once, got {0} values")]
    Repeated(usize),
}

impl IdempotencyKey {
    /// Checks `text` against the rules (see the type).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Invalid("an empty value"));
        }
        if text.len() > MAX_KEY_LEN {
            return Err(KeyError::Invalid("a longer value"));
        }
        if !text.bytes().all(|byte| (0x21..=0x7e).contains(&byte)) {
            return Err(KeyError::Invalid(
                "a value with spaces, control or non-ASCII characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The key of a call's metadata, if it has one.
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Option<Self>, KeyError> {
        let values: Vec<_> = metadata.get_all(METADATA_KEY).iter().collect();
        match values.as_slice() {
            [] => Ok(None),
            [value] => {
                let text = value.to_str().map_err(|_| {
                    KeyError::Invalid("a value with spaces, control or non-ASCII characters")
                })?;
                Self::parse(text).map(Some)
            }
            more => Err(KeyError::Repeated(more.len())),
        }
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a keyed request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConflict {
    /// The key was used (and is remembered) for another request of the same user.
    #[error(
        "{METADATA_KEY} {0:?} was already used for a different request (another user_id or other items); use a new key for a new order"
    )]
    DifferentRequest(String),
    /// The key's row was not found right after the key was seen taken: a concurrent
    /// request under the same key, or the key expiring at that moment. Retrying works.
    #[error("a request with {METADATA_KEY} {0:?} is in progress; retry later")]
    InProgress(String),
}

/// Version of the fingerprint's encoding, part of what is hashed: a later encoding
/// never matches an earlier one's fingerprint by accident.
const FINGERPRINT_VERSION: &[u8] = b"orders.CreateOrder.v1";

/// SHA-256 over a canonical encoding of the order: the version tag, `user_id`, the
/// number of items, then each item's `product_id`, `quantity` and `price`, in order,
/// all big-endian fixed-width integers (so no two requests encode alike). The total
/// is derived from the items and not included.
pub fn fingerprint(order: &NewOrder) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_VERSION);
    hash.update(order.user_id.to_be_bytes());
    hash.update((order.items.len() as u64).to_be_bytes());
    for item in &order.items {
        hash.update(item.product_id.to_be_bytes());
        hash.update(item.quantity.to_be_bytes());
        hash.update(item.price.to_be_bytes());
    }
    hash.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::validation::NewItem;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        for good in [
            "a",
            "~",
            "!",
            &"k".repeat(255),
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(IdempotencyKey::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", " ", "a b", "a\tb", "é", "\u{7f}", &"k".repeat(256)] {
            let err = IdempotencyKey::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("idempotency-key must be"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn metadata_gives_at_most_one_key() {
        let mut metadata = MetadataMap::new();
        assert_eq!(IdempotencyKey::from_metadata(&metadata), Ok(None));
        metadata.insert(METADATA_KEY, "k1".parse().unwrap());
        assert_eq!(
            IdempotencyKey::from_metadata(&metadata),
            Ok(Some(IdempotencyKey("k1".into())))
        );
        metadata.append(METADATA_KEY, "k2".parse().unwrap());
        assert_eq!(
            IdempotencyKey::from_metadata(&metadata),
            Err(KeyError::Repeated(2))
        );
        let mut spaced = MetadataMap::new();
        spaced.insert(METADATA_KEY, "a b".parse().unwrap());
        assert!(IdempotencyKey::from_metadata(&spaced).is_err());
    }

    #[test]
    fn the_fingerprint_covers_the_user_and_every_item_in_order() {
        let order = |user_id, items: &[(i64, i32, i64)]| NewOrder {
            user_id,
            total_amount: 0,
            items: items
                .iter()
                .map(|&(product_id, quantity, price)| NewItem {
                    product_id,
                    quantity,
                    price,
                })
                .collect(),
        };
        let base = fingerprint(&order(1, &[(1, 2, 3), (4, 5, 6)]));
        assert_eq!(base.len(), 32);
        assert_eq!(base, fingerprint(&order(1, &[(1, 2, 3), (4, 5, 6)])));
        for other in [
            order(2, &[(1, 2, 3), (4, 5, 6)]),
            order(1, &[(4, 5, 6), (1, 2, 3)]),
            order(1, &[(1, 2, 3)]),
            order(1, &[(1, 2, 4), (4, 5, 6)]),
        ] {
            assert_ne!(base, fingerprint(&other), "{other:?}");
        }
    }
}
