//! Turns a `CreateOrderRequest` into a [`NewOrder`] or an error naming the field.

use proto::v1::CreateOrderRequest;

/// Most items one order may hold.
pub const MAX_ITEMS: usize = 1000;

/// A validated order, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub user_id: i64,
    pub items: Vec<NewItem>,
    /// Sum of quantity * price, computed with checked arithmetic.
    pub total_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub product_id: i64,
    pub quantity: i32,
    /// Unit price in minor units.
    pub price: i64,
}

/// What is wrong with a request; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(String);

pub fn validate(request: &CreateOrderRequest) -> Result<NewOrder, ValidationError> {
    let fail = |message: String| Err(ValidationError(message));
    if request.user_id <= 0 {
        return fail(format!("user_id must be positive, got {}", request.user_id));
    }
    if request.items.is_empty() {
        return fail("items must not be empty".to_owned());
    }
    if request.items.len() > MAX_ITEMS {
        return fail(format!(
            "items: at most {MAX_ITEMS} items per order, got {}",
            request.items.len()
        ));
    }
    let mut items = Vec::with_capacity(request.items.len());
    let mut total_amount: i64 = 0;
    for (index, item) in request.items.iter().enumerate() {
        if item.product_id <= 0 {
            return fail(format!(
                "items[{index}].product_id must be positive, got {}",
                item.product_id
            ));
        }
        if item.quantity < 1 {
            return fail(format!(
                "items[{index}].quantity must be at least 1, got {}",
                item.quantity
            ));
        }
        let Some(price) = item.price.as_ref().map(|money| money.money) else {
            return fail(format!("items[{index}].price is required"));
        };
        // As the Go orders service (`ErrInvalidPrice`): a price of 0 is refused too.
        if price <= 0 {
            return fail(format!(
                "items[{index}].price must be positive, got {price}"
            ));
        }
        let line = price.checked_mul(i64::from(item.quantity));
        total_amount = match line.and_then(|line| total_amount.checked_add(line)) {
            Some(total) => total,
            None => {
                return fail(format!(
                    "total_amount overflows int64 at items[{index}] (quantity * price summed over the order)"
                ));
            }
        };
        items.push(NewItem {
            product_id: item.product_id,
            quantity: item.quantity,
            price,
        });
    }
    Ok(NewOrder {
        user_id: request.user_id,
        items,
        total_amount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{Money, OrderItem};

    fn item(product_id: i64, quantity: i32, price: i64) -> OrderItem {
        OrderItem {
            product_id,
            quantity,
            price: Some(Money { money: price }),
        }
    }

    fn request(user_id: i64, items: Vec<OrderItem>) -> CreateOrderRequest {
        CreateOrderRequest { user_id, items }
    }

    #[test]
    fn computes_the_total() {
        let order = validate(&request(1, vec![item(1, 2, 150), item(2, 1, 1)])).unwrap();
        assert_eq!(order.total_amount, 301);
        assert_eq!(order.items.len(), 2);
    }

    #[test]
    fn names_the_bad_field() {
        let err = |req: CreateOrderRequest| validate(&req).unwrap_err().to_string();
        assert_eq!(
            err(request(0, vec![item(1, 1, 1)])),
            "user_id must be positive, got 0"
        );
        assert_eq!(err(request(1, vec![])), "items must not be empty");
        assert_eq!(
            err(request(1, vec![item(1, 1, 1), item(0, 1, 1)])),
            "items[1].product_id must be positive, got 0"
        );
        assert_eq!(
            err(request(1, vec![item(1, 0, 1)])),
            "items[0].quantity must be at least 1, got 0"
        );
        assert_eq!(
            err(request(1, vec![item(1, 1, -5)])),
            "items[0].price must be positive, got -5"
        );
        assert_eq!(
            err(request(1, vec![item(1, 1, 1), item(2, 1, 0)])),
            "items[1].price must be positive, got 0"
        );
        let mut no_price = item(1, 1, 1);
        no_price.price = None;
        assert_eq!(
            err(request(1, vec![no_price])),
            "items[0].price is required"
        );
        assert!(err(request(1, vec![item(1, 1, 1); 1001])).starts_with("items: at most 1000"));
        assert!(
            err(request(1, vec![item(1, 2, i64::MAX)])).starts_with("total_amount overflows int64")
        );
        assert!(
            err(request(1, vec![item(1, 1, i64::MAX), item(2, 1, 1)]))
                .starts_with("total_amount overflows int64 at items[1]")
        );
    }
}
