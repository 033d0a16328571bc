#!/usr/bin/env bash
# Validates the Nix flake and docker-compose.yaml as far as a machine WITHOUT a Nix store
# and WITHOUT a Docker engine allows (this project's CI). It builds none of the project:
# `nix build`, `nix flake check` and `docker compose up` need a machine with Nix and
# Docker (see docs/deployment.md). The one thing it builds is its checker, Docker Compose.
#
#   1. every .nix file parses (nix-instantiate --parse, Debian nix-bin);
#   2. flake.lock is valid JSON holding exactly the nixpkgs pin and nothing else;
#   3. flake.nix's outputs evaluate against a stub of nixpkgs (nix/eval-stub.nix, which
#      keeps nixpkgs' callPackage/makeOverridable and real derivations): wiring,
#      asserts, file set paths, output names, and the output shapes `nix flake show` /
#      `nix flake check` require (apps are app definitions, the rest derivations);
#   4. docker compose -f docker-compose.yaml config -q (Docker Compose v5.6.0, built
#      from the Go module proxy once per machine and cached; it needs no engine);
#   5. nix/check-compose.py: compose runs exactly the images the flake builds, and prints
#      the environment variable names compose sets per service (JSON);
#   6. the Apache Kafka 4.x override (docker-compose.kafka4.yaml) merged into the default
#      file: docker compose config, then nix/check-compose.py on the result (which also
#      refuses a service left on the kafka client with a 4.x broker).
#
# Installs what it needs when missing (Debian nix-bin, PyYAML; Go must be there, go1.26.8
# or newer, as Compose's go.mod asks). Called from .ci/run; runnable by hand:
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

# Docker Compose v5 (the `docker compose` plugin, also runnable standalone), built from
# its module on the Go module proxy at a pinned version, with the module's own go.mod and
# go.sum (so the dependency versions are the ones Compose's own release build selects,
# its `exclude` directives included; `go install ...@version` refuses a module with
# exclude directives). Built once per machine: the binary is cached under
# ~/.cache/order-platform (or $XDG_CACHE_HOME's) and reused while it reports the pinned
# version. The build's Go module and build caches (about 0.8 GB) are its own, in a
# temporary directory removed afterwards, so CI's disk keeps only the 32 MB binary.
# `config` needs no Docker engine.
compose_module=github.com/docker/compose/v5
compose_version=v5.6.0
compose_dir="${XDG_CACHE_HOME:-$HOME/.cache}/order-platform"
compose="$compose_dir/docker-compose-$compose_version"
compose_is_pinned() {
  [ -x "$compose" ] && [ "$("$compose" version --short 2>/dev/null)" = "${compose_version#v}" ]
}
build_compose() (
  if ! command -v go >/dev/null 2>&1; then
    echo "nix/ci-validate: building Docker Compose needs Go (go1.26.8 or newer)" >&2
    exit 1
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  export GOMODCACHE="$work/mod" GOCACHE="$work/cache" GOFLAGS="-modcacherw ${GOFLAGS:-}"
  src="$(cd "$work" && go mod download -json "$compose_module@$compose_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$compose_dir"
  cd "$src"
  go build -trimpath -ldflags "-w -X $compose_module/internal.Version=$compose_version" \
    -o "$compose.tmp" ./cmd
  mv -f "$compose.tmp" "$compose"
)
if ! compose_is_pinned; then
  log "building Docker Compose $compose_version from the Go module proxy into $compose"
  start=$SECONDS
  build_compose
  if ! compose_is_pinned; then
    echo "nix/ci-validate: $compose does not report version ${compose_version#v} after building it" >&2
    exit 1
  fi
  log "built Docker Compose $compose_version in $((SECONDS - start)) s"
fi

if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  log "installing PyYAML for nix/check-compose.py"
  python3 -m pip install --quiet pyyaml
fi

