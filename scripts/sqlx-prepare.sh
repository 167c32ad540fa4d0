#!/usr/bin/env bash
# Regenerates the compile-time SQL data in .sqlx/ (`make sqlx-prepare`), or with `--check`
# fails when it is out of date (CI). Either way against a database of its own, created here,
# migrated with sqlx-cli from migrations/ and dropped at the end, so the result depends on
# the migrations and the code only, never on a developer's database.
# Needs Postgres (PG_ADMIN_URL, default the local server); installs sqlx-cli when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

check=()
case "${1:-}" in
  --check) check=(--check) ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

scripts/install-tools.sh sqlx
admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
url="${admin%/*}/gwd_sqlx_prepare_$$"
cleanup() { sqlx database drop -y --database-url "$url" >/dev/null 2>&1 || true; }
trap cleanup EXIT

sqlx database create --database-url "$url"
sqlx migrate run --source migrations --database-url "$url" >/dev/null
# The library and the binaries hold every compile-time-checked statement (the tests keep
# runtime queries: a `query!` added to a test would fail the offline build of the tests).
cargo sqlx prepare "${check[@]}" --database-url "$url" -- --locked --lib --bins
