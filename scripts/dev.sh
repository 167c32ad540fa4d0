#!/usr/bin/env bash
# `make dev`: services up, database created and migrated, demo data seeded, server running.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then set -a; . ./.env; set +a; fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ghl_workflow_debugger}"
export REDIS_URL="${REDIS_URL-redis://127.0.0.1:6379}"
export APP_ENV="${APP_ENV:-development}"
export RUST_LOG="${RUST_LOG:-info}"

scripts/ensure-services.sh
cargo build --locked --bin ghl-workflow-debugger
./target/debug/ghl-workflow-debugger seed-demo
exec ./target/debug/ghl-workflow-debugger serve
