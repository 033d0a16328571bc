//! Network addresses in the forms the Go platform's configuration uses.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
    str::FromStr,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Where a server listens: `50051` or `:50051` (all interfaces), `host:port`, `[::1]:50051`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl ListenAddr {
    /// `port` on every interface (`:port`), what the services listen on by default.
    pub const fn all_interfaces(port: u16) -> Self {
        Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    }

    /// `127.0.0.1:port`: this machine only (port 0: any free port).
    pub const fn loopback(port: u16) -> Self {
        Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    /// The socket address to bind.
    pub const fn get(self) -> SocketAddr {
        self.0
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {reason}")]
pub struct AddressError {
    input: String,
    reason: String,
}

fn parse_port(input: &str, port: &str) -> Result<u16, AddressError> {
    port.parse::<u16>().map_err(|_| AddressError {
        input: input.to_owned(),
        reason: format!("port {port:?} is not a number from 0 to 65535"),
    })
}

impl FromStr for ListenAddr {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let fail = |reason: &str| AddressError {
            input: input.to_owned(),
            reason: format!("{reason} (expected a port such as 8080, :8080 or host:8080)"),
        };
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if !text.contains(':') {
            return Ok(Self::all_interfaces(parse_port(input, text)?));
        }
        if let Some(port) = text.strip_prefix(':') {
            return Ok(Self::all_interfaces(parse_port(input, port)?));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self(addr));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| fail("no port"))?;
        let port = parse_port(input, port)?;
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(Self)
            .ok_or_else(|| fail(&format!("cannot resolve host {host:?}")))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a gRPC server is reached: `host:port` or `http://host:port`; also the
/// listen forms a shared Go `.env` may hold (`:50051`, `50051`), taken as this
/// machine (`127.0.0.1`). Always held as a URI with a scheme, which is what tonic's
/// `Endpoint` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcEndpoint(String);

impl GrpcEndpoint {
    pub fn as_uri(&self) -> &str {
        &self.0
    }
}

impl FromStr for GrpcEndpoint {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim().trim_end_matches('/');
        let fail = |reason: &str| AddressError {
            input: input.to_owned(),
            reason: format!("{reason} (expected host:port or http://host:port)"),
        };
        let local_port = text.strip_prefix(':').unwrap_or(text);
        if !local_port.is_empty() && local_port.bytes().all(|b| b.is_ascii_digit()) {
            parse_port(input, local_port)?;
            return Ok(Self(format!("http://127.0.0.1:{local_port}")));
        }
        let authority = match text.split_once("://") {
            Some(("http" | "https", authority)) => authority,
            Some((scheme, _)) => return Err(fail(&format!("unsupported scheme {scheme:?}"))),
            None => text,
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| fail("no port"))?;
        parse_port(input, port)?;
        if host.is_empty() || authority.contains('/') {
            return Err(fail("no host"));
        }
        let scheme = text.split_once("://").map_or("http", |(scheme, _)| scheme);
        Ok(Self(format!("{scheme}://{authority}")))
    }
}

impl fmt::Display for GrpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl GrpcEndpoint {
    /// The scheme: `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.0
            .split_once("://")
            .map_or("http", |(scheme, _)| scheme)
    }

    /// `host:port`, as written (an IPv6 host in brackets).
    pub fn authority(&self) -> &str {
        self.0.split_once("://").map_or(&*self.0, |(_, rest)| rest)
    }

    /// The host and the port; an IPv6 host without its brackets.
    pub fn host_port(&self) -> (&str, u16) {
        let authority = self.authority();
        // Checked when parsed: the text after the last `:` is a port.
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "0"));
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        (host, port.parse().unwrap_or(0))
    }

    /// Whether the host is an IP address (nothing to resolve).
    pub fn is_ip(&self) -> bool {
        self.host_port().0.parse::<IpAddr>().is_ok()
    }
}

/// One or more gRPC endpoints, comma-separated (`orders-a:50051,orders-b:50051`),
/// each in a form [`GrpcEndpoint`] takes; duplicates are refused, as a replica listed
/// twice would get twice the calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcEndpoints(Vec<GrpcEndpoint>);

impl GrpcEndpoints {
    /// The endpoints, in the order given (never empty).
    pub fn endpoints(&self) -> &[GrpcEndpoint] {
        &self.0
    }

    /// The first endpoint's URI; with one endpoint, its URI.
    pub fn as_uri(&self) -> &str {
        self.0.first().map_or("", GrpcEndpoint::as_uri)
    }
}

impl From<GrpcEndpoint> for GrpcEndpoints {
    fn from(endpoint: GrpcEndpoint) -> Self {
        Self(vec![endpoint])
    }
}

