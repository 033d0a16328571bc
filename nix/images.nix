# One layered OCI image per service, built with nixpkgs' dockerTools.buildLayeredImage.
#
# nix/check-compose.py reads imagePrefix, imageTag and the `services` set below with
# regular expressions, so keep them as plain literals in this shape.
{
  lib,
  dockerTools,
  busybox,
  runCommand,
  platform,
}:
let
  imagePrefix = "order-platform";
  # Fixed, so docker-compose.yaml can name the images. Equal to the workspace version
  # (the assert at the bottom and nix/check-compose.py both check that).
  imageTag = "0.1.0";

  # service = ports the service listens on inside the container, and its health port.
  services = {
    orders = { ports = [ 50051 8081 ]; healthPort = 8081; };
    payments = { ports = [ 8082 ]; healthPort = 8082; };
    notifications = { ports = [ 8083 ]; healthPort = 8083; };
    gateway = { ports = [ 8080 ]; healthPort = 8080; };
  };

  # The images have no shell. docker compose health checks still need something to call
  # the service's /healthz from inside the container, so each image carries ONE extra
  # program: busybox's wget, reachable only as /bin/wget (busybox picks the applet from
  # argv[0]). Health checks use the exec form ["CMD", "/bin/wget", ...], no shell.
  healthProbe = runCommand "health-probe" { } ''
    mkdir -p $out/bin
    ln -s ${busybox}/bin/busybox $out/bin/wget
  '';

  mkImage =
    service:
    { ports, healthPort }:
    dockerTools.buildLayeredImage {
      name = "${imagePrefix}/${service}";
      tag = imageTag;
      contents = [
        # /etc/ssl/certs/ca-certificates.crt (and the other usual locations) from cacert.
        dockerTools.caCertificates
        # /etc/passwd and /etc/group with root and nobody (65534), so the non-root user
        # below has a name.
        dockerTools.fakeNss
        healthProbe
      ];
      config = {
        # Non-root: nobody:nogroup from fakeNss.
        User = "65534:65534";
        Entrypoint = [ "${platform.slim.${service}}/bin/${service}" ];
        ExposedPorts = lib.listToAttrs (
          map (port: lib.nameValuePair "${toString port}/tcp" { }) ports
        );
        Env = [
          "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
          "RUST_LOG=info"
        ];
        Labels = {
          "org.opencontainers.image.title" = "order-platform ${service}";
          "org.opencontainers.image.version" = imageTag;
          "org.opencontainers.image.description" =
            "Order Processing Platform ${service} (health: http://127.0.0.1:${toString healthPort}/healthz)";
        };
      };
    };
in
assert lib.assertMsg (imageTag == platform.version)
  "nix/images.nix imageTag ${imageTag} differs from the workspace version ${platform.version}";
{
  inherit imagePrefix imageTag services;
  # images.<service>: the .tar.gz for `docker load`; its imageName/imageTag attributes
  # say what it loads as (order-platform/<service>:0.1.0).
  images = lib.mapAttrs mkImage services;
}
