//! Checks more than one service makes on its loaded settings, so that the same
//! mistake is refused with the same message whichever service meets it. Each returns
//! the message; the service wraps it in [`crate::ConfigError::Other`], as it does the
//! messages of the outbox's, the inbox's and retention's own checks.

/// Refuses the first of `values` (`(variable, value)`) that is empty or only white
/// space: a topic or group name a client would fail on, or silently use, later.
pub fn check_not_blank(values: &[(&str, &str)]) -> Result<(), String> {
    match values.iter().find(|(_, value)| value.trim().is_empty()) {
        Some((var, _)) => Err(format!("{var} must not be empty")),
        None => Ok(()),
    }
}

/// Refuses a service that consumes the topic it publishes to (each `(variable,
/// topic)`): it would consume its own events.
pub fn check_topics_differ(
    service: &str,
    (consumed_var, consumed): (&str, &str),
    (published_var, published): (&str, &str),
) -> Result<(), String> {
    if consumed == published {
        return Err(format!(
            "{consumed_var} and {published_var} are both {consumed:?}: {service} would \
             consume its own events"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_blank_value_is_named() {
        assert_eq!(check_not_blank(&[("A", "a"), ("B", "b")]), Ok(()));
        assert_eq!(
            check_not_blank(&[("A", "a"), ("B", " "), ("C", "")]),
            Err("B must not be empty".to_owned())
        );
    }

    #[test]
    fn a_service_never_consumes_the_topic_it_publishes_to() {
        let consumed = ("KAFKA_TOPIC_ORDER", "orders");
        assert_eq!(
            check_topics_differ("payments", consumed, ("KAFKA_TOPIC_STATUS", "statuses")),
            Ok(())
        );
        assert_eq!(
            check_topics_differ("payments", consumed, ("KAFKA_TOPIC_STATUS", "orders")),
            Err(
                "KAFKA_TOPIC_ORDER and KAFKA_TOPIC_STATUS are both \"orders\": payments would \
                 consume its own events"
                    .to_owned()
            )
        );
    }
}
