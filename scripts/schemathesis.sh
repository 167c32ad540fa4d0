#!/usr/bin/env bash
# Schemathesis (an OpenAPI-driven API fuzzer) against the served /openapi.json of a running
# instance: every check (`--checks all`), a bounded number of examples per operation (about a
# minute in all), exit status non-zero on any failure it reports.
#
#   scripts/schemathesis.sh            install if needed, build, start an instance, run
#   scripts/schemathesis.sh install    only install the pinned Schemathesis
#
# The instance is the binary the tests build (target/debug), started on a free loopback port
# against a fresh database (created and seeded by `seed-demo`, dropped afterwards), with the
# demo tenant key, an operator token and a webhook secret, and rate limits off (a 429 would
# hide what a request does). Environment: ST_EXAMPLES (examples per operation, default 200),
# ST_SEED (default fixed, so CI is repeatable; `ST_SEED=random` explores), TEST_DATABASE_URL
# and TEST_REDIS_URL as for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/schemathesis-venv
REQUIREMENTS=scripts/schemathesis-requirements.txt
ST="$VENV/bin/st"

install() {
  # Reinstall when the pinned list changed since the venv was made.
  if [ -x "$ST" ] && cmp -s "$REQUIREMENTS" "$VENV/installed-requirements.txt"; then return 0; fi
  echo "schemathesis: installing the pinned version into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/installed-requirements.txt"
}

install
[ "${1:-}" = install ] && exit 0

# The binary exactly as `make test` builds it (dev-dependencies add features to shared crates,
# so a plain `cargo build` would build, and put in its place, another one).
"${CARGO:-cargo}" test --locked --quiet --no-run --lib --bins --tests
BINARY=target/debug/ghl-workflow-debugger

admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
name="gwd_schemathesis_$(date +%s)_$$"
database_url="${admin_url%/*}/$name"
work=$(mktemp -d)
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql -q "$admin_url" -c "drop database if exists \"$name\" with (force)" >/dev/null 2>&1 ||
    echo "schemathesis: could not drop database $name" >&2
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="$database_url"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export CACHE_PREFIX="$name"
export APP_ENV=development HOST=127.0.0.1 PORT=0 RATE_LIMIT_ENABLED=false RUST_LOG=warn,ghl_workflow_debugger=info
export INTERNAL_API_TOKEN="st-operator-$RANDOM$RANDOM"
export GHL_WEBHOOK_SECRET="st-webhook-$RANDOM$RANDOM"

"$BINARY" seed-demo >"$work/seed.txt"
tenant_key=$(sed -n 's/^ *api key *: *//p' "$work/seed.txt")
location_id=$(sed -n 's/^ *location *: *\([^ ]*\).*/\1/p' "$work/seed.txt")
[ -n "$tenant_key" ] || { echo "schemathesis: seed-demo printed no api key" >&2; cat "$work/seed.txt" >&2; exit 1; }

# Created here, not by the background job's redirection: the loop below may read it first.
: >"$work/server.log"
"$BINARY" serve >>"$work/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 120); do
  port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$port" ]; then
  echo "schemathesis: the server did not start" >&2
  cat "$work/server.log" >&2
  exit 1
fi

seed="${ST_SEED:-20261204}"
seed_args=(--seed "$seed")
[ "$seed" = random ] && seed_args=()

status=0
ST_TENANT_KEY="$tenant_key" ST_LOCATION_ID="$location_id" ST_OPERATOR_TOKEN="$INTERNAL_API_TOKEN" \
  "$ST" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  --checks all \
  --max-examples "${ST_EXAMPLES:-200}" \
  "${seed_args[@]}" \
  --generation-database none \
  --generation-allow-x00 false \
  --no-color \
  --request-timeout 10 || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failed (exit $status); the server's log:" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
