//! The REST contract's JSON and its conversion to and from `orders.v1`.
//!
//! Requests are parsed strictly ([`parse_create_order`]): unknown fields, duplicate
//! fields, trailing data, wrong types and missing fields are refused with serde's
//! message, which names the field and the line and column. Keys are matched to field
//! names as the Go gateway's `encoding/json` matches them: exactly, else ignoring
//! case ([`crate::json_keys`]). Business rules (positive ids and prices, at least
//! one item, the total fitting in i64, ...) are checked by orders, the one place
//! they live; its INVALID_ARGUMENT message reaches the client unchanged. The
//! optional `Idempotency-Key` header of `POST /orders` is [`crate::idempotency_key`]'s.

use std::{fmt, marker::PhantomData};

use chrono::{DateTime, SecondsFormat, Utc};
use proto::v1::{self, OrderStatus};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, DeserializeSeed, MapAccess, Visitor},
};
use tonic::Code;
use warp::http::StatusCode;

use crate::{
    errors::ApiError,
    json_keys::{FieldKey, next_value_once},
};

/// `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOrderBody {
    pub user_id: i64,
    pub items: Vec<ItemBody>,
}

/// One line of an order, in requests and responses. `price` is the unit price in
/// minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemBody {
    pub product_id: i64,
    pub quantity: i32,
    pub price: i64,
}

// Written by hand rather than derived: a derived struct also accepts an array of
// its field values (`[1, [[1, 2, 3]]]`), which the contract does not, and matches
// keys exactly, where the Go gateway also takes `User_Id` ([`json_keys`]).

/// A struct read from a JSON object (and from nothing else), field by field.
trait FromObject: Sized {
    fn from_object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// The visitor of every [`FromObject`]: only a map is accepted.
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: FromObject> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_object(map)
    }
}

impl<'de> Deserialize<'de> for CreateOrderBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (user_id, items) = CreateOrderFields {
            user_id_required: true,
        }
        .deserialize(deserializer)?;
        Ok(Self {
            user_id: user_id.unwrap_or_default(),
            items,
        })
    }
}

/// A `POST /orders` body's fields. `user_id` may be left out only where a token
/// names the user (`user_id_required: false`); serde's errors keep their line and
/// column either way.
struct CreateOrderFields {
    user_id_required: bool,
}

impl<'de> DeserializeSeed<'de> for CreateOrderFields {
    type Value = (Option<i64>, Vec<ItemBody>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CreateOrderFields {
    type Value = (Option<i64>, Vec<ItemBody>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const FIELDS: &[&str] = &["user_id", "items"];
        let (mut user_id, mut items) = (None, None);
        while let Some(field) = map.next_key_seed(FieldKey(FIELDS))? {
            match field {
                0 => next_value_once(&mut map, &mut user_id, "user_id")?,
                _ => next_value_once(&mut map, &mut items, "items")?,
            }
        }
        if self.user_id_required && user_id.is_none() {
            return Err(de::Error::missing_field("user_id"));
        }
        Ok((
            user_id,
            items.ok_or_else(|| de::Error::missing_field("items"))?,
        ))
    }
}

impl<'de> Deserialize<'de> for ItemBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

impl FromObject for ItemBody {
    fn from_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        const FIELDS: &[&str] = &["product_id", "quantity", "price"];
        let (mut product_id, mut quantity, mut price) = (None, None, None);
        while let Some(field) = map.next_key_seed(FieldKey(FIELDS))? {
            match field {
                0 => next_value_once(&mut map, &mut product_id, "product_id")?,
                1 => next_value_once(&mut map, &mut quantity, "quantity")?,
                _ => next_value_once(&mut map, &mut price, "price")?,
            }
        }
        Ok(Self {
            product_id: product_id.ok_or_else(|| de::Error::missing_field("product_id"))?,
            quantity: quantity.ok_or_else(|| de::Error::missing_field("quantity"))?,
            price: price.ok_or_else(|| de::Error::missing_field("price"))?,
        })
    }
}

/// `POST /orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrderAnswer {
    pub order_id: i64,
}

/// `GET /orders/{id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOrderAnswer {
    pub order: OrderBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBody {
    pub order_id: i64,
    pub user_id: i64,
    /// The `OrderStatus` enum value's name: `"new"`, then `"paid"` or
    /// `"payment_failed"`; `"unspecified"` (also for a value this gateway does not
    /// know yet).
    pub status: String,
    pub items: Vec<ItemBody>,
    pub total_amount: i64,
    /// RFC 3339 in whole seconds, UTC (`2026-11-25T10:00:00Z`), as the Go gateway
    /// prints it (`Timestamp.AsTime().Format(time.RFC3339)`); `null` if orders sent none.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// Parses a `POST /orders` body strictly; the error is a 400 naming the problem.
pub fn parse_create_order(body: &[u8]) -> Result<CreateOrderBody, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::invalid_argument(format!("invalid request body: {err}")))
}

