#!/usr/bin/env bash
# Fetches Apache Kafka's broker jars from Maven Central for the test suite, one
# directory per release line pinned in tools/kafka/<line>/pom.xml:
#
#   $KAFKA_DIST_DIR/<version>/lib/*.jar    (default ~/.cache/order-platform/kafka)
#
# The tests (testkit::KafkaBroker) run `java -cp '<dir>/lib/*' kafka.Kafka` from there.
# Idempotent: a directory whose marker matches its pom.xml is left alone, so a second
# run downloads nothing. Needs Java 17 and Maven. Prints the directories it made.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "== fetch-kafka: $*"; }

dist_dir="${KAFKA_DIST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/order-platform/kafka}"
# Pinned so the same pom.xml always resolves the same way.
dependency_plugin="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

for missing in java mvn; do
  if ! command -v "$missing" >/dev/null; then
    echo "fetch-kafka: '$missing' not found: the Apache Kafka tests need Java 17 and Maven" >&2
    exit 1
  fi
done

for pom in tools/kafka/*/pom.xml; do
  # The project's own <version> (the first one, before <dependencies>) is Kafka's.
  version="$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$pom" | head -1)"
  target="$dist_dir/$version"
  stamp="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$target/.complete" ] && [ "$(cat "$target/.complete")" = "$stamp" ]; then
    log "Apache Kafka $version: up to date in $target"
    continue
  fi
  log "Apache Kafka $version: fetching jars from Maven Central into $target"
  staging="$(mktemp -d "$dist_dir.XXXXXX" 2>/dev/null || { mkdir -p "$dist_dir" && mktemp -d "$dist_dir.XXXXXX"; })"
  mvn -B -q -Dstyle.color=never -f "$pom" "$dependency_plugin:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$staging/lib"
  if ! ls "$staging/lib" | grep -q "^kafka_2.13-$version.jar$"; then
    echo "fetch-kafka: kafka_2.13-$version.jar missing after Maven ran ($pom)" >&2
    exit 1
  fi
  echo "$stamp" >"$staging/.complete"
  rm -rf "$target"
  mkdir -p "$dist_dir"
  mv "$staging" "$target"
  log "Apache Kafka $version: $(ls "$target/lib" | wc -l) jars"
done
