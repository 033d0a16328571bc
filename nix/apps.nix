# `nix run .#<binary>` for every binary, and `nix run .#load-images`, which builds every
# service image and loads it into the local Docker engine.
{
  lib,
  writeShellApplication,
  platform,
  images,
}:
let
  binApps = lib.genAttrs platform.binaries (name: {
    type = "app";
    program = "${platform.bins.${name}}/bin/${name}";
    meta.description = "Run the ${name} binary of the Order Processing Platform";
  });

  loadImages = writeShellApplication {
    name = "load-images";
    # `docker` comes from the user's PATH: the engine is the host's, not a Nix package.
    text = ''
      if ! command -v docker >/dev/null 2>&1; then
        echo "load-images: docker is not on PATH" >&2
        exit 1
      fi
      ${lib.concatMapStringsSep "\n" (service: ''
        echo "loading ${images.imagePrefix}/${service}:${images.imageTag}"
        docker image load --input ${images.images.${service}}
      '') (lib.attrNames images.images)}
      echo "loaded: ${
        lib.concatMapStringsSep " " (
          service: "${images.imagePrefix}/${service}:${images.imageTag}"
        ) (lib.attrNames images.images)
      }"
    '';
  };
in
binApps
// {
  load-images = {
    type = "app";
    program = "${loadImages}/bin/load-images";
    meta.description = "Build every service image and docker load it";
  };
}
