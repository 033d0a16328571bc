# The whole Cargo workspace, built ONCE with nixpkgs' rustPlatform.buildRustPackage,
# and one small package per binary on top of that single build.
{
  lib,
  rustPlatform,
  rustc,
  runCommand,
  kcat,
  cmake,
  curl,
  openssl,
  pkg-config,
}:
let
  cargoToml = lib.importTOML ../Cargo.toml;
  inherit (cargoToml.workspace.package) version;
  rustVersion = cargoToml.workspace.package."rust-version";

  # Only what cargo needs: no target/, no .git, no nix/ or compose edits causing rebuilds.
  # migrations/ may not hold tracked files yet (git does not keep empty directories, and a
  # flake only sees tracked files), so it is allowed to be missing.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
      ../proto
      (lib.fileset.maybeMissing ../migrations)
    ];
  };

  # Every binary the workspace installs. `stack` runs the whole platform locally.
  binaries = [
    "orders"
    "payments"
    "notifications"
    "gateway"
    "devbroker"
    "stack"
  ];

  # The arguments shared by the package and by the fmt/clippy checks (nix/checks.nix),
  # so all of them vendor the same crates from Cargo.lock.
  commonArgs = {
    pname = "order-platform";
    inherit version src;
    # Vendors every crate listed in Cargo.lock as its own fixed-output derivation
    # (importCargoLock): no cargoHash to keep in sync. There are no git dependencies,
    # so no outputHashes are needed.
    cargoLock.lockFile = ../Cargo.lock;
    # rdkafka-sys builds librdkafka 2.12.1 from the source inside the crate, driven by
    # cmake (feature cmake-build; no system librdkafka, no download). cmake only
    # builds that dependency: it must not replace the package's configure phase.
    # Feature ssl (Kafka TLS and SASL PLAIN/SCRAM) links nixpkgs' OpenSSL, found by
    # openssl-sys with pkg-config.
    nativeBuildInputs = [
      cmake
      pkg-config
    ];
    dontUseCmakeConfigure = true;
    # librdkafka 2.12.1's cmake build includes <curl/curl.h> even with curl off
    # (confluentinc/librdkafka#5135): curl's headers only, nothing links libcurl, so
    # it is not in the closure of the binaries. OpenSSL is linked (libssl, libcrypto).
    buildInputs = [
      curl.dev
      openssl
    ];
  };

  platform = rustPlatform.buildRustPackage (
    commonArgs
    // {
      # Build every member once; cargoInstallHook copies every executable of
      # target/<triple>/release into $out/bin.
      cargoBuildFlags = [ "--workspace" ];

      # The check phase runs `cargo test` only on crates whose tests need no external
      # server. Tests that need PostgreSQL or Redis (orders, payments, notifications,
      # gateway, the end-to-end tests) cannot run in the Nix sandbox and are run by CI
      # (.ci/run) instead. devbroker's tests only listen on loopback, which the Linux
      # sandbox provides; they drive it with kcat as a real third-party client, so kcat is
      # on PATH during the check phase.
      doCheck = true;
      nativeCheckInputs = [ kcat ];
      cargoTestFlags = [
        "-p"
        "settings"
        "-p"
        "contracts"
        "-p"
        "devbroker"
      ];

      passthru = {
        inherit
          binaries
          commonArgs
          src
          version
          ;
        # nix build .#orders etc.: a symlink into this one build, so `stack` still
        # finds its sibling binaries next to its own executable.
        bins = lib.genAttrs binaries (
          name:
          runCommand "${name}-${version}"
            {
              meta = {
                description = "The ${name} binary of the Order Processing Platform";
                mainProgram = name;
                platforms = lib.platforms.linux;
              };
            }
            ''
              test -x ${platform}/bin/${name} || {
                echo "the workspace build installed no ${name} binary" >&2
                exit 1
              }
              mkdir -p $out/bin
              ln -s ${platform}/bin/${name} $out/bin/${name}
            ''
        );
        # For the images: a copy of one binary, so an image's closure holds only that
        # binary and its runtime libraries (glibc, libgcc), not the five others.
        slim = lib.genAttrs binaries (
          name:
          runCommand "${name}-slim-${version}" { meta.mainProgram = name; } ''
            install -Dm755 ${platform}/bin/${name} $out/bin/${name}
          ''
        );
      };

      meta = {
        description = "Order Processing Platform: orders, payments, notifications, gateway, devbroker";
        license = with lib.licenses; [
          mit
          asl20
        ];
        platforms = lib.platforms.linux;
        mainProgram = "stack";
      };
    }
  );
in
# Cargo.toml's rust-version must not exceed the pinned nixpkgs' rustc: fail evaluation,
# with a clear message, rather than in the middle of the build.
assert lib.assertMsg (lib.versionAtLeast rustc.version rustVersion)
  "workspace rust-version ${rustVersion} is newer than nixpkgs' rustc ${rustc.version}";
platform
