#!/usr/bin/env bash
# Validates the Nix flake and docker-compose.yaml as far as a machine WITHOUT a Nix store
# and WITHOUT a Docker engine allows (this project's CI). It does not build anything:
# `nix build`, `nix flake check` and `docker compose up` need a machine with Nix and
# Docker (see README.md, "Run it with Nix and Docker").
#
#   1. every .nix file parses (nix-instantiate --parse, Debian nix-bin);
#   2. flake.lock is valid JSON holding exactly the nixpkgs pin and nothing else;
#   3. flake.nix's outputs evaluate against a stub of nixpkgs (nix/eval-stub.nix):
#      wiring, asserts, file set paths and output names;
#   4. docker-compose -f docker-compose.yaml config -q (PyPI docker-compose 1.29.2);
#   5. nix/check-compose.py: compose runs exactly the images the flake builds, and prints
#      the environment variable names compose sets per service (JSON);
#   6. the Apache Kafka 4.x override (docker-compose.kafka4.yaml) merged into the default
#      file: docker-compose config, then nix/check-compose.py on the result (which also
#      refuses a service left on the kafka client with a 4.x broker).
#
# Installs what it needs when missing. Called from .ci/run; runnable by hand:
#   bash nix/ci-validate.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '== nix/ci-validate: %s\n' "$*"; }

# --- tools -------------------------------------------------------------------------
if ! command -v nix-instantiate >/dev/null 2>&1; then
  log "installing Debian nix-bin (for nix-instantiate)"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for a concurrent apt/dpkg instead of failing on its lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nix-bin
fi

# docker-compose 1.29.2 pins PyYAML < 6, whose sdist does not build with Cython 3 or
# under build isolation; hence the three steps.
install_docker_compose() {
  python3 -m pip install --quiet "cython<3" wheel
  python3 -m pip install --quiet pyyaml==5.4.1 --no-build-isolation
  python3 -m pip install --quiet docker-compose==1.29.2
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
}

scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
find_compose() {
  if docker-compose version >/dev/null 2>&1; then
    command -v docker-compose
  elif [ -x "$scripts_dir/docker-compose" ] && "$scripts_dir/docker-compose" version >/dev/null 2>&1; then
    echo "$scripts_dir/docker-compose"
  fi
}
compose="$(find_compose || true)"
if [ -z "$compose" ]; then
  log "installing PyPI docker-compose 1.29.2"
  install_docker_compose
  compose="$(find_compose || true)"
fi
if [ -z "$compose" ]; then
  echo "nix/ci-validate: docker-compose is still not runnable after installing it" >&2
  exit 1
fi
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  log "installing PyYAML for nix/check-compose.py"
  python3 -m pip install --quiet "cython<3" wheel
  python3 -m pip install --quiet pyyaml==5.4.1 --no-build-isolation
fi

log "tools: $(nix-instantiate --version), $("$compose" version --short 2>/dev/null || echo docker-compose), $(python3 --version)"

# --- 1. every .nix file parses -----------------------------------------------------
mapfile -t nix_files < <(find . \( -path ./target -o -path ./.git -o -path './target-*' \) -prune -o -name '*.nix' -print | sort)
if [ "${#nix_files[@]}" -eq 0 ]; then
  echo "nix/ci-validate: no .nix files found" >&2
  exit 1
fi
for f in "${nix_files[@]}"; do
  nix-instantiate --parse "$f" >/dev/null
  echo "parsed $f"
done
log "1/6 ${#nix_files[@]} .nix files parse"

# --- 2. flake.lock holds exactly the pin -------------------------------------------
python3 - <<'PY'
import json, sys
expected = {
    "nodes": {
        "nixpkgs": {
            "locked": {
                "lastModified": 1770197578,
                "narHash": "sha256-AYqlWrX09+HvGs8zM6ebZ1pwUqjkfpnv8mewYwAo+iM=",
                "owner": "NixOS",
                "repo": "nixpkgs",
                "rev": "00c21e4c93d963c50d4c0c89bfa84ed6e0694df2",
                "type": "github",
            },
            "original": {
                "owner": "NixOS",
                "ref": "nixos-unstable",
                "repo": "nixpkgs",
                "type": "github",
            },
        },
        "root": {"inputs": {"nixpkgs": "nixpkgs"}},
    },
    "root": "root",
    "version": 7,
}
try:
    with open("flake.lock") as f:
        lock = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"nix/ci-validate: flake.lock is not valid JSON: {e}")