/// Parses a `POST /orders` body of the authenticated `user`: `user_id` may be left
/// out (it is `user`); another user's id is 403.
pub fn parse_create_order_as(body: &[u8], user: i64) -> Result<CreateOrderBody, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let (user_id, items) = CreateOrderFields {
        user_id_required: false,
    }
    .deserialize(&mut deserializer)
    .and_then(|fields| deserializer.end().map(|()| fields))
    .map_err(|err| ApiError::invalid_argument(format!("invalid request body: {err}")))?;
    match user_id {
        Some(other) if other != user => Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            Code::PermissionDenied,
            format!(
                "user_id {other} is not the user of the token; leave user_id out or send the token's user"
            ),
        )),
        _ => Ok(CreateOrderBody {
            user_id: user,
            items,
        }),
    }
}

/// Parses the `{id}` of `GET /orders/{id}`.
pub fn parse_order_id(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::invalid_argument(format!(
            "order id must be a positive integer, got {text:?}"
        ))),
    }
}

impl From<CreateOrderBody> for v1::CreateOrderRequest {
    fn from(body: CreateOrderBody) -> Self {
        v1::CreateOrderRequest {
            user_id: body.user_id,
            items: body
                .items
                .into_iter()
                .map(|item| v1::OrderItem {
                    product_id: item.product_id,
                    quantity: item.quantity,
                    price: Some(v1::Money { money: item.price }),
                })
                .collect(),
        }
    }
}

impl From<v1::Order> for OrderBody {
    fn from(order: v1::Order) -> Self {
        OrderBody {
            order_id: order.order_id,
            user_id: order.user_id,
            status: status_name(order.status).to_owned(),
            items: order
                .items
                .into_iter()
                .map(|item| ItemBody {
                    product_id: item.product_id,
                    quantity: item.quantity,
                    price: item.price.map_or(0, |money| money.money),
                })
                .collect(),
            total_amount: order.total_amount.map_or(0, |money| money.money),
            created_at: order.created_at.as_ref().and_then(rfc3339),
            updated_at: order.updated_at.as_ref().and_then(rfc3339),
        }
    }
}

/// The proto enum name of a status; a number this gateway does not know renders as
/// `"unspecified"`.
pub fn status_name(status: i32) -> &'static str {
    match OrderStatus::try_from(status) {
        Ok(known) => known.as_str_name(),
        Err(_) => {
            tracing::warn!(
                status,
                "orders sent an order status this gateway does not know"
            );
            OrderStatus::Unspecified.as_str_name()
        }
    }
}

