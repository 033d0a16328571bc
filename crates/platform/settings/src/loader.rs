//! Layering defaults, the optional TOML file and the environment with figment, and
//! turning figment's errors into ones that name the variable.

use std::{collections::BTreeMap, path::Path};

use figment::{
    Figment, Provider,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{EnvSpec, KafkaConnection, Notes};

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

/// Loads `T` from its `Default`, then the TOML file named by `spec.config_file_var`
/// (if set), then the process environment restricted to `spec.read`, and logs what
/// the service says about the rest of its environment ([`Notes::log`]). A key in the
/// file that is not the lowercase name of one of the settings is refused (a typo
/// would otherwise be a setting silently not applied); a variable in the environment
/// that the service does not read is never refused.
pub fn load<T>(spec: &EnvSpec<'_>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let env = process_env();
    let (value, notes) = load_from(&env, spec)?;
    notes.log();
    Ok(value)
}

/// Loads a Kafka-using service's own settings `T` (its variables: `spec.read`) and,
/// from the same defaults, file and environment, its [`KafkaConnection`] section
/// ([`KafkaConnection::ENV_VARS`]), for the service to check
/// ([`KafkaConnection::check`]) with the rest; logs the service's [`Notes`].
pub fn load_with_kafka<T>(spec: &EnvSpec<'_>) -> Result<(T, KafkaConnection), ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let env = process_env();
    let (own, kafka, notes) = load_with_kafka_from(&env, spec)?;
    notes.log();
    Ok((own, kafka))
}

/// The process environment; a name or value that is not UTF-8 is read lossily (a
/// value of one of the service's variables then fails to parse, naming it).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// The environment [`load_from`] and [`load_with_kafka_from`] take, from `(name,
/// value)` pairs (tests, embedding).
pub fn env_from_pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// As [`load_with_kafka`], with the environment given explicitly, returning the
/// [`Notes`] instead of logging them (tests, embedding).
pub fn load_with_kafka_from<T>(
    env: &BTreeMap<String, String>,
    spec: &EnvSpec<'_>,
) -> Result<(T, KafkaConnection, Notes), ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut read = spec.read.to_vec();
    read.extend(KafkaConnection::ENV_VARS);
    let spec = EnvSpec {
        read: &read,
        ..*spec
    };
    let (own, notes) = load_from(env, &spec)?;
    let (kafka, _) = load_from(env, &spec)?;
    Ok((own, kafka, notes))
}

