#!/usr/bin/env bash
# How long orders and payments take to take over a large Go database at start-up.
# Creates two databases as the Go platform's goose migrations leave them (the test
# fixtures in crates/devtools/testkit/fixtures/go), fills them with N orders (3 items
# each), N payments, N handled events and N outbox rows each (one in ten unsent),
# starts each binary on its database and prints the time from process start to the
# take-over's log line. Usage: scripts/bench-go-takeover.sh [N] (default 100000).
# Needs PostgreSQL at TEST_PG_URL (default postgres://postgres:postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
PG=${TEST_PG_URL:-postgres://postgres:postgres@127.0.0.1:5432}
cargo build --quiet --locked -p orders -p payments --bins
for db in bench_go_orders bench_go_payments; do psql -q "$PG/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"; done
go=crates/devtools/testkit/fixtures/go
cat $go/goose.sql $go/orders.sql $go/outbox.sql | psql -q "$PG/bench_go_orders"
psql -q "$PG/bench_go_orders" <<SQL
INSERT INTO orders (user_id, status) SELECT 1 + g % 1000, 'StatusNew' FROM generate_series(1, $N) g;
INSERT INTO order_items (order_id, product_id, quantity, price) SELECT o, 1 + i, 1 + i, 100 * i FROM generate_series(1, $N) o, generate_series(1, 3) i;
INSERT INTO events (event_type, payload, aggregate_id, sent_at)
  SELECT 'order created', jsonb_build_object('event_id', 0, 'order_id', o, 'user_id', 1 + o % 1000, 'total_amount', 1400, 'created_at', '2026-12-01T10:00:00Z'), o, CASE WHEN o % 10 <> 0 THEN now() END
  FROM generate_series(1, $N) o;
SQL
cat $go/goose.sql $go/payments.sql $go/outbox.sql | psql -q "$PG/bench_go_payments"
psql -q "$PG/bench_go_payments" <<SQL
INSERT INTO processed_events (event_id, processed_at) SELECT g, now() FROM generate_series(1, $N) g;
INSERT INTO payments (order_id, user_id, total_amount, status) SELECT g, 1 + g % 1000, 1400, CASE WHEN g % 2 = 0 THEN 'succeeded' ELSE 'failed' END FROM generate_series(1, $N) g;
INSERT INTO events (event_type, payload, aggregate_id, sent_at)
  SELECT 'event-status', jsonb_build_object('event_id', 0, 'order_id', g, 'user_id', 1 + g % 1000, 'order_status', CASE WHEN g % 2 = 0 THEN 'succeeded' ELSE 'failed' END), g, CASE WHEN g % 10 <> 0 THEN now() END
  FROM generate_series(1, $N) g;
SQL
for svc in orders payments; do
  log=/tmp/takeover-$svc.log
  start=$(date +%s.%N)
  if [ $svc = orders ]; then
    env -i PATH=$PATH ORDERS_PG_DSN=$PG/bench_go_orders ORDERS_GRPC_ADDR=127.0.0.1:0 ORDERS_HEALTH_ADDR=127.0.0.1:0 KAFKA_BROKERS=127.0.0.1:1 ORDERS_TRACK_PAYMENTS=false target/debug/orders >$log 2>&1 &
  else
    env -i PATH=$PATH PAYMENTS_PG_DSN=$PG/bench_go_payments PAYMENTS_HEALTH_ADDR=127.0.0.1:0 KAFKA_BROKERS=127.0.0.1:1 target/debug/payments >$log 2>&1 &
  fi
  pid=$!
  until grep -q "took over\|cannot take over" $log 2>/dev/null; do sleep 0.05; done
  end=$(date +%s.%N)
  kill $pid; wait $pid || true
  grep -o 'rows="[^"]*"' $log || grep "cannot" $log
  printf '%s: took over %s Go orders in %.1f s from process start (database now %s)\n' $svc $N "$(echo "$end - $start" | bc)" "$(psql -qtA "$PG/bench_go_$svc" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
done
for db in bench_go_orders bench_go_payments; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
