//! Protocol versions a broker lacks, as [`crate::BusError::UnsupportedBroker`] reports
//! them (found by [`crate::check_broker_versions`]).

use std::fmt;

/// The versions a broker serves of one API, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: i16,
    pub max: i16,
}

impl VersionRange {
    pub(crate) fn contains(self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// A version the `kafka` client sends that the broker does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVersion {
    /// Kafka's name of the API, e.g. `Produce`.
    pub api: &'static str,
    pub api_key: i16,
    /// The version the client sends.
    pub version: i16,
    /// What the broker serves of that API; `None`: nothing at all.
    pub served: Option<VersionRange>,
}

impl fmt::Display for MissingVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.served {
            Some(r) => write!(
                f,
                "{} v{} (broker serves v{}..v{})",
                self.api, self.version, r.min, r.max
            ),
            None => write!(
                f,
                "{} v{} (broker does not serve {})",
                self.api, self.version, self.api
            ),
        }
    }
}

/// `missing` as a comma-separated list, for [`crate::BusError::UnsupportedBroker`]'s message.
pub(crate) fn list(missing: &[MissingVersion]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
