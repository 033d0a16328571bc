//! `ORDERS_KAFKA_PARTITIONS`, `PAYMENTS_KAFKA_PARTITIONS`,
//! `NOTIFICATIONS_KAFKA_PARTITIONS`: which partitions of the topic it consumes one
//! instance of the service reads.
//!
//! The `kafka` crate has no consumer-group membership, so a worker scales out by
//! giving each instance its own partitions: `PAYMENTS_KAFKA_PARTITIONS=0,1` on one,
//! `PAYMENTS_KAFKA_PARTITIONS=2` on another. Empty (the default) reads every
//! partition. Each service has its own variable: in an env file shared by the
//! services, one list would leave partitions of the other services' topics unread.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::list::{self, ListError};

/// A comma-separated list of partition numbers; empty means "all partitions".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionList(Vec<i32>);

impl PartitionList {
    /// The partitions to read, or `None` for all of them (the `bus` consumer's form).
    pub fn selected(&self) -> Option<Vec<i32>> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.clone())
        }
    }
}

impl FromStr for PartitionList {
    type Err = ListError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        list::PARTITIONS
            .parse(input, |part, earlier| {
                let partition: i32 = part
                    .parse()
                    .map_err(|_| format!("{part:?} is not a partition number"))?;
                if partition < 0 {
                    return Err(format!("{partition} is negative"));
                }
                if earlier.contains(&partition) {
                    return Err(format!("{partition} is listed twice"));
                }
                Ok(partition)
            })
            .map(Self)
    }
}

impl fmt::Display for PartitionList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.0.iter().map(i32::to_string).collect();
        f.write_str(&text.join(","))
    }
}

impl Serialize for PartitionList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartitionList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PartitionListVisitor)
    }
}

/// Takes the environment's text (`"0,2"`), and in a TOML file also a number or an array.
struct PartitionListVisitor;

impl<'de> de::Visitor<'de> for PartitionListVisitor {
    type Value = PartitionList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("partition numbers such as 0,1,2 (empty for all)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        value.to_string().parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        value.to_string().parse().map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut text = Vec::new();
        while let Some(partition) = seq.next_element::<i64>()? {
            text.push(partition.to_string());
        }
        text.join(",").parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_all_and_lists_are_checked() {
        assert_eq!("".parse::<PartitionList>().unwrap().selected(), None);
        assert_eq!(
            " 0, 2 ,5".parse::<PartitionList>().unwrap().selected(),
            Some(vec![0, 2, 5])
        );
        assert!("1,x".parse::<PartitionList>().is_err());
        assert!("-1".parse::<PartitionList>().is_err());
        assert!("1,1".parse::<PartitionList>().is_err());
        assert_eq!("0,2".parse::<PartitionList>().unwrap().to_string(), "0,2");
    }
}