log "tools: $(nix-instantiate --version), Docker Compose $("$compose" version --short), $(python3 --version), PyYAML $(python3 -c 'import yaml; print(yaml.__version__)')"

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
# --readonly-mode: derivation paths are computed, no .drv is written to /nix/store.
eval_json="$(mktemp)"
trap 'rm -f "$eval_json"' EXIT
nix-instantiate --readonly-mode --eval --strict --json nix/eval-stub.nix >"$eval_json"
# The output shapes `nix flake show` and `nix flake check` require (Nix's
# src/nix/flake.cc: checkApp, checkDerivation), plus the expected names.
python3 - "$eval_json" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
systems = {"x86_64-linux", "aarch64-linux"}
bins = ["orders", "payments", "notifications", "gateway", "devbroker", "stack"]
services = ["orders", "payments", "notifications", "gateway"]
expected = {
    "packages": set(bins) | {f"{x}-image" for x in services} | {"platform", "default"},
    "apps": set(bins) | {"load-images"},
    "checks": {"fmt", "clippy", "build", "compose"},
    "devShells": {"default"},
}
store_path = re.compile(r"/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+")
in_store = re.compile(store_path.pattern + r"(/.+)?")
errors = []

def what(e):
    if e["kind"] in ("set", "functor"):
        return f"a {e['kind']} with attributes {', '.join(e['attrs']) or '(none)'}"
    return f"a {e['kind']}"

def check_app(path, e):
    if e["kind"] not in ("set", "functor"):
        return [f"app '{path}': expected a set but found {what(e)} (nix flake show: not an app definition)"]
    if e["type"] is None:
        return [f"app '{path}' lacks attribute 'type' (it is {what(e)}; nix flake show: not an app definition)"]
    errs = []
    if e["type"] != "app":
        errs.append(f"app '{path}': type is {e['type']!r}, not 'app' (nix flake show: not an app definition)")
    if e["program"] is None:
        errs.append(f"app '{path}' lacks attribute 'program' (or it is not a string)")
    elif not in_store.fullmatch(e["program"]):
        errs.append(f"app '{path}': program {e['program']!r} is not in the Nix store")
    elif not e["programHasContext"]:
        errs.append(f"app '{path}': program {e['program']!r} carries no string context (no derivation), so `nix run` would not build it")
    for a in e["attrs"]:
        if a not in ("type", "program", "meta"):
            errs.append(f"app '{path}' has unsupported attribute '{a}'")
    if e["description"] is None:
        errs.append(f"app '{path}' lacks attribute 'meta.description' (nix flake check warns)")
    return errs

def check_drv(path, e):
    if e["kind"] != "derivation":
        return [f"flake attribute '{path}' is not a derivation (it is {what(e)})"]
    errs = []
    if not isinstance(e["name"], str):
        errs.append(f"derivation '{path}' has no string name")
    if not (isinstance(e["drvPath"], str) and store_path.fullmatch(e["drvPath"]) and e["drvPath"].endswith(".drv")):
        errs.append(f"derivation '{path}': drvPath {e['drvPath']!r} is not a .drv store path")
    if not (isinstance(e["out"], str) and store_path.fullmatch(e["out"])):
        errs.append(f"derivation '{path}': outPath {e['out']!r} is not a store path")
    return errs

if set(d["outputSystems"]) != set(expected):
    errors.append(f"flake outputs {sorted(d['outputSystems'])} != {sorted(expected)}")
for output, got_systems in d["outputSystems"].items():
    if set(got_systems or []) != systems:
        errors.append(f"{output}: systems {got_systems} != {sorted(systems)}")

for system in sorted(systems):
    s = d[system]
    for output, want in expected.items():
        got = set(s[output])
        if got - want:
            errors.append(f"{output}.{system}: unexpected {', '.join(sorted(got - want))}")
        if want - got:
            errors.append(f"{output}.{system}: missing {', '.join(sorted(want - got))}")
        check = check_app if output == "apps" else check_drv
        for name in sorted(s[output]):
            errors.extend(check(f"{output}.{system}.{name}", s[output][name]))
    for name, img in s["images"].items():
        if img["user"] in (None, "", "0", "root", "0:0"):
            errors.append(f"{system}: {name} runs as root")
        if not img["entrypoint"]:
            errors.append(f"{system}: {name} has no entrypoint")

if errors:
    print("\n".join(f"nix/ci-validate: {e}" for e in errors), file=sys.stderr)
    sys.exit(f"nix/ci-validate: {len(errors)} problem(s) in the flake's outputs")
x86 = d["x86_64-linux"]
print("evaluated outputs: " + ", ".join(f"{k}: {len(v)}" for k, v in x86.items()))
PY
log "3/6 flake outputs evaluate (stubbed nixpkgs): expected names, apps are app definitions, the rest derivations"

# --- 4. docker compose config ------------------------------------------------------
"$compose" -f docker-compose.yaml config -q
log "4/6 docker compose -f docker-compose.yaml config -q (Compose $compose_version): valid"

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
