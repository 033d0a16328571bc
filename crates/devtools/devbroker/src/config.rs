//! Broker configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Default limit on a request frame (and on a decompressed message set): 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;
pub const DEFAULT_PARTITIONS: i32 = 3;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on; port 0 picks a free port (see `RunningBroker::local_addr`).
    pub listen: SocketAddr,
    /// Where logs and committed offsets persist; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Topics created at start-up if they do not exist.
    pub topics: Vec<TopicSpec>,
    /// Partition count of auto-created topics.
    pub default_partitions: i32,
    pub max_frame_bytes: usize,
    /// Host to advertise in Metadata/FindCoordinator instead of the address each client
    /// connected to (for NAT or container setups).
    pub advertised_host: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            topics: Vec::new(),
            default_partitions: DEFAULT_PARTITIONS,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            advertised_host: None,
        }
    }
}

/// `NAME:PARTITIONS`, as given to `--topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

impl FromStr for TopicSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, partitions) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected NAME:PARTITIONS, got {s:?}"))?;
        if !crate::log::valid_topic_name(name) {
            return Err(format!("invalid topic name {name:?}"));
        }
        let partitions: i32 = partitions
            .parse()
            .map_err(|_| format!("invalid partition count in {s:?}"))?;
        if !(1..=10_000).contains(&partitions) {
            return Err(format!("partition count must be 1-10000 in {s:?}"));
        }
        Ok(Self {
            name: name.to_owned(),
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_spec_parses() {
        assert_eq!(
            "order-topic:6".parse::<TopicSpec>(),
            Ok(TopicSpec {
                name: "order-topic".into(),
                partitions: 6
            })
        );
        assert!("x".parse::<TopicSpec>().is_err());
        assert!("x:0".parse::<TopicSpec>().is_err());
        assert!("a/b:1".parse::<TopicSpec>().is_err());
    }
}
