# Evaluation smoke test for machines WITHOUT nixpkgs (this project's CI has Debian's
# nix-bin but no Nix store and no network for nixpkgs).
#
# It evaluates flake.nix's outputs against a small STUB of nixpkgs: the stubs return
# plain attribute sets instead of derivations, so nothing is built and nothing about
# nixpkgs itself is proven here (nix/VERIFIED.md records how each nixpkgs function was
# checked against nixpkgs' sources). What it does prove: the flake's own wiring
# evaluates (every file imports, every attribute the modules pass between them exists,
# the asserts hold), the file set names only paths that exist, and the outputs have the
# expected names. Run:
#
#   nix-instantiate --eval --strict --json nix/eval-stub.nix
let
  flake = import ../flake.nix;

  # --- the part of nixpkgs' lib the flake uses, re-implemented on builtins -------------
  lib = rec {
    genAttrs = names: f: builtins.listToAttrs (map (n: nameValuePair n (f n)) names);
    nameValuePair = name: value: { inherit name value; };
    mapAttrs = builtins.mapAttrs;
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
    listToAttrs = builtins.listToAttrs;
    attrNames = builtins.attrNames;
    concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    versionAtLeast = v1: v2: builtins.compareVersions v1 v2 >= 0;
    assertMsg = pred: msg: pred || builtins.throw msg;
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    licenses = {
      mit = "MIT";
      asl20 = "Apache-2.0";
    };
    fileset = {
      # Implicit coercion of a path to a file set fails when the path does not exist;
      # maybeMissing turns a missing path into the empty set.
      maybeMissing = path: if builtins.pathExists path then path else null;
      unions =
        paths:
        map (
          p:
          if p == null || builtins.pathExists p then
            p
          else
            builtins.throw "lib.fileset: ${toString p} does not exist"
        ) paths;
      toSource =
        { root, fileset }:
        builtins.deepSeq fileset "/nix/store/00000000000000000000000000000000-source";
    };
  };

  drv =
    name: attrs:
    attrs
    // {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    };

  pkgsFor =
    system:
    let
      pkgs = {
        inherit lib system;
        callPackage =
          path: overrides:
          let
            f = import path;
          in
          f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);
        rustc = drv "rustc" { version = "1.93.0"; };
        rustPackages = {
          cargo = drv "cargo" { };
          rustc = pkgs.rustc;
          clippy = drv "clippy" { };
          rustfmt = drv "rustfmt" { };
        };
        rustPlatform = {
          rustLibSrc = drv "rust-lib-src" { };
          buildRustPackage =
            args:
            assert args ? cargoLock.lockFile;
            # rdkafka-sys builds librdkafka with cmake, which must not take over the
            # package's configure phase, and needs curl's headers.
            assert builtins.elem "cmake" (map (d: d.name) (args.nativeBuildInputs or [ ]));
            assert args.dontUseCmakeConfigure or false;
            assert builtins.elem "curl-dev" (map (d: d.name) (args.buildInputs or [ ]));
            # rdkafka's ssl feature links OpenSSL, found with pkg-config.
            assert builtins.elem "openssl" (map (d: d.name) (args.buildInputs or [ ]));
            assert builtins.elem "pkg-config" (map (d: d.name) (args.nativeBuildInputs or [ ]));
            drv "${args.pname}-${args.version}" (args.passthru or { } // { inherit (args) version; });
        };
        runCommand = name: env: script: drv name env;
        writeShellApplication = args: drv args.name { };
        mkShell = args: drv (args.name or "nix-shell") args;
        python3 = drv "python3" { withPackages = f: drv "python3-env" { }; };
        dockerTools = {
          caCertificates = drv "ca-certificates" { };
          fakeNss = drv "fake-nss" { };
          buildLayeredImage =
            args:
            drv "${baseNameOf args.name}.tar.gz" {
              imageName = args.name;
              imageTag = args.tag;
              inherit (args) config;
            };
        };
        busybox = drv "busybox" { };
        cargo-nextest = drv "cargo-nextest" { };
        postgresql_16 = drv "postgresql" { };
        redis = drv "redis" { };
        kcat = drv "kcat" { };
        grpcurl = drv "grpcurl" { };
        pkg-config = drv "pkg-config" { };
        cmake = drv "cmake" { };
        curl = drv "curl" { dev = drv "curl-dev" { }; };
        openssl = drv "openssl" { dev = drv "openssl-dev" { }; };
      };
    in
    pkgs;

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor;
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  summary =
    system:
    let
      names = set: builtins.attrNames set;
      packages = outputs.packages.${system};
      images = builtins.filter (n: builtins.match ".*-image" n != null) (names packages);
    in
    {
      packages = names packages;
      apps = builtins.mapAttrs (n: a: assert a.type == "app"; a.program) outputs.apps.${system};
      devShells = builtins.mapAttrs (n: d: d.name) outputs.devShells.${system};
      checks = builtins.mapAttrs (n: c: c.name) outputs.checks.${system};
      images = lib.genAttrs images (n: {
        name = packages.${n}.imageName;
        tag = packages.${n}.imageTag;
        user = packages.${n}.config.User;
        entrypoint = packages.${n}.config.Entrypoint;
        exposedPorts = names packages.${n}.config.ExposedPorts;
      });
    };
in
{
  description = flake.description;
  x86_64-linux = summary "x86_64-linux";
  aarch64-linux = summary "aarch64-linux";
}
