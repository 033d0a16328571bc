#!/usr/bin/env python3
"""Check that docker-compose.yaml and the flake's images agree.

Reads nix/images.nix (imagePrefix, imageTag and the `services` set, by regular
expression: the file keeps them as plain literals for this) and docker-compose.yaml
(PyYAML), and fails when:

  * a compose service uses an image in the flake's namespace (order-platform/...) that
    the flake does not build (wrong name or tag);
  * a service the flake builds an image for is missing from compose, or runs another image;
  * any compose service has `build:` (the services run on the Nix-built images only);
  * a third-party image is unpinned (no tag, or `latest`);
  * a port compose maps into a flake-built container is not one its image exposes;
  * imageTag differs from the workspace version in Cargo.toml;
  * a Prometheus service's mounted scrape config (compose/prometheus.yml) does not
    scrape every flake-built service at its health port;
  * the broker is Apache Kafka 4.x (an `apache/kafka:4.*` image) and a flake-built
    service that talks to it (sets KAFKA_BROKERS) is not on KAFKA_CLIENT=rdkafka: the
    default `kafka` client cannot use 4.x (KIP-896) and the service would stop.

On success it prints, as JSON on stdout, the environment variable names compose sets
for each flake-built service: {"gateway": ["GATEWAY_HTTP_ADDR", ...], ...}. A Rust test
can compare these against the variables each service reads. Diagnostics go to stderr;
the exit status is 1 on any failure.

With --eval-json FILE (the output of `nix-instantiate --eval --strict --json
nix/eval-stub.nix`), it also checks that the images the flake's outputs evaluate to
(name, tag, exposed ports, per system) are exactly the ones read from nix/images.nix,
i.e. that the regular expressions above read the file faithfully.

The compose file may be the output of `docker compose -f docker-compose.yaml -f
docker-compose.kafka4.yaml config` (an override merged in, in Compose's normalized
form: `environment` as a mapping, `ports` and `volumes` in long syntax with absolute
bind sources): nix/ci-validate.sh checks the Apache Kafka 4.x override that way.

Usage: check-compose.py [--root REPO_ROOT] [--compose FILE] [--images FILE] [--eval-json FILE]
"""

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover - older Python
    tomllib = None

import yaml


def parse_images_nix(text):
    """Return (prefix, tag, {service: {"ports": [...], "healthPort": int}})."""

    def literal(name):
        m = re.search(r'^\s*' + name + r'\s*=\s*"([^"]+)"\s*;', text, re.M)
        if not m:
            raise ValueError(f"nix/images.nix: no `{name} = \"...\";` literal")
        return m.group(1)

    prefix = literal("imagePrefix")
    tag = literal("imageTag")

    block = re.search(r"^\s*services\s*=\s*\{(.*?)^\s*\};", text, re.M | re.S)
    if not block:
        raise ValueError("nix/images.nix: no `services = { ... };` block")
    services = {}
    entry = re.compile(
        r"^\s*([A-Za-z_][\w-]*)\s*=\s*\{\s*ports\s*=\s*\[([^\]]*)\]\s*;"
        r"\s*healthPort\s*=\s*(\d+)\s*;\s*\}\s*;",
        re.M,
    )
    for m in entry.finditer(block.group(1)):
        ports = [int(p) for p in m.group(2).split()]
        services[m.group(1)] = {"ports": ports, "healthPort": int(m.group(3))}
    if not services:
        raise ValueError("nix/images.nix: the services block lists no service")
    return prefix, tag, services


def workspace_version(cargo_toml):
    text = cargo_toml.read_text()
    if tomllib is not None:
        return tomllib.loads(text)["workspace"]["package"]["version"]
    m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    if not m:
        raise ValueError("Cargo.toml: no [workspace.package] version")
    return m.group(1)


def env_names(environment):
    """Compose `environment:` as a mapping or as a list of KEY=VALUE / KEY."""
    if environment is None:
        return []
    if isinstance(environment, dict):
        return sorted(environment)
    return sorted(item.split("=", 1)[0] for item in environment)


def container_ports(ports):
    """Container-side ports of a compose `ports:` list (short or long syntax)."""
    result = []
    for p in ports or []:
        if isinstance(p, dict):
            result.append(int(p["target"]))
            continue
        spec = str(p).split("/", 1)[0]  # drop /tcp
        result.append(int(spec.rsplit(":", 1)[-1]))
    return result


def env_value(environment, name):
    """The value compose sets for `name` (None if it sets none)."""
    if isinstance(environment, dict):
        value = environment.get(name)
        return None if value is None else str(value)
    for item in environment or []:
        key, _, value = str(item).partition("=")
        if key == name:
            return value
    return None


def check_kafka_client(services, prefix):
    """Problems of services left on the `kafka` client with an Apache Kafka 4.x broker."""
    kafka4 = [
        name
        for name, svc in services.items()
        if re.match(r"^apache/kafka:4\.", str((svc or {}).get("image", "")))
    ]
    if not kafka4:
        return []
    problems = []
    for name, svc in services.items():
        svc = svc or {}
        if not str(svc.get("image", "")).startswith(prefix + "/"):
            continue
        environment = svc.get("environment")
        if env_value(environment, "KAFKA_BROKERS") is None:
            continue
        client = env_value(environment, "KAFKA_CLIENT")
        if client != "rdkafka":
            problems.append(
                f"compose service {name!r} talks to Apache Kafka 4.x ({', '.join(kafka4)}) "
                f"with KAFKA_CLIENT={client or 'kafka (default)'}; the kafka client cannot "
                f"use 4.x: set KAFKA_CLIENT=rdkafka"
            )
    return problems