/// A time as the Go gateway prints it: `Timestamp.AsTime().Format(time.RFC3339)`, that
/// is UTC with `Z`, in whole seconds. The fraction is dropped, not rounded (so
/// `.999999` stays in its second), and, as Go's `time.Unix` does, nanos outside
/// 0..1e9 carry into the seconds. `None` for a time chrono cannot represent.
fn rfc3339(time: &proto::Timestamp) -> Option<String> {
    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    let carry = i64::from(time.nanos).div_euclid(NANOS_PER_SECOND);
    let seconds = time.seconds.checked_add(carry)?;
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_contract_body() {
        let body = parse_create_order(
            br#"{"user_id": 7, "items": [{"product_id": 1, "quantity": 2, "price": 150}]}"#,
        )
        .unwrap();
        let request = v1::CreateOrderRequest::from(body);
        assert_eq!(request.user_id, 7);
        assert_eq!(request.items[0].price, Some(v1::Money { money: 150 }));
    }

    #[test]
    fn refuses_what_the_contract_does_not_allow() {
        let err = |text: &str| parse_create_order(text.as_bytes()).unwrap_err().message;
        assert!(err(r#"{"user_id": 1, "items": [], "x": 1}"#).contains("unknown field `x`"));
        assert!(err(r#"{"user_id": 1, "items": []} {}"#).contains("trailing characters"));
        assert!(err(r#"{"user_id": "1", "items": []}"#).contains("invalid type: string"));
        assert!(err(r#"{"items": []}"#).contains("missing field `user_id`"));
        assert!(err(r#"{"user_id": 1,"#).contains("EOF while parsing"));
        assert!(err(r#"[1, []]"#).contains("expected a JSON object"));
        assert!(err(r#"{"user_id": 1, "items": [[1, 1, 1]]}"#).contains("expected a JSON object"));
        assert!(
            err(r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 3000000000, "price": 1}]}"#)
                .contains("expected i32")
        );
    }

    #[test]
    fn keys_match_field_names_ignoring_case_as_go_does() {
        let body = parse_create_order(
            br#"{"User_Id": 1, "Items": [{"Product_ID": 2, "quantity": 3, "PRICE": 5}]}"#,
        )
        .unwrap();
        assert_eq!(
            body,
            CreateOrderBody {
                user_id: 1,
                items: vec![ItemBody {
                    product_id: 2,
                    quantity: 3,
                    price: 5
                }]
            }
        );
        let err = |text: &str| parse_create_order(text.as_bytes()).unwrap_err().message;
        // A second key for a field is refused, also when it differs only in case.
        assert!(
            err(r#"{"user_id": 1, "USER_ID": 2, "items": []}"#)
                .contains("duplicate field `user_id` at line 1 column 24"),
        );
        assert!(err(r#"{"items": [], "items": []}"#).contains("duplicate field `items`"));
        assert!(
            err(r#"{"user_id": 1, "items": [{"price": 1, "Price": 1}]}"#)
                .contains("duplicate field `price`")
        );
        // Case is all that may differ.
        assert!(
            err(r#"{"userId": 1, "items": []}"#)
                .contains("unknown field `userId`, expected `user_id` or `items`")
        );
    }

    #[test]
    fn order_ids_must_be_positive_integers() {
        assert_eq!(parse_order_id("42").unwrap(), 42);
        for bad in ["abc", "0", "-3", "1.5", "99999999999999999999", ""] {
            let err = parse_order_id(bad).unwrap_err();
            assert_eq!(
                err.message,
                format!("order id must be a positive integer, got {bad:?}")
            );
        }
    }

    #[test]
    fn times_are_whole_seconds_in_utc_truncated_as_go_prints_them() {
        let at = |seconds, nanos| rfc3339(&proto::Timestamp { seconds, nanos });
        for (seconds, nanos, text) in [
            (1_795_000_000, 0, "2026-11-18T11:06:40Z"),
            (1_795_000_000, 123_456_000, "2026-11-18T11:06:40Z"),
            // Dropped, not rounded up into the next second.
            (1_795_000_000, 999_999_999, "2026-11-18T11:06:40Z"),
            (0, 0, "1970-01-01T00:00:00Z"),
            // Before 1970 the second is still the one the time is in.
            (-1, 500_000_000, "1969-12-31T23:59:59Z"),
            // Out-of-range nanos carry into the seconds, as Go's time.Unix does.
            (1_795_000_000, 1_500_000_000, "2026-11-18T11:06:41Z"),
            (1_795_000_000, -1, "2026-11-18T11:06:39Z"),
        ] {
            assert_eq!(
                at(seconds, nanos).as_deref(),
                Some(text),
                "{seconds} {nanos}"
            );
        }
        assert_eq!(at(i64::MAX, 0), None);
        assert_eq!(at(i64::MAX, 1_000_000_000), None);
    }

    #[test]
    fn renders_orders_with_rfc3339_times_and_status_names() {
        let order = v1::Order {
            order_id: 5,
            user_id: 7,
            status: OrderStatus::New as i32,
            items: vec![v1::OrderItem {
                product_id: 1,
                quantity: 2,
                price: Some(v1::Money { money: 150 }),
            }],
            total_amount: Some(v1::Money { money: 300 }),
            created_at: Some(proto::Timestamp {
                seconds: 1_795_000_000,
                nanos: 123_456_000,
            }),
            updated_at: None,
        };
        let json = serde_json::to_value(OrderBody::from(order)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"order_id": 5, "user_id": 7, "status": "new",
                "items": [{"product_id": 1, "quantity": 2, "price": 150}],
                "total_amount": 300, "created_at": "2026-11-18T11:06:40Z",
                "updated_at": null})
        );
        assert_eq!(status_name(0), "unspecified");
        assert_eq!(status_name(1), "new");
        assert_eq!(status_name(2), "paid");
        assert_eq!(status_name(3), "payment_failed");
        assert_eq!(status_name(99), "unspecified");
    }

    #[test]
    fn an_authenticated_body_may_leave_out_its_user_but_not_name_another() {
        let items = br#"{"items": [{"product_id": 1, "quantity": 2, "price": 150}]}"#;
        assert_eq!(parse_create_order_as(items, 7).unwrap().user_id, 7);
        let own = br#"{"user_id": 7, "items": []}"#;
        assert_eq!(parse_create_order_as(own, 7).unwrap().user_id, 7);
        let other = parse_create_order_as(br#"{"user_id": 8, "items": []}"#, 7).unwrap_err();
        assert_eq!(
            (other.status, other.code),
            (StatusCode::FORBIDDEN, Code::PermissionDenied)
        );
        assert!(other.message.contains("user_id 8"), "{}", other.message);
        let err = parse_create_order_as(br#"{"items": []} {}"#, 7).unwrap_err();
        assert!(
            err.message.contains("trailing characters"),
            "{}",
            err.message
        );
        let err = parse_create_order_as(br#"{"user_id": 7}"#, 7).unwrap_err();
        assert!(
            err.message
                .contains("missing field `items` at line 1 column 14"),
            "{}",
            err.message
        );
    }
}