if lock != expected:
    sys.exit("nix/ci-validate: flake.lock differs from the nixpkgs pin:\n"
             + json.dumps(lock, indent=2, sort_keys=True))
# flake.nix's input must be the lock's "original", or Nix would re-lock.
src = open("flake.nix").read()
if 'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";' not in src:
    sys.exit("nix/ci-validate: flake.nix's nixpkgs input is not github:NixOS/nixpkgs/nixos-unstable")
if src.count(".url =") != 1:
    sys.exit("nix/ci-validate: flake.nix declares an input other than nixpkgs")
PY
log "2/6 flake.lock is valid JSON and holds exactly the nixpkgs pin"

# --- 3. the flake's outputs evaluate (against a nixpkgs stub) -----------------------
eval_json="$(mktemp)"
trap 'rm -f "$eval_json"' EXIT
nix-instantiate --eval --strict --json nix/eval-stub.nix >"$eval_json"
python3 - "$eval_json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bins = ["orders", "payments", "notifications", "gateway", "devbroker", "stack"]
services = ["orders", "payments", "notifications", "gateway"]
for system in ("x86_64-linux", "aarch64-linux"):
    s = d[system]
    want_pkgs = set(bins) | {f"{x}-image" for x in services} | {"platform", "default"}
    if set(s["packages"]) != want_pkgs:
        sys.exit(f"{system}: packages {sorted(s['packages'])} != {sorted(want_pkgs)}")
    if set(s["apps"]) != set(bins) | {"load-images"}:
        sys.exit(f"{system}: apps {sorted(s['apps'])}")
    if set(s["checks"]) != {"fmt", "clippy", "build", "compose"}:
        sys.exit(f"{system}: checks {sorted(s['checks'])}")
    if "default" not in s["devShells"]:
        sys.exit(f"{system}: no devShells.default")
    for name, img in s["images"].items():
        if img["user"] in ("", "0", "root", "0:0"):
            sys.exit(f"{system}: {name} runs as root")
        if not img["entrypoint"]:
            sys.exit(f"{system}: {name} has no entrypoint")
print("evaluated outputs: " + ", ".join(f"{k}: {len(v)}" for k, v in d["x86_64-linux"].items()))
PY
log "3/6 flake outputs evaluate (stubbed nixpkgs) with the expected names"

# --- 4. docker-compose config ------------------------------------------------------
"$compose" -f docker-compose.yaml config -q
log "4/6 docker-compose -f docker-compose.yaml config -q: valid"

# --- 5. compose and flake agree ----------------------------------------------------
python3 nix/check-compose.py --eval-json "$eval_json"
log "5/6 compose images are the flake's images"

# --- 6. the Apache Kafka 4.x override --------------------------------------------------
merged="$(mktemp)"
trap 'rm -f "$eval_json" "$merged"' EXIT
"$compose" -f docker-compose.yaml -f docker-compose.kafka4.yaml config >"$merged"
python3 nix/check-compose.py --compose "$merged" --eval-json "$eval_json" >/dev/null
python3 - "$merged" <<'PY'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
for name in ("kafka", "kafka-init"):
    image = services[name]["image"]
    if not image.startswith("apache/kafka:4."):
        sys.exit(f"docker-compose.kafka4.yaml: {name} runs {image}, not Apache Kafka 4.x")
for name in ("orders", "payments", "notifications"):
    if services[name]["environment"].get("KAFKA_CLIENT") != "rdkafka":
        sys.exit(f"docker-compose.kafka4.yaml: {name} is not on KAFKA_CLIENT=rdkafka")
PY
log "6/6 docker-compose.yaml + docker-compose.kafka4.yaml: valid, Apache Kafka 4.x, every Kafka service on rdkafka"

log "all 6 steps passed"