def check_prometheus(base, name, svc, uses, flake_services):
    """Problems with the scrape config mounted into Prometheus service `name`."""
    config_path = None
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            # Long syntax, as `docker compose config` prints it (source made absolute).
            source, target = volume.get("source"), volume.get("target")
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":", 1)[0]
        if target == "/etc/prometheus/prometheus.yml" and source:
            config_path = base / source  # an absolute source stays as it is
    if config_path is None:
        return [f"compose service {name!r} mounts no /etc/prometheus/prometheus.yml"]
    if not config_path.is_file():
        return [f"compose service {name!r} mounts {config_path}, which does not exist"]
    config = yaml.safe_load(config_path.read_text()) or {}
    targets = set()
    for job in config.get("scrape_configs") or []:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs") or []:
            targets.update(static.get("targets") or [])
    problems = []
    for flake_svc, compose_names in uses.items():
        port = flake_services[flake_svc]["healthPort"]
        for compose_name in compose_names:
            if f"{compose_name}:{port}" not in targets:
                problems.append(
                    f"{config_path.name} does not scrape {compose_name}:{port} "
                    f"(its /metrics); it scrapes {sorted(targets)}"
                )
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=Path(__file__).resolve().parent.parent, type=Path)
    parser.add_argument("--compose", type=Path)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--eval-json", type=Path)
    args = parser.parse_args()

    compose_path = args.compose or args.root / "docker-compose.yaml"
    images_path = args.images or args.root / "nix" / "images.nix"
    errors = []

    prefix, tag, flake_services = parse_images_nix(images_path.read_text())
    built = {f"{prefix}/{svc}:{tag}": svc for svc in flake_services}

    if args.eval_json:
        evaluated = json.loads(args.eval_json.read_text())
        expected = {
            f"{svc}-image": (f"{prefix}/{svc}", tag, sorted(f"{p}/tcp" for p in spec["ports"]))
            for svc, spec in flake_services.items()
        }
        systems = [k for k, v in evaluated.items() if isinstance(v, dict) and "images" in v]
        if not systems:
            errors.append(f"{args.eval_json}: no system with images")
        for system in systems:
            got = {
                attr: (img["name"], img["tag"], sorted(img["exposedPorts"]))
                for attr, img in evaluated[system]["images"].items()
            }
            if got != expected:
                errors.append(
                    f"{system}: evaluated images {got} differ from nix/images.nix as read {expected}"
                )

    cargo_toml = args.root / "Cargo.toml"
    if cargo_toml.exists():
        version = workspace_version(cargo_toml)
        if version != tag:
            errors.append(f"nix/images.nix imageTag {tag!r} != Cargo.toml workspace version {version!r}")

    compose = yaml.safe_load(compose_path.read_text())
    services = compose.get("services") or {}
    if not services:
        errors.append(f"{compose_path}: no services")

    env_by_service = {}
    uses = {}  # flake service -> compose services that run its image
    for name, svc in services.items():
        svc = svc or {}
        if "build" in svc:
            errors.append(f"compose service {name!r} has `build:`; only `image:` is allowed")
        image = svc.get("image")
        if not image:
            errors.append(f"compose service {name!r} has no `image:`")
            continue
        repo, _, image_tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if image.startswith(prefix + "/"):
            if image not in built:
                errors.append(
                    f"compose service {name!r} uses {image!r}, which the flake does not build "
                    f"(it builds: {', '.join(sorted(built))})"
                )
                continue
            flake_svc = built[image]
            uses.setdefault(flake_svc, []).append(name)
            env_by_service[name] = env_names(svc.get("environment"))
            exposed = set(flake_services[flake_svc]["ports"])
            for port in container_ports(svc.get("ports")):
                if port not in exposed:
                    errors.append(
                        f"compose service {name!r} maps container port {port}, "
                        f"but {image} exposes only {sorted(exposed)}"
                    )
        elif not image_tag or image_tag == "latest":
            errors.append(f"compose service {name!r}: third-party image {image!r} is not pinned to a tag")

    for name, svc in services.items():
        if str((svc or {}).get("image", "")).startswith("prom/prometheus:"):
            errors.extend(check_prometheus(compose_path.parent, name, svc, uses, flake_services))

    errors.extend(check_kafka_client(services, prefix))

    for flake_svc in flake_services:
        if flake_svc not in uses:
            errors.append(f"the flake builds {prefix}/{flake_svc}:{tag} but no compose service runs it")

    if errors:
        for e in errors:
            print(f"check-compose: {e}", file=sys.stderr)
        print(f"check-compose: FAILED ({len(errors)} problem(s))", file=sys.stderr)
        return 1

    print(
        f"check-compose: OK: {len(built)} flake images ({', '.join(sorted(built))}) "
        f"match docker-compose.yaml",
        file=sys.stderr,
    )
    print(json.dumps(env_by_service, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
