# `nix develop`: the Rust toolchain from the same nixpkgs as the package, plus the
# servers and clients the tests and the README use.
{
  mkShell,
  rustPackages,
  rustPlatform,
  cargo-nextest,
  postgresql_16,
  redis,
  kcat,
  grpcurl,
  pkg-config,
  cmake,
  curl,
  openssl,
}:
mkShell {
  name = "order-platform-dev";
  packages = [
    rustPackages.cargo
    rustPackages.rustc
    rustPackages.clippy
    rustPackages.rustfmt
    cargo-nextest
    # The same major as docker-compose.yaml's postgres:16.
    postgresql_16
    redis
    kcat
    grpcurl
    pkg-config
    # rdkafka-sys builds librdkafka with cmake; its build includes curl's headers.
    cmake
    curl.dev
  ];
  # rdkafka's ssl feature (Kafka TLS and SASL) links OpenSSL, found with pkg-config.
  buildInputs = [ openssl ];
  # rust-analyzer and friends find the standard library sources here.
  RUST_SRC_PATH = "${rustPlatform.rustLibSrc}";
}
