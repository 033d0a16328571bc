//! What every service binary does around its library's `start`: set up logging
//! ([`init_logging`]: `RUST_LOG` filters, default `info`; `LOG_FORMAT` `text` or
//! `json`; with an `OTEL_EXPORTER_OTLP_ENDPOINT`, traces too, see the `telemetry`
//! crate) and turn SIGTERM or Ctrl-C into a cancelled [`CancellationToken`]
//! ([`shutdown_on_signal`]) that the service watches to stop taking work, finish
//! what it holds and exit 0. That token is the platform's one stop signal; blocking
//! threads wait on it with [`stop::sleep`]. A failure is logged as its
//! [`ErrorChain`]: the error and every cause, once each, on one line.

mod error_chain;
pub mod stop;

pub use error_chain::ErrorChain;

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The environment variables [`init_logging`] reads, in every binary.
pub const ENV_VARS: &[&str] = &[LOG_FILTER_VAR, LOG_FORMAT_VAR];

const LOG_FILTER_VAR: &str = "RUST_LOG";
const LOG_FORMAT_VAR: &str = "LOG_FORMAT";

/// A logging setting the process cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("{LOG_FORMAT_VAR} = {0:?}: expected `text` or `json`")]
    Format(String),
    #[error("{0}")]
    Tracing(#[from] telemetry::SettingsError),
    #[error("cannot start tracing: {0}")]
    TracingStart(#[from] telemetry::StartError),
    #[error(
        "{LOG_FILTER_VAR} = {value:?}: not a log filter such as `info` or `info,orders=debug`: {reason}"
    )]
    Filter { value: String, reason: String },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Parses a `LOG_FORMAT` value; empty means the default.
    pub fn parse(value: &str) -> Result<Self, LoggingError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(LoggingError::Format(value.to_owned())),
        }
    }
}

/// Logs to stderr, and with an OTLP endpoint set (`OTEL_*`, see `telemetry`) sends
/// traces, as the executable's name unless `OTEL_SERVICE_NAME` says otherwise; must
/// then run inside the tokio runtime. `RUST_LOG` (e.g. `info,orders=debug`) chooses what is shown,
/// `LOG_FORMAT` how (`text`, the default, or `json`). A malformed `RUST_LOG` (e.g.
/// `orders=loud`) or an unknown `LOG_FORMAT` is an error that names the variable.
/// (A bare word that is not a level, like `inof`, is a valid filter for a module of
/// that name, as everywhere in `tracing`.)
pub fn init_logging() -> Result<(), LoggingError> {
    let filter = match std::env::var(LOG_FILTER_VAR) {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|err| LoggingError::Filter {
                value,
                reason: err.to_string(),
            })?
        }
        _ => EnvFilter::new("info"),
    };
    let format = LogFormat::parse(&std::env::var(LOG_FORMAT_VAR).unwrap_or_default())?;
    // Colours only for a person at a terminal, not in log files or collectors.
    let ansi = std::io::stderr().is_terminal();
    if let Some(tracing) = telemetry::TracingSettings::from_env(&executable_name())? {
        telemetry::install(&tracing, filter, format == LogFormat::Json, ansi)?;
        return Ok(());
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests that start several services in one process)
    // keeps the first subscriber, which is what they want.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    Ok(())
}

/// The running executable's file name (`orders`, ...), the default service name.
fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// A token cancelled on the first SIGTERM or SIGINT. Must be called inside a
/// tokio runtime.
///
/// The signal handlers are installed before this returns, not in the spawned
/// task: a SIGTERM that arrives right after start-up (a supervisor stopping a
/// process it just launched) must stop the process cleanly, never with the
/// default action that kills it mid-write.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let signals = Signals::install();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutdown requested: finishing in-flight work");
        cancel.cancel();
    });
    token
}

/// SIGTERM and SIGINT streams, registered with the runtime at creation.
#[cfg(unix)]
struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(err) => {
                tracing::warn!(%err, "cannot watch {name}; it will not stop this process cleanly");
                None
            }
        };
        Signals {
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    async fn recv(mut self) {
        async fn next(stream: &mut Option<tokio::signal::unix::Signal>) {
            match stream {
                Some(stream) => {
                    stream.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.interrupt) => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Signals
    }

    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_accepts_text_and_json_in_any_case_and_names_the_variable_otherwise() {
        assert_eq!(LogFormat::parse("").unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse("TEXT").unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse(" json ").unwrap(), LogFormat::Json);
        let err = LogFormat::parse("yaml").unwrap_err().to_string();
        assert_eq!(err, "LOG_FORMAT = \"yaml\": expected `text` or `json`");
    }
}
