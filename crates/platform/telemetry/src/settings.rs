//! The standard `OTEL_*` variables, read and checked: a bad value is an error that
//! names the variable (the SDK alone would fall back silently).

use std::collections::BTreeMap;

/// Every variable [`TracingSettings::from_lookup`] reads.
pub const ENV_VARS: &[&str] = &[
    SDK_DISABLED,
    ENDPOINT,
    TRACES_ENDPOINT,
    PROTOCOL,
    TRACES_PROTOCOL,
    HEADERS,
    SERVICE_NAME,
    RESOURCE_ATTRIBUTES,
    SAMPLER,
    SAMPLER_ARG,
];

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// A tracing setting the process cannot start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{name} = {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn invalid(name: &'static str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError::Invalid {
        name,
        value: value.to_owned(),
        expected,
    }
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`): the standard's
    /// default.
    HttpProtobuf,
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    /// Follows the caller's decision; a trace this service starts is decided by the
    /// inner sampler. The standard's default, with `AlwaysOn` inside.
    ParentBased(ParentlessSampler),
}

/// A [`Sampler::ParentBased`]'s decision for the traces a service starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessSampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
}

/// Where and how this service sends its spans. `None` from
/// [`TracingSettings::from_lookup`] means tracing is off.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// The full URL the exporter sends to (for HTTP, with `/v1/traces`).
    pub endpoint: String,
    pub protocol: Protocol,
    /// Sent with every export (e.g. a backend's API key), from
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers: BTreeMap<String, String>,
    /// `service.name`, then the other resource attributes.
    pub service_name: String,
    pub resource: BTreeMap<String, String>,
    pub sampler: Sampler,
}

impl TracingSettings {
    /// From the process environment; `default_service_name` when neither
    /// `OTEL_SERVICE_NAME` nor a `service.name` resource attribute is set.
    pub fn from_env(default_service_name: &str) -> Result<Option<Self>, SettingsError> {
        Self::from_lookup(default_service_name, |name| std::env::var(name).ok())
    }

    /// From `lookup` (a variable's value, if set). Tracing is off (`None`) without an
    /// endpoint or with `OTEL_SDK_DISABLED=true`.
    pub fn from_lookup(
        default_service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        if let Some(disabled) = get(SDK_DISABLED) {
            match disabled.trim().to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => {
                    return Err(invalid(
                        SDK_DISABLED,
                        &disabled,
                        "expected `true` or `false`",
                    ));
                }
            }
        }
        let protocol = match get(TRACES_PROTOCOL)
            .map(|v| (TRACES_PROTOCOL, v))
            .or_else(|| get(PROTOCOL).map(|v| (PROTOCOL, v)))
        {
            None => Protocol::HttpProtobuf,
            Some((name, value)) => match value.trim() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                _ => {
                    return Err(invalid(
                        name,
                        &value,
                        "expected `grpc` or `http/protobuf` (`http/json` is not supported)",
                    ));
                }
            },
        };
        let endpoint = if let Some(url) = get(TRACES_ENDPOINT) {
            // The signal's own endpoint is used as it is, as the standard says.
            check_url(TRACES_ENDPOINT, &url)?;
            url.trim().to_owned()
        } else if let Some(url) = get(ENDPOINT) {
            check_url(ENDPOINT, &url)?;
            let base = url.trim().trim_end_matches('/');
            match protocol {
                Protocol::Grpc => base.to_owned(),
                Protocol::HttpProtobuf => format!("{base}/v1/traces"),
            }
        } else {
            return Ok(None);
        };
        if protocol == Protocol::HttpProtobuf && endpoint.starts_with("https://") {
            let name = if get(TRACES_ENDPOINT).is_some() {
                TRACES_ENDPOINT
            } else {
                ENDPOINT
            };
            return Err(invalid(
                name,
                &endpoint,
                "https is supported over OTLP/gRPC only: set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or use a collector on http",
            ));
        }
        let headers = match get(HEADERS) {
            Some(value) => parse_pairs(HEADERS, &value)?,
            None => BTreeMap::new(),
        };
        let mut resource = match get(RESOURCE_ATTRIBUTES) {
            Some(value) => parse_pairs(RESOURCE_ATTRIBUTES, &value)?,
            None => BTreeMap::new(),
        };
        let service_name = get(SERVICE_NAME)
            .map(|name| name.trim().to_owned())
            .or_else(|| resource.remove("service.name"))
            .unwrap_or_else(|| default_service_name.to_owned());
        resource.remove("service.name");
        let sampler = parse_sampler(get(SAMPLER), get(SAMPLER_ARG))?;
        Ok(Some(Self {
            endpoint,
            protocol,
            headers,
            service_name,
            resource,
            sampler,
        }))
    }
}

fn check_url(name: &'static str, value: &str) -> Result<(), SettingsError> {
    let value = value.trim();
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(invalid(
            name,
            value,
            "expected an http:// or https:// URL such as http://collector:4318",
        )),
    }
}

/// `key=value,key=value`, each part percent-decoded (the form of
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`).
fn parse_pairs(name: &'static str, value: &str) -> Result<BTreeMap<String, String>, SettingsError> {
    const EXPECTED: &str = "expected comma-separated key=value pairs (values percent-encoded)";
    let mut pairs = BTreeMap::new();
    for pair in value.split(',').filter(|pair| !pair.trim().is_empty()) {
        let (key, val) = pair
            .split_once('=')
            .ok_or_else(|| invalid(name, value, EXPECTED))?;
        let key = percent_decode(key.trim()).ok_or_else(|| invalid(name, value, EXPECTED))?;
        let val = percent_decode(val.trim()).ok_or_else(|| invalid(name, value, EXPECTED))?;
        if key.is_empty() {
            return Err(invalid(name, value, EXPECTED));
        }
        pairs.insert(key, val);
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_sampler(sampler: Option<String>, arg: Option<String>) -> Result<Sampler, SettingsError> {
    let ratio = || -> Result<f64, SettingsError> {
        match &arg {
            None => Ok(1.0),
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(invalid(
                    SAMPLER_ARG,
                    text,
                    "expected a ratio from 0 to 1, such as 0.25",
                )),
            },
        }
    };
    let Some(name) = sampler else {
        return Ok(Sampler::ParentBased(ParentlessSampler::AlwaysOn));
    };
    Ok(match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(ParentlessSampler::AlwaysOn),
        "parentbased_always_off" => Sampler::ParentBased(ParentlessSampler::AlwaysOff),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(ParentlessSampler::TraceIdRatio(ratio()?))
        }
        _ => {
            return Err(invalid(
                SAMPLER,
                &name,
                "expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<TracingSettings>, SettingsError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TracingSettings::from_lookup("orders", |name| vars.get(name).cloned())
    }

    #[test]
    fn no_endpoint_or_disabled_means_off() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(read(&[(ENDPOINT, "  ")]).unwrap(), None);
        assert_eq!(
            read(&[(ENDPOINT, "http://c:4318"), (SDK_DISABLED, "true")]).unwrap(),
            None
        );
    }

    #[test]
    fn the_endpoint_gets_the_signal_path_over_http_only() {
        let http = read(&[(ENDPOINT, "http://c:4318/")]).unwrap().unwrap();
        assert_eq!(http.endpoint, "http://c:4318/v1/traces");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        assert_eq!(http.service_name, "orders");
        assert_eq!(
            http.sampler,
            Sampler::ParentBased(ParentlessSampler::AlwaysOn)
        );
        let grpc = read(&[(ENDPOINT, "http://c:4317"), (PROTOCOL, "grpc")])
            .unwrap()
            .unwrap();
        assert_eq!(grpc.endpoint, "http://c:4317");
        let own = read(&[
            (ENDPOINT, "http://c:4318"),
            (TRACES_ENDPOINT, "http://t:9/x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint, "http://t:9/x");
    }

    #[test]
    fn resource_attributes_and_service_name() {
        let settings = read(&[
            (ENDPOINT, "http://c:4318"),
            (
                RESOURCE_ATTRIBUTES,
                "service.name=shop,deployment.environment=prod%2Ceu",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.service_name, "shop");
        assert_eq!(settings.resource["deployment.environment"], "prod,eu");
        assert!(!settings.resource.contains_key("service.name"));
        let named = read(&[
            (ENDPOINT, "http://c:4318"),
            (SERVICE_NAME, "orders-eu"),
            (RESOURCE_ATTRIBUTES, "service.name=shop"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(named.service_name, "orders-eu");
    }

    #[test]
    fn samplers() {
        let with = |sampler: &str, arg: &str| {
            read(&[
                (ENDPOINT, "http://c:4318"),
                (SAMPLER, sampler),
                (SAMPLER_ARG, arg),
            ])
            .map(|settings| settings.unwrap().sampler)
        };
        assert_eq!(
            with("traceidratio", "0.25").unwrap(),
            Sampler::TraceIdRatio(0.25)
        );
        assert_eq!(
            with("parentbased_traceidratio", "").unwrap(),
            Sampler::ParentBased(ParentlessSampler::TraceIdRatio(1.0))
        );
        assert_eq!(with("always_off", "").unwrap(), Sampler::AlwaysOff);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(ENDPOINT, "collector:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT = \"collector:4317\"",
            ),
            (
                &[(ENDPOINT, "http://c"), (PROTOCOL, "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL = \"http/json\"",
            ),
            (
                &[(ENDPOINT, "https://c")],
                "https is supported over OTLP/gRPC only",
            ),
            (
                &[(ENDPOINT, "http://c"), (SAMPLER, "sometimes")],
                "OTEL_TRACES_SAMPLER = \"sometimes\"",
            ),
            (
                &[
                    (ENDPOINT, "http://c"),
                    (SAMPLER, "traceidratio"),
                    (SAMPLER_ARG, "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG = \"2\"",
            ),
            (
                &[(ENDPOINT, "http://c"), (RESOURCE_ATTRIBUTES, "novalue")],
                "OTEL_RESOURCE_ATTRIBUTES = \"novalue\"",
            ),
            (
                &[(ENDPOINT, "http://c"), (HEADERS, "api-key=%zz")],
                "OTEL_EXPORTER_OTLP_HEADERS = \"api-key=%zz\"",
            ),
            (
                &[(ENDPOINT, "http://c"), (SDK_DISABLED, "yes")],
                "OTEL_SDK_DISABLED = \"yes\"",
            ),
        ];
        for (vars, expected) in cases {
            let err = read(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{vars:?}: {err}");
        }
    }
}
