//! The `Idempotency-Key` header of `POST /orders`: checked here
//! ([`parse_idempotency_key`]), forwarded to orders as its `idempotency-key` metadata,
//! and orders' `idempotent-replayed` answer metadata turned into the
//! `Idempotent-Replayed: true` header.

use crate::errors::ApiError;

/// The request header carrying an idempotency key on `POST /orders`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// The gRPC metadata orders reads the key from.
pub const IDEMPOTENCY_KEY_METADATA: &str = "idempotency-key";
/// The answer header of a `POST /orders` that replays an earlier answer.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// The gRPC response metadata saying orders replayed an earlier answer.
pub const IDEMPOTENT_REPLAYED_METADATA: &str = "idempotent-replayed";
/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` of a `POST /orders`, from all the values the request gave
/// for it: none, or one of 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters
/// (0x21-0x7E; the rule orders applies to its metadata too). Anything else is a 400
/// naming the header.
pub fn parse_idempotency_key<'a, I>(values: I) -> Result<Option<String>, ApiError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_argument(format!(
            "{IDEMPOTENCY_KEY_HEADER} header must be given at most once"
        )));
    }
    let visible = value.iter().all(|byte| (0x21..=0x7e).contains(byte));
    match std::str::from_utf8(value) {
        Ok(key) if visible && (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::invalid_argument(format!(
            "{IDEMPOTENCY_KEY_HEADER} header must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters (0x21-0x7E)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn idempotency_keys_are_one_to_255_visible_ascii_characters_given_once() {
        let parse = |values: &[&[u8]]| parse_idempotency_key(values.iter().copied());
        assert_eq!(parse(&[]).unwrap(), None);
        let long = "k".repeat(255);
        for good in [
            "a",
            "!~",
            long.as_str(),
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(parse(&[good.as_bytes()]).unwrap().as_deref(), Some(good));
        }
        let too_long = "k".repeat(256);
        for bad in [
            &b""[..],
            b" ",
            b"a b",
            b"a\tb",
            "\u{e9}".as_bytes(),
            b"\x7f",
            too_long.as_bytes(),
        ] {
            let err = parse(&[bad]).unwrap_err();
            assert_eq!(err.status, warp::http::StatusCode::BAD_REQUEST);
            assert_eq!(
                err.message,
                "Idempotency-Key header must be 1 to 255 visible ASCII characters (0x21-0x7E)",
                "{bad:?}"
            );
        }
        let twice = parse(&[b"a", b"a"]).unwrap_err();
        assert_eq!(
            twice.message,
            "Idempotency-Key header must be given at most once"
        );
    }
}
