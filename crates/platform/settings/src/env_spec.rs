//! What a service does with each environment variable name it knows: reads it, reads
//! it as another name of one of its settings, accepts it because only its Go twin
//! uses it, or warns that it is another service's.
//!
//! One deployment may share one env file between services (the Go platform's names
//! overlap: `KAFKA_TOPIC` is orders' topic, `KAFKA_SENDER_PERIOD` payments' relay
//! tick, `KAFKA_CONSUMER_GROUP` the group of payments and notifications), so a service
//! must never take another service's variable for its own, and must not stop on a
//! variable only the Go service needs.

use std::collections::BTreeMap;

/// Another service's variable that this service does not read, although its name
/// suggests it might (or an earlier release did). Set while the service's own
/// variable for that setting is not, it is reported at start-up with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRead {
    /// The other service's variable, e.g. `KAFKA_SENDER_PERIOD` seen by orders.
    pub name: &'static str,
    /// What it is, e.g. "the payments service's relay tick".
    pub whose: &'static str,
    /// This service's own variable for that setting, e.g. `KAFKA_PERIOD`.
    pub instead: &'static str,
}

/// Every environment variable name a service knows.
#[derive(Debug, Clone, Copy)]
pub struct EnvSpec<'a> {
    /// The service, as its log lines name it.
    pub service: &'a str,
    /// The variable naming the optional TOML file (`ORDERS_CONFIG`, ...).
    pub config_file_var: &'a str,
    /// Every variable the service reads. Each is the uppercase name of a field of its
    /// settings struct, but for the names in `aliases`.
    pub read: &'a [&'a str],
    /// `(alias, variable)`: `alias` (also listed in `read`) is read as `variable` when
    /// `variable` is set neither in the environment nor in the file. Environment only.
    pub aliases: &'a [(&'a str, &'a str)],
    /// Variables only the Go twin uses: accepted, never refused, named in one info
    /// line at start-up when set.
    pub go_only: &'a [&'a str],
    /// Other services' variables, warned of when set without the service's own.
    pub not_read: &'a [NotRead],
}

impl EnvSpec<'_> {
    /// True for a name of `read` that is a settings field (not an alias).
    pub(crate) fn is_field(&self, var: &str) -> bool {
        self.read.contains(&var) && !self.aliases.iter().any(|(alias, _)| *alias == var)
    }

    /// What the service will say at start-up about `env`, given the variables set in
    /// the file (`file_vars`, uppercase).
    pub(crate) fn notes(&self, env: &BTreeMap<String, String>, file_vars: &[String]) -> Notes {
        let set = |var: &str| env.contains_key(var) || file_vars.iter().any(|file| file == var);
        Notes {
            service: self.service.to_owned(),
            go_only: self
                .go_only
                .iter()
                .filter(|var| env.contains_key(**var))
                .map(|var| (*var).to_owned())
                .collect(),
            not_read: self
                .not_read
                .iter()
                .filter(|other| env.contains_key(other.name) && !set(other.instead))
                .map(|other| {
                    format!(
                        "{name} is set but {service} does not read it: it is {whose}; \
                         {service} reads {instead}, which is not set",
                        name = other.name,
                        service = self.service,
                        whose = other.whose,
                        instead = other.instead,
                    )
                })
                .collect(),
        }
    }
}

/// What a service reports about its environment once, at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    service: String,
    /// The Go-only variables that are set, in the order the service lists them.
    pub go_only: Vec<String>,
    /// One warning per other service's variable set without the service's own.
    pub not_read: Vec<String>,
}

impl Notes {
    /// The info line naming the Go-only variables that are set, if any.
    pub fn go_only_line(&self) -> Option<String> {
        (!self.go_only.is_empty()).then(|| {
            format!(
                "accepted, only the Go service uses: {}",
                self.go_only.join(", ")
            )
        })
    }

    /// Logs [`Notes::go_only_line`] at info and each of [`Notes::not_read`] at warn.
    pub fn log(&self) {
        if let Some(line) = self.go_only_line() {
            tracing::info!(service = %self.service, "{line}");
        }
        for warning in &self.not_read {
            tracing::warn!(service = %self.service, "{warning}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_from_pairs;

    const SPEC: EnvSpec<'static> = EnvSpec {
        service: "orders",
        config_file_var: "ORDERS_CONFIG",
        read: &["KAFKA_PERIOD", "ORDERS_DB_POOL_SIZE", "ORDERS_PG_MAX_CONNS"],
        aliases: &[("ORDERS_PG_MAX_CONNS", "ORDERS_DB_POOL_SIZE")],
        go_only: &["env", "ENV", "ORDERS_PG_MIN_CONNS"],
        not_read: &[NotRead {
            name: "KAFKA_SENDER_PERIOD",
            whose: "the payments service's relay tick",
            instead: "KAFKA_PERIOD",
        }],
    };

    #[test]
    fn aliases_are_read_but_are_no_fields() {
        assert!(SPEC.is_field("ORDERS_DB_POOL_SIZE"));
        assert!(!SPEC.is_field("ORDERS_PG_MAX_CONNS"));
        assert!(!SPEC.is_field("env"));
    }

    #[test]
    fn go_only_variables_that_are_set_are_named_in_one_line() {
        let notes = SPEC.notes(
            &env_from_pairs(&[("env", "local"), ("ORDERS_PG_MIN_CONNS", "2")]),
            &[],
        );
        assert_eq!(
            notes.go_only_line().as_deref(),
            Some("accepted, only the Go service uses: env, ORDERS_PG_MIN_CONNS")
        );
        assert_eq!(SPEC.notes(&env_from_pairs(&[]), &[]).go_only_line(), None);
    }

    #[test]
    fn another_services_variable_is_warned_of_only_without_the_own_one() {
        let alone = SPEC.notes(&env_from_pairs(&[("KAFKA_SENDER_PERIOD", "1s")]), &[]);
        assert_eq!(
            alone.not_read,
            [
                "KAFKA_SENDER_PERIOD is set but orders does not read it: it is the payments \
              service's relay tick; orders reads KAFKA_PERIOD, which is not set"
            ]
        );
        let both = env_from_pairs(&[("KAFKA_SENDER_PERIOD", "1s"), ("KAFKA_PERIOD", "1s")]);
        assert!(SPEC.notes(&both, &[]).not_read.is_empty());
        let in_file = SPEC.notes(
            &env_from_pairs(&[("KAFKA_SENDER_PERIOD", "1s")]),
            &["KAFKA_PERIOD".to_owned()],
        );
        assert!(in_file.not_read.is_empty());
    }
}
