//! The two constructors of every Kafka-using service's settings, written once.

/// Writes `from_env` and `from_vars` for a Kafka-using service's settings struct
/// `$config`: its own settings, named by `$spec` (its [`crate::EnvSpec`]), and the
/// [`crate::KafkaConnection`] section loaded beside them
/// ([`crate::load_with_kafka`]) and put in its `kafka` field, then its own
/// `check(self) -> Result<Self, ConfigError>`, which refuses values that would only
/// fail later.
///
/// ```text
/// settings::impl_from_env_with_kafka!(Config, ENV_SPEC);
/// ```
///
/// A macro rather than a trait: the constructors stay inherent, so callers name
/// `orders::Config::from_env` without importing a trait.
#[macro_export]
macro_rules! impl_from_env_with_kafka {
    ($config:ident, $spec:expr) => {
        impl $config {
            /// Reads the process environment (and the TOML file it may name) and
            /// checks the settings; logs what it accepted without using and other
            /// services' variables it did not take.
            pub fn from_env() -> ::std::result::Result<Self, $crate::ConfigError> {
                let (config, kafka): (Self, _) = $crate::load_with_kafka(&$spec)?;
                Self { kafka, ..config }.check()
            }

            /// As `from_env` from the variables `env`, returning what the service
            /// would log instead of logging it.
            pub fn from_vars(
                env: &::std::collections::BTreeMap<::std::string::String, ::std::string::String>,
            ) -> ::std::result::Result<(Self, $crate::Notes), $crate::ConfigError> {
                let (config, kafka, notes): (Self, _, _) =
                    $crate::load_with_kafka_from(env, &$spec)?;
                ::std::result::Result::Ok((Self { kafka, ..config }.check()?, notes))
            }
        }
    };
}
