#!/usr/bin/env bash
# `make dev`: services up, database created and migrated, demo data seeded, server running.
set -euo pipefail
cd "$(dirname "$0")/.."

# .env fills in what the environment does not set, as the binary's own reading of it does:
# `DATABASE_URL=… PORT=… make dev` runs another database or port whatever .env says.
if [ -f .env ]; then
  names=$(sed -nE 's/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=.*/\2/p' .env)
  declare -A given=()
  for name in $names; do
    if [ -n "${!name+set}" ]; then given[$name]=${!name}; fi
  done
  set -a; . ./.env; set +a
  for name in "${!given[@]}"; do export "$name=${given[$name]}"; done
fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ghl_workflow_debugger}"
export REDIS_URL="${REDIS_URL-redis://127.0.0.1:6379}"
export APP_ENV="${APP_ENV:-development}"
export RUST_LOG="${RUST_LOG:-info}"

scripts/ensure-services.sh
# CARGO as in the Makefile (the `make dev` test sets it to `true`: the tests have built the
# binary already, and a build here would replace it under the tests running beside it).
"${CARGO:-cargo}" build --locked --bin ghl-workflow-debugger
./target/debug/ghl-workflow-debugger seed-demo
exec ./target/debug/ghl-workflow-debugger serve
