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

      # Everything for one system, built from nix/*.nix.
      perSystem =
        pkgs:
        let
          platform = pkgs.callPackage ./nix/package.nix { };
          images = pkgs.callPackage ./nix/images.nix { inherit platform; };
        in
        {
          inherit platform images;
          apps = pkgs.callPackage ./nix/apps.nix { inherit platform images; };
          devShell = pkgs.callPackage ./nix/devshell.nix { };
          checks = pkgs.callPackage ./nix/checks.nix { inherit platform; };
        };
    in
    {
      # packages.<system>: one package per binary (orders, payments, notifications,
      # gateway, devbroker, stack), the whole workspace (`platform`, also `default`),
      # and one OCI image per service (orders-image, payments-image, ...).
      packages = forAllSystems (
        pkgs:
        let
          s = perSystem pkgs;
        in
        s.platform.bins
        // lib.mapAttrs' (service: image: lib.nameValuePair "${service}-image" image) s.images.images
        // {
          platform = s.platform;
          default = s.platform;
        }
      );

      # apps.<system>: `nix run .#orders` etc., and `nix run .#load-images`.
      apps = forAllSystems (pkgs: (perSystem pkgs).apps);

      devShells = forAllSystems (pkgs: {
        default = (perSystem pkgs).devShell;
      });

      # checks.<system>: fmt, clippy, the build with its no-external-server tests,
      # and the compose/flake agreement check.
      checks = forAllSystems (pkgs: (perSystem pkgs).checks);
    };
}
