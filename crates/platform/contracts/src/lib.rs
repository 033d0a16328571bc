//! The platform's event contracts, wire-compatible with the Go services.
//!
//! - [`OrderCreated`] on `order-topic` (orders -> payments);
//! - [`PaymentStatus`] on `status-topic` (payments -> notifications, and orders,
//!   which moves the order to its final status);
//! - [`Notification`], the value notifications stores in Redis under the order id.
//!
//! Each message's `event_id` is the id of the producer's outbox row; consumers
//! deduplicate on it. Messages are keyed by the order id as a decimal string
//! ([`message_key`]) so one order's events stay in one partition. [`decode`] parses
//! and validates a payload and says precisely what is wrong with a bad one.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// `order-topic`: an order was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub event_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub total_amount: i64,
    /// RFC 3339.
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The outcome of a payment, as Go spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentOutcome {
    Succeeded,
    Failed,
}

impl PaymentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentOutcome::Succeeded => "succeeded",
            PaymentOutcome::Failed => "failed",
        }
    }
}

/// `status-topic`: a payment was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentStatus {
    pub event_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub order_status: PaymentOutcome,
}

/// The Redis value stored under the order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub order_id: i64,
    pub user_id: i64,
    pub order_status: PaymentOutcome,
}

/// A payload that is not a valid event: the reason is meant for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEvent(String);

/// Checks a decoded event's fields beyond their JSON types.
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidEvent>;
}

fn positive(name: &str, value: i64) -> Result<(), InvalidEvent> {
    if value > 0 {
        Ok(())
    } else {
        Err(InvalidEvent(format!(
            "{name} must be positive, got {value}"
        )))
    }
}

impl Validate for OrderCreated {
    fn validate(&self) -> Result<(), InvalidEvent> {
        positive("event_id", self.event_id)?;
        positive("order_id", self.order_id)?;
        positive("user_id", self.user_id)?;
        if self.total_amount < 0 {
            return Err(InvalidEvent(format!(
                "total_amount must not be negative, got {}",
                self.total_amount
            )));
        }
        Ok(())
    }
}

impl Validate for PaymentStatus {
    fn validate(&self) -> Result<(), InvalidEvent> {
        positive("event_id", self.event_id)?;
        positive("order_id", self.order_id)?;
        positive("user_id", self.user_id)
    }
}

/// Parses and validates a payload. Unknown fields are tolerated (a newer producer
/// may add some); missing or mistyped ones are not.
pub fn decode<T: DeserializeOwned + Validate>(payload: &[u8]) -> Result<T, InvalidEvent> {
    let event: T = serde_json::from_slice(payload)
        .map_err(|err| InvalidEvent(format!("invalid JSON: {err}")))?;
    event.validate()?;
    Ok(event)
}

/// The Kafka message key (and Redis key) for an order.
pub fn message_key(order_id: i64) -> String {
    order_id.to_string()
}

/// A message this crate defines: the only types [`encode`] takes. Sealed, so no type
/// whose serialization could fail can be added outside this crate.
pub trait Event: Serialize + sealed::Sealed {}

impl Event for OrderCreated {}
impl Event for PaymentStatus {}
impl Event for Notification {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::OrderCreated {}
    impl Sealed for super::PaymentStatus {}
    impl Sealed for super::Notification {}
}

/// Serializes an event to its JSON text. Infallible by construction, see the comment.
pub fn encode<T: Event>(event: &T) -> String {
    // serde_json fails only when a `Serialize` impl reports an error, when a map key is
    // not a string, or when its writer fails. The [`Event`] types are plain structs of
    // integers, unit enum variants (derived impls) and one string (`rfc3339`, which only
    // calls `serialize_str`), and `to_string` writes to memory: none of the three can
    // happen, and the trait is sealed so no other type gets here. The unit tests encode
    // every `Event` type.
    match serde_json::to_string(event) {
        Ok(text) => text,
        Err(err) => unreachable!("an Event failed to serialize: {err}"),
    }
}

mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|err| {
                serde::de::Error::custom(format!("created_at {text:?} is not RFC 3339: {err}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn order_created_has_the_go_shape() {
        let event = OrderCreated {
            event_id: 7,
            order_id: 42,
            user_id: 3,
            total_amount: 1500,
            created_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let value: Value = serde_json::from_str(&encode(&event)).unwrap();
        assert_eq!(
            value,
            json!({"event_id": 7, "order_id": 42, "user_id": 3, "total_amount": 1500,
                   "created_at": "2026-11-25T10:00:00.500Z"})
        );
        assert_eq!(
            decode::<OrderCreated>(encode(&event).as_bytes()).unwrap(),
            event
        );
    }

    #[test]
    fn payment_status_uses_lowercase_outcomes() {
        let text = r#"{"event_id":1,"order_id":2,"user_id":3,"order_status":"failed"}"#;
        let status: PaymentStatus = decode(text.as_bytes()).unwrap();
        assert_eq!(status.order_status, PaymentOutcome::Failed);
        assert_eq!(encode(&status), text);
    }

    #[test]
    fn every_event_type_encodes_to_its_json() {
        let notification = Notification {
            order_id: 5,
            user_id: 6,
            order_status: PaymentOutcome::Succeeded,
        };
        assert_eq!(
            encode(&notification),
            r#"{"order_id":5,"user_id":6,"order_status":"succeeded"}"#
        );
        // The extremes of every field still encode (nothing is ever empty).
        let order = OrderCreated {
            event_id: i64::MIN,
            order_id: i64::MAX,
            user_id: 0,
            total_amount: -1,
            created_at: DateTime::<Utc>::MAX_UTC,
        };
        let value: Value = serde_json::from_str(&encode(&order)).unwrap();
        assert_eq!(value["event_id"], json!(i64::MIN));
        assert_eq!(value["order_id"], json!(i64::MAX));
        assert!(value["created_at"].as_str().is_some_and(|t| !t.is_empty()));
        let status = PaymentStatus {
            event_id: i64::MAX,
            order_id: i64::MIN,
            user_id: 0,
            order_status: PaymentOutcome::Failed,
        };
        let value: Value = serde_json::from_str(&encode(&status)).unwrap();
        assert_eq!(value["order_status"], json!("failed"));
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        let err = |text: &str| {
            decode::<PaymentStatus>(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err("not json").contains("invalid JSON"));
        assert!(err(r#"{"event_id":1,"order_id":2,"user_id":3}"#).contains("order_status"));
        assert!(
            err(r#"{"event_id":1,"order_id":2,"user_id":3,"order_status":"maybe"}"#)
                .contains("maybe")
        );
        assert!(
            err(r#"{"event_id":1,"order_id":0,"user_id":3,"order_status":"failed"}"#)
                .contains("order_id must be positive")
        );
        let err = decode::<OrderCreated>(
            br#"{"event_id":1,"order_id":2,"user_id":3,"total_amount":1,"created_at":"yesterday"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
