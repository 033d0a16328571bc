//! Layering defaults, the optional TOML file and the environment with figment, and
//! turning figment's errors into ones that name the variable.

use std::{collections::BTreeMap, path::Path};

use figment::{
    Figment, Provider,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::KafkaConnection;

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: configuration file {path:?} cannot be read: {reason}")]
    File {
        var: String,
        path: String,
        reason: String,
    },
    #[error("{var} = {value:?} ({source_name}): {reason}")]
    Invalid {
        var: String,
        value: String,
        source_name: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Other(String),
}

/// Loads `T` from its `Default`, then the TOML file named by `config_file_var` (if
/// set), then the process environment restricted to `env_vars`. A key in the file
/// that is not the lowercase name of one of `env_vars` is refused (a typo would
/// otherwise be a setting silently not applied).
pub fn load<T>(config_file_var: &str, env_vars: &[&str]) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_from(&env, config_file_var, env_vars)
}

/// Loads a Kafka-using service's own settings `T` (its variables: `env_vars`) and,
/// from the same defaults, file and environment, its [`KafkaConnection`] section
/// ([`KafkaConnection::ENV_VARS`]), for the service to check
/// ([`KafkaConnection::check`]) with the rest.
pub fn load_with_kafka<T>(
    config_file_var: &str,
    env_vars: &[&str],
) -> Result<(T, KafkaConnection), ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let mut all_vars = env_vars.to_vec();
    all_vars.extend(KafkaConnection::ENV_VARS);
    let own = load_from(&env, config_file_var, &all_vars)?;
    let kafka = load_from(&env, config_file_var, &all_vars)?;
    Ok((own, kafka))
}