impl FromStr for GrpcEndpoints {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if !input.contains(',') {
            return Ok(Self(vec![input.parse()?]));
        }
        let mut endpoints: Vec<GrpcEndpoint> = Vec::new();
        for part in input.split(',') {
            let in_list = |reason: String| AddressError {
                input: input.to_owned(),
                reason,
            };
            if part.trim().is_empty() {
                return Err(in_list(
                    "an empty entry in the list (expected host:port,host:port)".to_owned(),
                ));
            }
            let endpoint: GrpcEndpoint = part
                .parse()
                .map_err(|err: AddressError| in_list(format!("entry {}", err)))?;
            if endpoints.contains(&endpoint) {
                return Err(in_list(format!("{endpoint} is listed twice")));
            }
            endpoints.push(endpoint);
        }
        Ok(Self(endpoints))
    }
}

impl fmt::Display for GrpcEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, endpoint) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(endpoint.as_uri())?;
        }
        Ok(())
    }
}

macro_rules! string_form_serde {
    ($type:ty, $expecting:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl de::Visitor<'_> for Visitor {
                    type Value = $type;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, value: &str) -> Result<$type, E> {
                        value.parse().map_err(E::custom)
                    }

                    // The environment provider turns a bare port into a number.
                    fn visit_u64<E: de::Error>(self, value: u64) -> Result<$type, E> {
                        self.visit_str(&value.to_string())
                    }

                    fn visit_i64<E: de::Error>(self, value: i64) -> Result<$type, E> {
                        self.visit_str(&value.to_string())
                    }
                }
                deserializer.deserialize_any(Visitor)
            }
        }
    };
}

string_form_serde!(
    ListenAddr,
    "a listen address such as 8080, :8080 or host:8080"
);
string_form_serde!(
    GrpcEndpoint,
    "a gRPC address such as host:50051 or http://host:50051"
);
string_form_serde!(
    GrpcEndpoints,
    "gRPC addresses such as host:50051 or host-a:50051,host-b:50051"
);

pub(crate) use string_form_serde;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_takes_go_forms() {
        let all = |port| ListenAddr::all_interfaces(port);
        assert_eq!("50051".parse::<ListenAddr>().unwrap(), all(50051));
        assert_eq!(":8081".parse::<ListenAddr>().unwrap(), all(8081));
        assert_eq!(
            "127.0.0.1:9000".parse::<ListenAddr>().unwrap().get(),
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!("[::1]:80".parse::<ListenAddr>().unwrap().get().port(), 80);
        assert!(
            "localhost:80"
                .parse::<ListenAddr>()
                .unwrap()
                .get()
                .ip()
                .is_loopback()
        );
        for bad in ["", "abc", ":99999", "host:", "1.2.3.4:x"] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn grpc_endpoint_adds_the_scheme() {
        let uri = |text: &str| text.parse::<GrpcEndpoint>().map(|e| e.as_uri().to_owned());
        assert_eq!(uri("orders:50051").unwrap(), "http://orders:50051");
        assert_eq!(uri(":50051").unwrap(), "http://127.0.0.1:50051");
        assert_eq!(uri("50051").unwrap(), "http://127.0.0.1:50051");
        assert!(uri(":99999").is_err());
        assert_eq!(
            uri("http://127.0.0.1:50051/").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert!(uri("orders").is_err());
        assert!(
            uri("ftp://orders:1")
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
        assert!(uri("orders:port").is_err());
    }

    #[test]
    fn grpc_endpoints_take_a_list_and_name_the_bad_entry() {
        let list = |text: &str| text.parse::<GrpcEndpoints>().map(|e| e.to_string());
        assert_eq!(list("orders:50051").unwrap(), "http://orders:50051");
        assert_eq!(
            list("a:1, http://b:2 ,https://[::1]:3").unwrap(),
            "http://a:1,http://b:2,https://[::1]:3"
        );
        let err = list("a:1,orders").unwrap_err().to_string();
        assert!(
            err.contains("\"orders\"") && err.contains("no port"),
            "{err}"
        );
        assert!(
            list("a:1,,b:2")
                .unwrap_err()
                .to_string()
                .contains("empty entry")
        );
        assert!(
            list("a:1,a:1")
                .unwrap_err()
                .to_string()
                .contains("listed twice")
        );
        // One address: the error is the single address's.
        assert!(
            list("nonsense")
                .unwrap_err()
                .to_string()
                .contains("expected host:port")
        );

        let endpoint: GrpcEndpoint = "https://[::1]:3".parse().unwrap();
        assert_eq!(
            (endpoint.scheme(), endpoint.host_port(), endpoint.is_ip()),
            ("https", ("::1", 3), true)
        );
        let named: GrpcEndpoint = "orders:50051".parse().unwrap();
        assert_eq!((named.authority(), named.is_ip()), ("orders:50051", false));
    }
}
