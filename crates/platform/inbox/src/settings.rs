//! How long the inbox's tables keep their rows, the same variables in every consuming
//! service, checked in one place.

use std::time::Duration;

use settings::GoDuration;

/// The variables the inbox reads in every service that has one.
pub const ENV_VARS: [&str; 2] = ["PROCESSED_EVENTS_RETENTION", "DEAD_LETTERS_RETENTION"];

/// The shortest non-zero `PROCESSED_EVENTS_RETENTION` accepted.
pub const MIN_PROCESSED_EVENTS_RETENTION: Duration = Duration::from_secs(3600);

/// `processed_events` for the `retention` crate: the deduplication record, aged from
/// `processed_at` (index `processed_events_processed_at`).
pub const PROCESSED_EVENTS_TABLE: retention::Table = retention::Table {
    name: "processed_events",
    key: "event_id",
    age_column: "processed_at",
};

/// `dead_letters` for the `retention` crate, aged from `received_at` (index
/// `dead_letters_received`).
pub const DEAD_LETTERS_TABLE: retention::Table = retention::Table {
    name: "dead_letters",
    key: "id",
    age_column: "received_at",
};

/// `PROCESSED_EVENTS_RETENTION` and `DEAD_LETTERS_RETENTION`; zero keeps a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxSettings {
    /// The deduplication window: must stay far longer than any redelivery.
    pub processed_events_retention: Duration,
    pub dead_letters_retention: Duration,
}

impl InboxSettings {
    /// 720 h (30 days) for both.
    pub const DEFAULT: Self = Self {
        processed_events_retention: Duration::from_secs(720 * 3600),
        dead_letters_retention: Duration::from_secs(720 * 3600),
    };

    /// Refuses a deduplication window too short to be a policy.
    pub fn check(&self) -> Result<(), String> {
        // A redelivery from beyond the window is handled as a new event instead of
        // skipped at once; shorter than an hour is a typo, not a policy.
        let dedup = self.processed_events_retention;
        if !dedup.is_zero() && dedup < MIN_PROCESSED_EVENTS_RETENTION {
            return Err(format!(
                "PROCESSED_EVENTS_RETENTION = {}: must be 0 (keep forever) or at least {}, \
                 longer than any redelivery (the consumed topic's retention)",
                GoDuration(dedup),
                GoDuration(MIN_PROCESSED_EVENTS_RETENTION)
            ));
        }
        Ok(())
    }

    /// What retention keeps of the inbox's tables.
    pub fn retention_policies(&self) -> [retention::Policy; 2] {
        [
            retention::Policy::new(PROCESSED_EVENTS_TABLE, self.processed_events_retention),
            retention::Policy::new(DEAD_LETTERS_TABLE, self.dead_letters_retention),
        ]
    }
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}