/// As [`load`], with the environment given explicitly (tests, embedding).
pub fn load_from<T>(
    env: &BTreeMap<String, String>,
    config_file_var: &str,
    env_vars: &[&str],
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    let mut file_values = BTreeMap::new();
    if let Some(path) = env.get(config_file_var).filter(|path| !path.is_empty()) {
        let text = std::fs::read_to_string(Path::new(path)).map_err(|err| ConfigError::File {
            var: config_file_var.to_owned(),
            path: path.clone(),
            reason: err.to_string(),
        })?;
        let parsed: Dict = Toml::string(&text)
            .data()
            .map_err(|err| ConfigError::File {
                var: config_file_var.to_owned(),
                path: path.clone(),
                reason: err.to_string(),
            })?
            .into_values()
            .next()
            .unwrap_or_default();
        if let Some(unknown) = parsed
            .keys()
            // Exactly the lowercase name: the values are read by it, so `ORDERS_PG_DSN`
            // in a file would otherwise pass this check and then be ignored.
            .find(|key| !env_vars.iter().any(|var| var.to_ascii_lowercase() == **key))
        {
            return Err(ConfigError::File {
                var: config_file_var.to_owned(),
                path: path.clone(),
                reason: format!(
                    "unknown key `{unknown}`: the file takes the lowercase names of the \
                     service's variables ({})",
                    env_vars
                        .iter()
                        .map(|var| var.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        file_values = parsed;
        figment = figment.merge(Toml::string(&text));
    }
    // Environment values stay strings: each setting's type parses its own text, so a
    // password of `123` or a topic named `true` is taken as written.
    let mut from_env = Dict::new();
    for var in env_vars {
        if let Some(value) = env.get(*var) {
            from_env.insert(var.to_ascii_lowercase(), Value::from(value.clone()));
        }
    }
    figment = figment.merge(Serialized::defaults(from_env));
    // Lossy: "4" fills a number, "true" a bool; text fields keep their text.
    figment.extract_lossy().map_err(|err| {
        let key = err.path.first().cloned().unwrap_or_default();
        let var = key.to_ascii_uppercase();
        if let Some(value) = env.get(&var).filter(|_| env_vars.contains(&var.as_str())) {
            ConfigError::Invalid {
                var,
                value: value.clone(),
                source_name: "environment variable".to_owned(),
                reason: err.kind.to_string(),
            }
        } else if let Some(value) = file_values.get(&key) {
            ConfigError::Invalid {
                var: key.clone(),
                value: value_text(value),
                source_name: format!("key in the file named by {config_file_var}"),
                reason: err.kind.to_string(),
            }
        } else {
            ConfigError::Other(err.to_string())
        }
    })
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(_, text) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GoDuration, ListenAddr};
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        sample_addr: ListenAddr,
        sample_period: GoDuration,
        sample_password: String,
        sample_pool_size: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                sample_addr: ListenAddr::all_interfaces(8081),
                sample_period: GoDuration::from_secs(1),
                sample_password: String::new(),
                sample_pool_size: 8,
            }
        }
    }

    const VARS: &[&str] = &[
        "SAMPLE_ADDR",
        "SAMPLE_PERIOD",
        "SAMPLE_PASSWORD",
        "SAMPLE_POOL_SIZE",
    ];

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_environment() {
        let sample: Sample = load_from(&env(&[]), "SAMPLE_CONFIG", VARS).unwrap();
        assert_eq!(sample, Sample::default());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile_dir();
        let path = dir.join("sample.toml");
        std::fs::write(&path, "sample_period = \"5s\"\nsample_pool_size = 3\n").unwrap();
        let sample: Sample = load_from(
            &env(&[
                ("SAMPLE_CONFIG", path.to_str().unwrap()),
                ("SAMPLE_ADDR", ":9000"),
                ("SAMPLE_PASSWORD", "123"),
                ("SAMPLE_POOL_SIZE", "4"),
                ("UNRELATED", "x"),
            ]),
            "SAMPLE_CONFIG",
            VARS,
        )
        .unwrap();
        assert_eq!(sample.sample_addr, ListenAddr::all_interfaces(9000));
        assert_eq!(sample.sample_period, GoDuration::from_secs(5));
        assert_eq!(sample.sample_password, "123");
        assert_eq!(sample.sample_pool_size, 4);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_expectation() {
        let err = load_from::<Sample>(&env(&[("SAMPLE_PERIOD", "soon")]), "SAMPLE_CONFIG", VARS)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SAMPLE_PERIOD = \"soon\""), "{err}");
        assert!(err.contains("Go duration"), "{err}");

        let err = load_from::<Sample>(&env(&[("SAMPLE_POOL_SIZE", "-1")]), "SAMPLE_CONFIG", VARS)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SAMPLE_POOL_SIZE = \"-1\""), "{err}");
    }

    #[test]
    fn a_missing_or_broken_file_is_named() {
        let err = load_from::<Sample>(
            &env(&[("SAMPLE_CONFIG", "/nonexistent/x.toml")]),
            "SAMPLE_CONFIG",
            VARS,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SAMPLE_CONFIG") && err.contains("/nonexistent/x.toml"),
            "{err}"
        );

        let err = file_error("bad.toml", "sample_addr = \"nowhere\"\n");
        assert!(err.starts_with("sample_addr = \"nowhere\""), "{err}");
    }

    #[test]
    fn a_file_key_that_names_no_variable_is_refused_naming_it() {
        let err = file_error("typo.toml", "sample_pool_size = 3\nsample_pool_sise = 4\n");
        assert!(
            err.starts_with("SAMPLE_CONFIG: configuration file"),
            "{err}"
        );
        assert!(err.contains("unknown key `sample_pool_sise`"), "{err}");

        // The variable's own spelling is not a key: keys are the lowercase names.
        let err = file_error("upper.toml", "SAMPLE_POOL_SIZE = 3\n");
        assert!(err.contains("unknown key `SAMPLE_POOL_SIZE`"), "{err}");
        assert!(err.contains("sample_pool_size"), "{err}");
        assert!(err.contains("sample_pool_size"), "{err}");
    }

    #[test]
    fn the_kafka_section_loads_beside_the_service_settings_from_the_same_sources() {
        let mut vars = VARS.to_vec();
        vars.extend(crate::KafkaConnection::ENV_VARS);
        let dir = tempfile_dir();
        let path = dir.join("kafka.toml");
        std::fs::write(
            &path,
            "sample_pool_size = 3\nkafka_brokers = \"a:1,b:2\"\nkafka_sasl_username = \"file\"\n",
        )
        .unwrap();
        let env = env(&[
            ("SAMPLE_CONFIG", path.to_str().unwrap()),
            ("KAFKA_CLIENT", "rdkafka"),
            ("KAFKA_SASL_USERNAME", "123"),
        ]);
        // The service's own struct takes no `deny_unknown_fields`: the file's keys
        // are checked against the variables instead.
        #[derive(Debug, Default, Serialize, Deserialize)]
        #[serde(default)]
        struct Service {
            sample_pool_size: u32,
        }
        let sample: Service = load_from(&env, "SAMPLE_CONFIG", &vars).unwrap();
        let kafka: crate::KafkaConnection = load_from(&env, "SAMPLE_CONFIG", &vars).unwrap();
        assert_eq!(sample.sample_pool_size, 3);
        assert_eq!(kafka.brokers.hosts(), ["a:1", "b:2"]);
        assert_eq!(kafka.client, crate::KafkaClient::Rdkafka);
        assert_eq!(kafka.sasl_username, "123");

        let err = load_from::<crate::KafkaConnection>(
            &BTreeMap::from([("KAFKA_CLIENT".to_owned(), "franz".to_owned())]),
            "SAMPLE_CONFIG",
            &vars,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("KAFKA_CLIENT = \"franz\""), "{err}");
    }

    /// Why a [`Sample`] cannot be loaded from a file `name` holding `contents`.
    fn file_error(name: &str, contents: &str) -> String {
        let path = tempfile_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        load_from::<Sample>(
            &env(&[("SAMPLE_CONFIG", path.to_str().unwrap())]),
            "SAMPLE_CONFIG",
            VARS,
        )
        .unwrap_err()
        .to_string()
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "settings-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
