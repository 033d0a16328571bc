# Evaluation smoke test for machines WITHOUT nixpkgs (this project's CI has Debian's
# nix-bin but no Nix store and no network for nixpkgs).
#
# It evaluates flake.nix's outputs against a STUB of nixpkgs that keeps the behaviour of
# nixpkgs the flake depends on (nix/VERIFIED.md lists each piece and the nixpkgs file it
# was checked against):
#   - callPackage is lib.callPackageWith: a missing argument aborts, and the result goes
#     through lib.makeOverridable, so an attribute set gains `override` and
#     `overrideDerivation` (and `overrideAttrs` if it had one), a function becomes a
#     functor with `override`;
#   - stdenv.mkDerivation is builtins.derivation plus nixpkgs' handling of `meta`,
#     `passthru` and `env`: every derivation has a real `type`, `name`, `drvPath` and
#     `outPath`, a value a derivation cannot hold (a set, a function) fails as it would,
#     and meta.platforms / unfree licenses are checked when the derivation is used;
#   - the builders (runCommand, writeShellApplication, mkShell, buildRustPackage,
#     dockerTools, python3.withPackages) take the arguments nixpkgs' do, closed argument
#     lists stay closed, and they return what nixpkgs' return (e.g. writeShellApplication
#     sets meta.mainProgram; an image has imageName/imageTag, not its config).
# Nothing is built (run with --readonly-mode, no .drv is written), so the packages
# themselves are not proven here. Anything the stub lacks is a missing attribute: it
# fails, it never passes silently.
#
# The result describes each flake output's entries (derivation or not, app attributes)
# for nix/ci-validate.sh to check as `nix flake show` / `nix flake check` would. Run:
#
#   nix-instantiate --readonly-mode --eval --strict --json nix/eval-stub.nix
let
  flake = import ../flake.nix;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # --- the part of nixpkgs' lib the flake (and this stub) uses, on builtins ----------
  lib = rec {
    inherit (builtins)
      attrNames
      listToAttrs
      mapAttrs
      elem
      head
      ;
    genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
    nameValuePair = name: value: { inherit name value; };
    mapAttrsToList = f: attrs: builtins.attrValues (mapAttrs f attrs);
    mapAttrs' = f: set: listToAttrs (mapAttrsToList f set);
    filterAttrs =
      pred: set: removeAttrs set (builtins.filter (n: !pred n set.${n}) (attrNames set));
    optionalAttrs = cond: as: if cond then as else { };
    intersectLists = e: builtins.filter (x: elem x e);
    concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
    toLower = builtins.replaceStrings (stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (
      stringToCharacters "abcdefghijklmnopqrstuvwxyz"
    );
    stringToCharacters = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    versionAtLeast = v1: v2: builtins.compareVersions v1 v2 >= 0;
    assertMsg = pred: msg: pred || builtins.throw msg;
    isDerivation = value: value.type or null == "derivation";
    isFunction = f: builtins.isFunction f || (f ? __functor && isFunction (f.__functor f));
    functionArgs =
      f:
      if f ? __functor then
        f.__functionArgs or (functionArgs (f.__functor f))
      else
        builtins.functionArgs f;
    setFunctionArgs = f: args: {
      __functor = self: f;
      __functionArgs = args;
    };
    mirrorFunctionArgs =
      f:
      let
        fArgs = functionArgs f;
      in
      g: setFunctionArgs g fArgs;

    platforms.linux = systems;
    platforms.all = systems;
    licenses = {
      mit = {
        spdxId = "MIT";
        free = true;
      };
      asl20 = {
        spdxId = "Apache-2.0";
        free = true;
      };
    };

    # lib/customisation.nix. Suggestions for a misspelt argument are left out of the
    # error message.
    overrideDerivation =
      drv: f:
      let
        newDrv = derivation (drv.drvAttrs // (f drv));
      in
      newDrv
      // {
        meta = drv.meta or { };
        passthru = drv.passthru or { };
      }
      // (drv.passthru or { });

    makeOverridable =
      f:
      let
        mirrorArgs = mirrorFunctionArgs f;
        recoverMetadata =
          if builtins.isAttrs f then
            fDecorated:
            f
            // fDecorated
            // optionalAttrs (f ? override) { override = fdrv: makeOverridable (f.override fdrv); }
          else
            x: x;
        decorate = f': recoverMetadata (mirrorArgs f');
      in
      decorate (
        origArgs:
        let
          result = f origArgs;
          overrideWith =
            newArgs: origArgs // (if isFunction newArgs then newArgs origArgs else newArgs);
          overrideArgs = mirrorArgs (newArgs: makeOverridable f (overrideWith newArgs));
          overrideResult = g: makeOverridable (mirrorArgs (args: g (f args))) origArgs;
        in
        if builtins.isAttrs result then
          result
          // {
            override = overrideArgs;
            overrideDerivation = fdrv: overrideResult (x: overrideDerivation x fdrv);
            ${if result ? overrideAttrs then "overrideAttrs" else null} =
              fdrv: overrideResult (x: x.overrideAttrs fdrv);
          }
        else if isFunction result then
          setFunctionArgs result (functionArgs result) // { override = overrideArgs; }
        else
          result
      );

    callPackageWith =
      autoArgs: fn: args:
      let
        f = if isFunction fn then fn else import fn;
        fargs = functionArgs f;
        allArgs = builtins.intersectAttrs fargs autoArgs // args;
        missingArgs = filterAttrs (name: value: !value) (removeAttrs fargs (attrNames allArgs));
        errorForArg =
          arg:
          let
            loc = builtins.unsafeGetAttrPos arg fargs;
            loc' = if loc != null then loc.file + ":" + toString loc.line else "<unknown location>";
          in
          "Function called without required argument \"${arg}\" at ${loc'}";
      in
      if missingArgs == { } then
        makeOverridable f allArgs
      else
        abort "lib.customisation.callPackageWith: ${errorForArg (head (attrNames missingArgs))}";

    fileset =
      let
        # File sets take paths, never strings, and a path that does not exist is an error.
        checkPath =
          fn: p:
          if !builtins.isPath p then
            throw "lib.fileset.${fn}: ${toString p} is a ${builtins.typeOf p}, not a path"
          else if !builtins.pathExists p then
            throw "lib.fileset.${fn}: ${toString p} does not exist"
          else
            p;
        isUnder =
          root: p:
          let
            prefix = toString root + "/";
          in
          p == root || builtins.substring 0 (builtins.stringLength prefix) (toString p) == prefix;
      in
      {
        # A missing path becomes the empty file set.
        maybeMissing =
          path:
          if !builtins.isPath path then
            checkPath "maybeMissing" path
          else if builtins.pathExists path then
            [ path ]
          else
            [ ];
        unions =
          elems:
          builtins.concatLists (
            map (e: if builtins.isList e then e else [ (checkPath "unions" e) ]) elems
          );
        # Every file must be under root. The result is a source whose outPath is a store
        # path; its hash here is made up (nothing is copied).
        toSource =
          { root, fileset }:
          let
            files = if builtins.isList fileset then fileset else [ (checkPath "toSource" fileset) ];
            outside = builtins.filter (p: !isUnder root p) files;
          in
          assert assertMsg (outside == [ ])
            "lib.fileset.toSource: ${toString (head outside)} is not under root ${toString root}";
          {
            _isLibCleanSourceWith = true;
            origSrc = root;
            name = "source";
            outPath = builtins.deepSeq files "/nix/store/00000000000000000000000000000000-source";
          };
      };
  };

  pkgsFor =
    system:
    let
      # pkgs/stdenv/generic/make-derivation.nix and check-meta.nix, reduced to what a
      # flake output can observe.
      mkDerivation =
        args:
        let
          name = args.name or "${args.pname}-${args.version}";
          meta = args.meta or { };
          passthru = args.passthru or { };
          doCheck = args.doCheck or false;
          # A dependency is a derivation, null, a string or a path (lists nest).
          checkDeps =
            attr: deps:
            map (
              d:
              if lib.isDerivation d || d == null || builtins.isString d || builtins.isPath d then
                d
              else if builtins.isList d then
                checkDeps attr d
              else
                throw "Dependency is not of a valid type: element of ${attr} for ${name}"
            ) deps;
          deps = attr: checkDeps attr (args.${attr} or [ ]);
          checkedEnv = lib.mapAttrs (
            n: v:
            assert lib.assertMsg (
              builtins.isString v || builtins.isBool v || builtins.isInt v || lib.isDerivation v
            ) "The ‘env’ attribute set can only contain derivation, string, boolean or integer attributes. The ‘${n}’ attribute is of type ${builtins.typeOf v}.";
            v
          ) (args.env or { });
          drv = derivation (
            removeAttrs args [
              "meta"
              "passthru"
              "pos"
              "env"
              "checkInputs"
              "nativeCheckInputs"
              "installCheckInputs"
              "nativeInstallCheckInputs"
            ]
            // lib.genAttrs [
              "depsBuildBuild"
              "depsBuildTarget"
              "depsHostHost"
              "depsTargetTarget"
              "propagatedBuildInputs"
              "propagatedNativeBuildInputs"
            ] deps
            // {
              inherit name system doCheck;
              nativeBuildInputs =
                deps "nativeBuildInputs" ++ (if doCheck then deps "nativeCheckInputs" else [ ]);
              buildInputs = deps "buildInputs" ++ (if doCheck then deps "checkInputs" else [ ]);
              # Nothing is built here; the builder only has to be a string.
              builder = "/bin/sh";
              __ignoreNulls = true;
            }
            // checkedEnv
          );
          license = meta.license or [ ];
          licenses = if builtins.isList license then license else [ license ];
          refuse = why: throw "Refusing to evaluate package ‘${name}’ because it ${why}";
          valid =
            if meta ? platforms && !lib.elem system meta.platforms then
              refuse "is not available on the requested hostPlatform: hostPlatform.system = \"${system}\""
            else if builtins.any (l: !(l.free or true)) licenses then
              refuse "has an unfree license"
            else
              true;
        in
        drv
        // {
          inherit meta passthru;
          overrideAttrs =
            f:
            let
              r = f args;
            in
            mkDerivation (args // (if builtins.isFunction r then r args else r));
        }
        // passthru
        // {
          drvPath = assert valid; drv.drvPath;
          outPath = assert valid; drv.outPath;
        };

      # A nixpkgs package: a derivation built by callPackage, so it has `override` too.
      package =
        pname: attrs:
        pkgs.callPackage (
          { stdenv }:
          stdenv.mkDerivation (
            {
              inherit pname;
              version = "0";
              meta.platforms = lib.platforms.linux;
            }
            // attrs
          )
        ) { };

      # pkgs/build-support/trivial-builders/default.nix
      runCommand =
        name: env: buildCommand:
        mkDerivation (
          {
            enableParallelBuilding = true;
            inherit buildCommand name;
            passAsFile = [ "buildCommand" ] ++ (env.passAsFile or [ ]);
          }
          // removeAttrs env [ "passAsFile" ]
        );
      writeTextFile =
        {
          name,
          text,
          executable ? false,
          destination ? "",
          checkPhase ? "",
          meta ? { },
          passthru ? { },
          allowSubstitutes ? false,
          preferLocalBuild ? true,
          derivationArgs ? { },
        }:
        let
          matches = builtins.match "/bin/([^/]+)" destination;
        in
        runCommand name (
          {
            inherit
              text
              executable
              checkPhase
              allowSubstitutes
              preferLocalBuild
              ;
            passAsFile = [ "text" ] ++ derivationArgs.passAsFile or [ ];
            meta =
              lib.optionalAttrs (executable && matches != null) { mainProgram = lib.head matches; }
              // meta
              // derivationArgs.meta or { };
            passthru = passthru // derivationArgs.passthru or { };
          }
          // removeAttrs derivationArgs [
            "passAsFile"
            "meta"
            "passthru"
          ]
        ) "target=$out${destination}; mkdir -p \"$(dirname \"$target\")\"; mv \"$textPath\" \"$target\"";
      writeShellApplication =
        {
          name,
          text,
          runtimeInputs ? [ ],
          runtimeEnv ? null,
          meta ? { },
          passthru ? { },
          checkPhase ? null,
          excludeShellChecks ? [ ],
          extraShellCheckFlags ? [ ],
          bashOptions ? [
            "errexit"
            "nounset"
            "pipefail"
          ],
          derivationArgs ? { },
        }:
        writeTextFile {
          inherit
            name
            meta
            passthru
            derivationArgs
            ;
          executable = true;
          destination = "/bin/${name}";
          allowSubstitutes = true;
          preferLocalBuild = false;
          text =
            "#!${pkgs.bash}/bin/bash\n"
            + lib.concatMapStringsSep "\n" (o: "set -o ${o}") bashOptions
            + "\nexport PATH=\"${lib.concatMapStringsSep ":" (p: "${p}/bin") runtimeInputs}:$PATH\"\n"
            + text;
          checkPhase =
            if checkPhase == null then
              "${pkgs.shellcheck-minimal}/bin/shellcheck \"$target\""
            else
              checkPhase;
        };

      pkgs = {
        inherit lib runCommand writeShellApplication;
        callPackage = lib.callPackageWith pkgs;
        stdenv = {
          inherit mkDerivation;
          hostPlatform.system = system;
        };

        bash = package "bash" { };
        shellcheck-minimal = package "shellcheck-minimal" { };
        cacert = package "cacert" { };
        pigz = package "pigz" { };
        busybox = package "busybox" { };
        cargo-nextest = package "cargo-nextest" { };
        postgresql_16 = package "postgresql" { version = "16.0"; };
        redis = package "redis" { };
        kcat = package "kcat" { meta.mainProgram = "kcat"; };
        grpcurl = package "grpcurl" { };
        pkg-config = package "pkg-config" { };
        cmake = package "cmake" { };
        curl = package "curl" {
          outputs = [
            "bin"
            "dev"
            "out"
          ];
        };
        openssl = package "openssl" {
          outputs = [
            "bin"
            "dev"
            "out"
          ];
        };

        rustc = package "rustc" {
          version = "1.93.0";
          passthru.targetPlatforms = lib.platforms.linux;
        };
        rustPackages = {
          inherit (pkgs) rustc;
          cargo = package "cargo" { };
          clippy = package "clippy" { };
          rustfmt = package "rustfmt" { };
        };
        rustPlatform = {
          rustLibSrc = package "rust-lib-src" { };
          # pkgs/build-support/rust/import-cargo-lock.nix: closed arguments; every crate
          # must come from a known registry, or from git with an outputHashes entry
          # (unless allowBuiltinFetchGit); an outputHashes entry must name a git crate.
          importCargoLock =
            {
              lockFile ? null,
              lockFileContents ? null,
              allowBuiltinFetchGit ? false,
              extraRegistries ? { },
              outputHashes ? { },
            }:
            assert (lockFile == null) != (lockFileContents == null);
            let
              lock = builtins.fromTOML (
                if lockFile != null then builtins.readFile lockFile else lockFileContents
              );
              registries = {
                "https://github.com/rust-lang/crates.io-index" = "https://crates.io/api/v1/crates";
              }
              // extraRegistries;
              hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
              nameVer = p: "${p.name}-${p.version}";
              deps = builtins.filter (p: p ? source) (lock.package or [ ]);
              gitNames = map nameVer (builtins.filter (p: hasPrefix "git+" p.source) deps);
              checkCrate =
                p:
                let
                  index = builtins.replaceStrings [ "registry+" ] [ "" ] p.source;
                in
                if (hasPrefix "registry+" p.source || hasPrefix "sparse+" p.source) && registries ? ${index} then
                  true
                else if hasPrefix "git+" p.source then
                  outputHashes ? ${nameVer p}
                  || allowBuiltinFetchGit
                  || throw "No hash was found while vendoring the git dependency ${nameVer p}."
                else
                  throw "Cannot handle crate source: ${p.source}";
              unused = builtins.filter (n: !lib.elem n gitNames) (builtins.attrNames outputHashes);
            in
            assert lib.assertMsg (unused == [ ])
              "A hash was specified for ${lib.head unused}, but there is no corresponding git dependency.";
            assert builtins.all checkCrate deps;
            mkDerivation { name = "cargo-vendor-dir"; };
          # pkgs/build-support/rust/build-rust-package/default.nix
          buildRustPackage =
            args:
            let
              cargoDeps =
                if args ? cargoLock then
                  pkgs.rustPlatform.importCargoLock args.cargoLock
                else
                  args.cargoDeps or (throw "cargoHash, cargoVendorDir, cargoDeps, or cargoLock must be set");
              meta = args.meta or { };
              # This project's own expectations, not nixpkgs': rdkafka-sys builds
              # librdkafka with cmake (which must not take over the configure phase) and
              # needs curl's headers; rdkafka's ssl feature links OpenSSL via pkg-config.
              has = list: pname: builtins.any (d: (d.pname or null) == pname) list;
              nativeInputs = args.nativeBuildInputs or [ ];
              inputs = args.buildInputs or [ ];
            in
            assert has nativeInputs "cmake" && args.dontUseCmakeConfigure or false;
            assert has nativeInputs "pkg-config";
            assert builtins.any (d: d.pname or null == "curl" && d.outputName == "dev") inputs;
            assert has inputs "openssl";
            mkDerivation (
              removeAttrs args [
                "depsExtraArgs"
                "cargoUpdateHook"
                "cargoLock"
                "useFetchCargoVendor"
                "RUSTFLAGS"
              ]
              // {
                inherit cargoDeps;
                nativeBuildInputs = nativeInputs ++ [
                  pkgs.rustc
                  pkgs.rustPackages.cargo
                ];
                doCheck = args.doCheck or true;
                meta = meta // {
                  platforms = lib.intersectLists (
                    meta.platforms or lib.platforms.all
                  ) pkgs.rustc.targetPlatforms;
                };
              }
            );
        };

        # pkgs/build-support/mkshell/default.nix, itself called with callPackage in
        # all-packages.nix (so pkgs.mkShell is a functor with `override`).
        mkShell = pkgs.callPackage (
          { stdenv }:
          {
            name ? "nix-shell",
            packages ? [ ],
            inputsFrom ? [ ],
            buildInputs ? [ ],
            nativeBuildInputs ? [ ],
            propagatedBuildInputs ? [ ],
            propagatedNativeBuildInputs ? [ ],
            ...
          }@attrs:
          stdenv.mkDerivation (
            {
              inherit
                name
                buildInputs
                propagatedBuildInputs
                propagatedNativeBuildInputs
                ;
              nativeBuildInputs = packages ++ nativeBuildInputs;
              shellHook = attrs.shellHook or "";
              phases = [ "buildPhase" ];
              buildPhase = "export >> \"$out\"";
              preferLocalBuild = true;
            }
            // removeAttrs attrs [
              "name"
              "packages"
              "inputsFrom"
              "buildInputs"
              "nativeBuildInputs"
              "propagatedBuildInputs"
              "propagatedNativeBuildInputs"
              "shellHook"
            ]
          )
        ) { };

        python3 = package "python3" {
          version = "3.13.0";
          passthru.withPackages =
            f:
            mkDerivation {
              name = "python3-3.13.0-env";
              paths = f pkgs.python3Packages;
            };
        };
        python3Packages = {
          pyyaml = package "python3.13-pyyaml" { };
        };

        # pkgs/build-support/docker/default.nix
        dockerTools = rec {
          caCertificates = runCommand "ca-certificates" { } "ln -s ${pkgs.cacert}/etc/ssl/certs $out";
          fakeNss = package "fake-nss" { };
          streamLayeredImage =
            {
              name,
              tag ? null,
              fromImage ? null,
              contents ? [ ],
              config ? { },
              created ? "1970-01-01T00:00:01Z",
              extraCommands ? "",
              fakeRootCommands ? "",
              enableFakechroot ? false,
              maxLayers ? 100,
              includeStorePaths ? true,
              passthru ? { },
            }:
            assert lib.assertMsg (maxLayers > 1) "dockerTools: maxLayers must be greater than 1";
            let
              baseName = baseNameOf name;
              conf = runCommand "${baseName}-conf.json" {
                inherit fromImage maxLayers created;
                imageName = lib.toLower name;
                # The config is written out as JSON: it must be serialisable.
                baseJson = builtins.toJSON {
                  inherit config;
                  os = "linux";
                };
                contents = if builtins.isList contents then contents else [ contents ];
                passthru.imageTag =
                  if tag != null then tag else lib.head (builtins.split "-" (baseNameOf conf.outPath));
              } "build the image config";
            in
            runCommand "stream-${baseName}" {
              inherit (conf) imageName;
              passthru = passthru // {
                inherit (conf) imageTag;
                isExe = true;
              };
            } "${conf}";
          buildLayeredImage =
            {
              name,
              compressor ? "gz",
              ...
            }@args:
            let
              stream = streamLayeredImage (removeAttrs args [ "compressor" ]);
            in
            runCommand "${baseNameOf name}.tar.gz" {
              inherit (stream) imageName;
              passthru = {
                inherit (stream) imageTag;
                # Not in nixpkgs, which only writes the config into the image: the config
                # as JSON, for nix/ci-validate.sh and nix/check-compose.py to read.
                stubImageConfig = builtins.fromJSON (
                  builtins.unsafeDiscardStringContext (builtins.toJSON (args.config or { }))
                );
              };
              nativeBuildInputs = [ pkgs.pigz ];
            } "${stream} | pigz -nT > $out";
        };
      };
    in
    pkgs;

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems pkgsFor;
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  # What `nix flake show` / `nix flake check` look at in one output entry. Plain data
  # only: no functions, and no key named outPath (JSON would print the set as it).
  describe =
    v:
    let
      t = builtins.typeOf v;
    in
    if t == "set" && lib.isDerivation v then
      {
        kind = "derivation";
        name = v.name or null;
        drvPath = v.drvPath or null;
        out = v.outPath or null;
      }
    else if t == "set" then
      {
        kind = if v ? __functor then "functor" else "set";
        attrs = builtins.attrNames v;
        type = if builtins.isString (v.type or null) then v.type else null;
        program = if builtins.isString (v.program or null) then v.program else null;
        programHasContext = builtins.isString (v.program or null) && builtins.hasContext v.program;
        description =
          if builtins.isString (v.meta.description or null) then v.meta.description else null;
      }
    else
      { kind = if t == "lambda" then "function" else t; };

  summary =
    system:
    let
      packages = outputs.packages.${system};
      imageNames = builtins.filter (n: builtins.match ".*-image" n != null) (builtins.attrNames packages);
      describeAll = set: lib.mapAttrs (n: describe) set;
    in
    {
      packages = describeAll packages;
      apps = describeAll outputs.apps.${system};
      devShells = describeAll outputs.devShells.${system};
      checks = describeAll outputs.checks.${system};
      images = lib.genAttrs imageNames (
        n:
        let
          img = packages.${n};
          config = img.stubImageConfig or { };
        in
        {
          name = img.imageName or null;
          tag = img.imageTag or null;
          user = config.User or null;
          entrypoint = config.Entrypoint or [ ];
          exposedPorts = builtins.attrNames (config.ExposedPorts or { });
        }
      );
    };
in
{
  description = flake.description;
  # Output name -> the systems it defines.
  outputSystems = lib.mapAttrs (n: v: if builtins.isAttrs v then builtins.attrNames v else null) outputs;
  x86_64-linux = summary "x86_64-linux";
  aarch64-linux = summary "aarch64-linux";
}
