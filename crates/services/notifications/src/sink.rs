//! Where notifications go: Redis, over one synchronous connection owned by the
//! consumer thread.
//!
//! A notification is written with one `SET key value PX ttl` (or a plain `SET` when
//! there is no TTL). The key is the order id and the value is a function of the
//! message, so writing the same notification twice leaves the same state: redelivery
//! is harmless. Any error drops the connection; the next call reconnects.

use std::time::Duration;

use contracts::Notification;
use redis::{Client, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, TlsCertificates};

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub db: i64,
    /// `None` = the `default` user.
    pub user: Option<String>,
    /// `None` = no AUTH.
    pub password: Option<String>,
    /// `None` = keys never expire.
    pub ttl: Option<Duration>,
    /// Prepended to the order id (empty in production: the contract's key is the id).
    pub key_prefix: String,
    /// `None` = plain TCP.
    pub tls: Option<RedisTls>,
    /// How long a connect may take before the call fails (`REDIS_DIAL_TIMEOUT`).
    pub connect_timeout: Duration,
    /// How long a read or a write may take before the call fails (`REDIS_TIMEOUT`).
    pub io_timeout: Duration,
}

/// TLS to Redis (rustls): the server's certificate must chain to a trusted CA and
/// name the host of `REDIS_ADDR`.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// PEM CA certificates to trust instead of the system's trust store.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("private_ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl RedisSettings {
    /// `host:port`, as `rediss://host:port` when over TLS (for messages).
    fn shown_addr(&self) -> String {
        match self.tls {
            Some(_) => format!("rediss://{}:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Redis could not be reached or refused the command; retrying later may work.
/// The redis crate's error is written into the message, not exposed as the source:
/// for an I/O failure it writes its cause into its own message and returns it as its
/// source too, so a chain would show it twice.
#[derive(Debug, thiserror::Error)]
#[error("redis at {addr}: {error}")]
pub struct SinkError {
    addr: String,
    error: redis::RedisError,
}

/// A lazily connected Redis writer.
pub struct RedisSink {
    settings: RedisSettings,
    client: Client,
    connection: Option<redis::Connection>,
}

impl RedisSink {
    /// Does not connect yet: the first call does (so start-up works while Redis is down).
    pub fn new(settings: RedisSettings) -> Result<Self, SinkError> {
        let addr = match settings.tls {
            Some(_) => ConnectionAddr::TcpTls {
                host: settings.host.clone(),
                port: settings.port,
                insecure: false,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(settings.host.clone(), settings.port),
        };
        let info = ConnectionInfo {
            addr,
            redis: RedisConnectionInfo {
                db: settings.db,
                username: settings.user.clone(),
                password: settings.password.clone(),
                ..RedisConnectionInfo::default()
            },
        };
        let client = match &settings.tls {
            Some(tls) => {
                // redis builds its rustls configuration with the process-wide
                // provider: make it ring's (the only one compiled in) explicitly.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Client::build_with_tls(
                    info,
                    TlsCertificates {
                        client_tls: None,
                        root_cert: tls.ca_pem.clone(),
                    },
                )
            }
            None => Client::open(info),
        }
        .map_err(|error| SinkError {
            addr: settings.shown_addr(),
            error,
        })?;
        Ok(Self {
            settings,
            client,
            connection: None,
        })
    }

    /// The Redis key of an order's notification.
    pub fn key(&self, order_id: i64) -> String {
        format!(
            "{}{}",
            self.settings.key_prefix,
            contracts::message_key(order_id)
        )
    }

    /// Stores (or overwrites with the same value) the order's notification.
    pub fn store(&mut self, notification: &Notification) -> Result<(), SinkError> {
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(notification.order_id))
            .arg(contracts::encode(notification));
        if let Some(ttl) = self.settings.ttl {
            // Whole milliseconds, at least one (the configuration refuses less).
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            command.arg("PX").arg(millis);
        }
        self.run(|connection| command.query::<()>(connection))
    }

    /// One round trip, for readiness.
    pub fn ping(&mut self) -> Result<(), SinkError> {
        self.run(|connection| redis::cmd("PING").query::<()>(connection))
    }

    fn run<T>(
        &mut self,
        call: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, SinkError> {
        let result = match self.connection() {
            Ok(connection) => call(connection),
            Err(err) => Err(err),
        };
        result.map_err(|error| {
            // Whatever went wrong, start from a fresh connection next time.
            self.connection = None;
            SinkError {
                addr: self.settings.shown_addr(),
                error,
            }
        })
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let connection = self
                    .client
                    .get_connection_with_timeout(self.settings.connect_timeout)?;
                connection.set_read_timeout(Some(self.settings.io_timeout))?;
                connection.set_write_timeout(Some(self.settings.io_timeout))?;
                tracing::debug!(host = %self.settings.host, port = self.settings.port, "connected to Redis");
                connection
            }
        };
        Ok(self.connection.insert(connection))
    }
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("db", &self.settings.db)
            .field("tls", &self.settings.tls.is_some())
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}
