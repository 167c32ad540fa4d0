#!/usr/bin/env bash
# What the Postgres invalidation bus costs a write (issue #20), measured below the service:
# pgbench runs the same single-statement update twice, once returning the version and once
# returning it through `cache_notify` (the function every cached write calls inside its own
# statement, from migrations/20261204000010_cache_notify.sql), interleaved, with a session
# LISTENing on the channel as every instance does. Prints each round's transactions per second
# and the median ratio notify / plain.
# Usage: scripts/bench_notify.sh   (BENCH_ROUNDS, default 3; NOTIFY_SECONDS per run, default 8;
# NOTIFY_CLIENTS, default 16; PG_ADMIN_URL, default the local server)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${BENCH_ROUNDS:-3}"
seconds="${NOTIFY_SECONDS:-8}"
clients="${NOTIFY_CLIENTS:-16}"
admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="gwd_bench_notify_$$"
url="${admin%/*}/$db"
work="$(mktemp -d)"
listener=""
cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null || true
  psql -q "$admin" -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$admin" -c "create database $db" >/dev/null
psql -q "$url" -v ON_ERROR_STOP=1 -f migrations/20261204000010_cache_notify.sql >/dev/null
psql -q "$url" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create table bench_workflows (id int primary key, version bigint not null, definition text not null);
insert into bench_workflows select i, 1, repeat('x', 2000) from generate_series(1, 500) i;
SQL
# One listener, as each instance holds; it only has to be there (the queue is read at its end).
psql -q "$url" -c "listen gwd_bench_notify; select pg_sleep(3600)" >/dev/null 2>&1 &
listener=$!

cat > "$work/plain.sql" <<'SQL'
\set id random(1, 500)
update bench_workflows set version = version + 1 where id = :id returning version;
SQL
# The key's colons come from chr(58): pgbench would read `:name` as one of its variables.
cat > "$work/notify.sql" <<'SQL'
\set id random(1, 500)
update bench_workflows set version = version + 1 where id = :id
returning cache_notify('gwd_bench_notify',
  format('{"id":"0123456789abcdef","keys":["gwd%1$sworkflow%1$sloc_bench%1$swf_%2$s"]}', chr(58), :id::int),
  version);
SQL

tps() {
  pgbench -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$work/$1.sql" "$url" 2>/dev/null |
    awk '/^tps = / { printf "%.0f\n", $3 }'
}

ratios=()
for round in $(seq 1 "$rounds"); do
  plain="$(tps plain)"
  notify="$(tps notify)"
  ratio="$(awk -v a="$notify" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')"
  ratios+=("$ratio")
  echo "round $round: plain $plain tps, with cache_notify $notify tps, ratio $ratio"
done
median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
echo "median ratio with cache_notify / plain: $median ($clients clients, ${seconds} s per run)"