/// As [`load`], with the environment given explicitly, returning the [`Notes`]
/// instead of logging them (tests, embedding).
pub fn load_from<T>(
    env: &BTreeMap<String, String>,
    spec: &EnvSpec<'_>,
) -> Result<(T, Notes), ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let config_file_var = spec.config_file_var;
    let fields: Vec<&str> = spec
        .read
        .iter()
        .copied()
        .filter(|var| spec.is_field(var))
        .collect();
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
            .find(|key| !fields.iter().any(|var| var.to_ascii_lowercase() == **key))
        {
            return Err(ConfigError::File {
                var: config_file_var.to_owned(),
                path: path.clone(),
                reason: format!(
                    "unknown key `{unknown}`: the file takes the lowercase names of the \
                     service's variables ({})",
                    fields
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
    let file_vars: Vec<String> = file_values
        .keys()
        .map(|key| key.to_ascii_uppercase())
        .collect();
    // Environment values stay strings: each setting's type parses its own text, so a
    // password of `123` or a topic named `true` is taken as written. `origin` keeps
    // the variable each value came from (an alias names itself in errors).
    let mut from_env = Dict::new();
    let mut origin: BTreeMap<String, (&str, &String)> = BTreeMap::new();
    for var in &fields {
        if let Some(value) = env.get(*var) {
            from_env.insert(var.to_ascii_lowercase(), Value::from(value.clone()));
            origin.insert(var.to_ascii_lowercase(), (var, value));
        }
    }
    for (alias, var) in spec.aliases {
        let key = var.to_ascii_lowercase();
        if let Some(value) = env.get(*alias)
            && !from_env.contains_key(&key)
            && !file_values.contains_key(&key)
        {
            from_env.insert(key.clone(), Value::from(value.clone()));
            origin.insert(key, (alias, value));
        }
    }
    figment = figment.merge(Serialized::defaults(from_env));
    // Lossy: "4" fills a number, "true" a bool; text fields keep their text.
    let value = figment.extract_lossy().map_err(|err| {
        let key = err.path.first().cloned().unwrap_or_default();
        if let Some((var, value)) = origin.get(&key) {
            ConfigError::Invalid {
                var: (*var).to_owned(),
                value: (*value).clone(),
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
    })?;
    Ok((value, spec.notes(env, &file_vars)))
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
        "SAMPLE_PG_MAX_CONNS",
    ];

    const SPEC: EnvSpec<'static> = spec(VARS);

    const fn spec<'a>(read: &'a [&'a str]) -> EnvSpec<'a> {
        EnvSpec {
            service: "sample",
            config_file_var: "SAMPLE_CONFIG",
            read,
            aliases: &[("SAMPLE_PG_MAX_CONNS", "SAMPLE_POOL_SIZE")],
            go_only: &["SAMPLE_PG_MIN_CONNS"],
            not_read: &[],
        }
    }

    fn load_sample(env: &BTreeMap<String, String>) -> Result<Sample, ConfigError> {
        load_from(env, &SPEC).map(|(sample, _)| sample)
    }

    #[test]
    fn defaults_apply_without_environment() {
        let sample = load_sample(&env_from_pairs(&[])).unwrap();
        assert_eq!(sample, Sample::default());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile_dir();
        let path = dir.join("sample.toml");
        std::fs::write(&path, "sample_period = \"5s\"\nsample_pool_size = 3\n").unwrap();
        let sample = load_sample(&env_from_pairs(&[
            ("SAMPLE_CONFIG", path.to_str().unwrap()),
            ("SAMPLE_ADDR", ":9000"),
            ("SAMPLE_PASSWORD", "123"),
            ("SAMPLE_POOL_SIZE", "4"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(sample.sample_addr, ListenAddr::all_interfaces(9000));
        assert_eq!(sample.sample_period, GoDuration::from_secs(5));
        assert_eq!(sample.sample_password, "123");
        assert_eq!(sample.sample_pool_size, 4);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_expectation() {
        let err = load_sample(&env_from_pairs(&[("SAMPLE_PERIOD", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SAMPLE_PERIOD = \"soon\""), "{err}");
        assert!(err.contains("Go duration"), "{err}");

        let err = load_sample(&env_from_pairs(&[("SAMPLE_POOL_SIZE", "-1")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SAMPLE_POOL_SIZE = \"-1\""), "{err}");
    }

    #[test]
    fn a_missing_or_broken_file_is_named() {
        let err = load_sample(&env_from_pairs(&[("SAMPLE_CONFIG", "/nonexistent/x.toml")]))
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
        let dir = tempfile_dir();
        let path = dir.join("kafka.toml");
        std::fs::write(
            &path,
            "sample_pool_size = 3\nkafka_brokers = \"a:1,b:2\"\nkafka_sasl_username = \"file\"\n",
        )
        .unwrap();
        let env = env_from_pairs(&[
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
        let (sample, kafka, _): (Service, _, _) = load_with_kafka_from(&env, &SPEC).unwrap();
        assert_eq!(sample.sample_pool_size, 3);
        assert_eq!(kafka.brokers.hosts(), ["a:1", "b:2"]);
        assert_eq!(kafka.client, crate::KafkaClient::Rdkafka);
        assert_eq!(kafka.sasl_username, "123");

        let err = load_with_kafka_from::<Service>(
            &BTreeMap::from([("KAFKA_CLIENT".to_owned(), "franz".to_owned())]),
            &SPEC,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("KAFKA_CLIENT = \"franz\""), "{err}");
    }

    #[test]
    fn an_alias_stands_for_its_variable_only_when_that_is_unset() {
        let alias = load_sample(&env_from_pairs(&[("SAMPLE_PG_MAX_CONNS", "10")])).unwrap();
        assert_eq!(alias.sample_pool_size, 10);
        let both = env_from_pairs(&[("SAMPLE_PG_MAX_CONNS", "10"), ("SAMPLE_POOL_SIZE", "32")]);
        assert_eq!(load_sample(&both).unwrap().sample_pool_size, 32);

        let path = tempfile_dir().join("pool.toml");
        std::fs::write(&path, "sample_pool_size = 5\n").unwrap();
        let in_file = env_from_pairs(&[
            ("SAMPLE_CONFIG", path.to_str().unwrap()),
            ("SAMPLE_PG_MAX_CONNS", "10"),
        ]);
        assert_eq!(load_sample(&in_file).unwrap().sample_pool_size, 5);

        // A bad value is reported under the name it was given.
        let err = load_sample(&env_from_pairs(&[("SAMPLE_PG_MAX_CONNS", "ten")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SAMPLE_PG_MAX_CONNS = \"ten\""), "{err}");
        // The file takes the setting's own name only.
        let err = file_error("alias.toml", "sample_pg_max_conns = 3\n");
        assert!(err.contains("unknown key `sample_pg_max_conns`"), "{err}");
    }

    #[test]
    fn variables_only_go_uses_are_accepted_and_named() {
        let (sample, notes) = load_from::<Sample>(
            &env_from_pairs(&[("SAMPLE_PG_MIN_CONNS", "not a number"), ("OTHER", "x")]),
            &SPEC,
        )
        .unwrap();
        assert_eq!(sample, Sample::default());
        assert_eq!(notes.go_only, ["SAMPLE_PG_MIN_CONNS"]);
    }

    /// Why a [`Sample`] cannot be loaded from a file `name` holding `contents`.
    fn file_error(name: &str, contents: &str) -> String {
        let path = tempfile_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        let env = env_from_pairs(&[("SAMPLE_CONFIG", path.to_str().unwrap())]);
        load_sample(&env).unwrap_err().to_string()
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
