# `nix flake check`: formatting, clippy, the package build with its no-external-server
# tests, and the docker-compose.yaml / nix/images.nix agreement check.
{
  lib,
  rustPlatform,
  rustPackages,
  runCommand,
  python3,
  platform,
}:
let
  # A check that runs one cargo command over the vendored workspace instead of building it.
  # The same commonArgs as the package, so the same crates are vendored (cargoSetupHook
  # points cargo at them, hence --offline works). A custom buildPhase/installPhase
  # replaces cargoBuildHook/cargoInstallHook; doCheck = false skips cargoCheckHook.
  cargoCheck =
    name: tool: command:
    rustPlatform.buildRustPackage (
      platform.commonArgs
      // {
        pname = "order-platform-${name}";
        # cargo-auditable only wraps builds; these commands are not builds.
        auditable = false;
        # cmake for rdkafka-sys (see nix/package.nix), plus the tool.
        nativeBuildInputs = platform.commonArgs.nativeBuildInputs ++ [ tool ];
        doCheck = false;
        buildPhase = ''
          runHook preBuild
          ${command}
          runHook postBuild
        '';
        installPhase = ''
          runHook preInstall
          touch $out
          runHook postInstall
        '';
      }
    );

  composeSrc = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../docker-compose.yaml
      ../compose
      ./images.nix
      ./check-compose.py
    ];
  };
in
{
  fmt = cargoCheck "fmt" rustPackages.rustfmt "cargo fmt --all -- --check";

  clippy = cargoCheck "clippy" rustPackages.clippy "cargo clippy --offline --workspace --all-targets -- -D warnings";

  # The real package: its check phase runs the tests that need no external server
  # (cargoTestFlags in nix/package.nix).
  build = platform;

  compose =
    runCommand "order-platform-compose-check"
      {
        nativeBuildInputs = [ (python3.withPackages (ps: [ ps.pyyaml ])) ];
      }
      ''
        python3 ${composeSrc}/nix/check-compose.py --root ${composeSrc} > $out
      '';
}
