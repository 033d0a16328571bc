//! What the comma-separated settings (`KAFKA_BROKERS`, the partition lists) share:
//! how the text splits into items, and the error naming the list and its form.

/// A kind of comma-separated list: its name in errors, the form it expects, and
/// whether it may be empty.
pub(crate) struct ListForm {
    name: &'static str,
    expected: &'static str,
    may_be_empty: bool,
}

/// `KAFKA_BROKERS`.
pub(crate) const BROKERS: ListForm = ListForm {
    name: "broker list",
    expected: "host:port[,host:port...]",
    may_be_empty: false,
};

/// A service's partition list, e.g. `PAYMENTS_KAFKA_PARTITIONS` (empty: every partition).
pub(crate) const PARTITIONS: ListForm = ListForm {
    name: "partition list",
    expected: "partition numbers such as 0,1,2, or empty for all",
    may_be_empty: true,
};

impl ListForm {
    /// The items of `input`, trimmed, empty ones (`a,,b`, a trailing comma) skipped,
    /// each read by `item`, which also sees the items before it; the first item it
    /// refuses (with the reason) fails the whole list.
    pub(crate) fn parse<T>(
        &self,
        input: &str,
        mut item: impl FnMut(&str, &[T]) -> Result<T, String>,
    ) -> Result<Vec<T>, ListError> {
        let fail = |reason: String| ListError {
            list: self.name,
            input: input.to_owned(),
            reason,
            expected: self.expected,
        };
        let mut items = Vec::new();
        for text in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let parsed = item(text, &items).map_err(fail)?;
            items.push(parsed);
        }
        if items.is_empty() && !self.may_be_empty {
            return Err(fail("empty".to_owned()));
        }
        Ok(items)
    }
}

/// A comma-separated setting that cannot be read: the list, the text, what is wrong
/// with it and the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {list} {input:?}: {reason} (expected {expected})")]
pub struct ListError {
    list: &'static str,
    input: String,
    reason: String,
    expected: &'static str,
}
