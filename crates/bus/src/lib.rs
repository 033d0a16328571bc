//! The platform Kafka adapter (work in progress).
