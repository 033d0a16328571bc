{
  description = "Order Processing Platform: Rust services, OCI images and a dev shell, built with Nix";

  # The only input. flake.lock pins it to nixos-unstable at
  # 00c21e4c93d963c50d4c0c89bfa84ed6e0694df2 (2026-02-04); `nix flake update` moves it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # No flake-utils: one genAttrs over the two Linux systems.
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Everything for one system, built from nix/*.nix. callPackage (which passes the
      # result through makeOverridable, adding `override` and `overrideDerivation` to any
      # attribute set) only for files that return one derivation. Files that return a set
      # of outputs are imported with explicit arguments: through callPackage those two
      # functions would become apps.<system>.override etc., which `nix flake show` and
      # `nix flake check` reject as neither apps nor derivations.
      perSystem =
        pkgs:
        let
          platform = pkgs.callPackage ./nix/package.nix { };
          images = import ./nix/images.nix {
            inherit (pkgs) lib dockerTools busybox runCommand;
            inherit platform;
          };
        in
        {
          inherit platform images;
          apps = import ./nix/apps.nix {
            inherit (pkgs) lib writeShellApplication;
            inherit platform images;
          };
          devShell = pkgs.callPackage ./nix/devshell.nix { };
          checks = import ./nix/checks.nix {
            inherit (pkgs)
              lib
              rustPlatform
              rustPackages
              runCommand
              python3
              ;
            inherit platform;
          };
        };

      # Evaluated once per system and shared by every output below.
      bySystem = forAllSystems perSystem;
    in
    {
      # packages.<system>: one package per binary (orders, payments, notifications,
      # gateway, devbroker, stack), the whole workspace (`platform`, also `default`),
      # and one OCI image per service (orders-image, payments-image, ...).
      packages = lib.mapAttrs (
        system: s:
        s.platform.bins
        // lib.mapAttrs' (service: image: lib.nameValuePair "${service}-image" image) s.images.images
        // {
          platform = s.platform;
          default = s.platform;
        }
      ) bySystem;

      # apps.<system>: `nix run .#orders` etc., and `nix run .#load-images`.
      apps = lib.mapAttrs (system: s: s.apps) bySystem;

      devShells = lib.mapAttrs (system: s: { default = s.devShell; }) bySystem;

      # checks.<system>: fmt, clippy, the build with its no-external-server tests,
      # and the compose/flake agreement check.
      checks = lib.mapAttrs (system: s: s.checks) bySystem;
    };
}
