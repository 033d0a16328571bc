//! JSON object keys matched to field names as the Go gateway's `encoding/json`
//! matches them, so a body the Go gateway accepts is accepted here too:
//!
//! - a key equal to a field name is that field;
//! - else a key equal to a field name under Go's case folding is that field
//!   (`User_Id`, `PRICE`): ASCII letters without regard to case, and the two
//!   non-ASCII characters whose Unicode simple case folding is an ASCII letter,
//!   `ſ` (U+017F, folds to `s`) and `K` (U+212A, Kelvin sign, folds to `k`), as Go's
//!   `bytes.EqualFold` treats them;
//! - any other key is an unknown field, refused (Go's `DisallowUnknownFields`).
//!
//! Unlike Go, which keeps the last of two keys naming the same field, a second key
//! for a field already given is refused as a duplicate, also when the two differ
//! only in case (`{"user_id": 1, "USER_ID": 2}`): the platform never guesses which
//! value was meant.
//!
//! [`FieldKey`] reads one key as a field index; [`next_value_once`] reads its value
//! and refuses a duplicate. Errors are serde's own (`unknown field`, `duplicate
//! field`), so serde_json adds the line and column.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// Which of `fields` (ASCII names) `key` names: an exact match first, else a match
/// under Go's case folding.
pub fn field_index(key: &str, fields: &[&str]) -> Option<usize> {
    fields
        .iter()
        .position(|field| *field == key)
        .or_else(|| fields.iter().position(|field| equal_fold(key, field)))
}

/// Go's `bytes.EqualFold` against an ASCII name.
fn equal_fold(key: &str, name: &str) -> bool {
    key.chars().map(fold).eq(name.chars().map(fold))
}

/// A character's fold for comparing with ASCII: the ASCII letters' case folds
/// together, and so do the two non-ASCII characters in an ASCII letter's folding
/// orbit. Other characters stay themselves (they can equal no ASCII name).
fn fold(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    }
}

/// Deserializes an object key into the index of the field it names in `.0`; an
/// unknown key is serde's `unknown field` error listing the fields.
#[derive(Debug, Clone, Copy)]
pub struct FieldKey(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for FieldKey {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        field_index(key, self.0).ok_or_else(|| E::unknown_field(key, self.0))
    }
}

/// Reads the value of the key just read into `slot`, named `field`; a second value
/// for the same field is serde's `duplicate field` error.
pub fn next_value_once<'de, A, T>(
    map: &mut A,
    slot: &mut Option<T>,
    field: &'static str,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: de::Deserialize<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &["user_id", "items"];

    #[test]
    fn exact_then_go_case_folding() {
        for (key, index) in [
            ("user_id", Some(0)),
            ("items", Some(1)),
            ("User_Id", Some(0)),
            ("USER_ID", Some(0)),
            ("iTeMs", Some(1)),
            // Go's bytes.EqualFold: the long s folds to s.
            ("item\u{17F}", Some(1)),
            ("user_i", None),
            ("user-id", None),
            ("userid", None),
            ("user_id ", None),
            ("", None),
            // Only simple folding: no dotless i, no full-width letters.
            ("\u{131}tems", None),
            ("\u{FF49}tems", None),
        ] {
            assert_eq!(field_index(key, FIELDS), index, "{key:?}");
        }
        assert_eq!(field_index("\u{212A}ey", &["key"]), Some(0), "Kelvin sign");
    }

    #[test]
    fn an_exact_match_wins_over_a_folded_one() {
        let fields = &["Name", "name"];
        assert_eq!(field_index("name", fields), Some(1));
        assert_eq!(field_index("Name", fields), Some(0));
        assert_eq!(field_index("NAME", fields), Some(0), "first folded match");
    }
}
