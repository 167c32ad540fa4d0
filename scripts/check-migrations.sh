#!/usr/bin/env bash
# CI: `sqlx migrate run` (sqlx-cli, what DEPLOYING.md and `make migrate` use) and the service's
# embedded migrator (`ghl-workflow-debugger migrate`, what `make dev` and the startup use) give
# the same database. Each migrates a fresh database of its own; the schemas
# (`pg_dump --schema-only`) and the migration ledgers (`_sqlx_migrations`: version,
# description, checksum, success) must be identical. The databases are dropped at the end.
# Needs Postgres (PG_ADMIN_URL, default the local server) and its client tools (pg_dump,
# psql); installs sqlx-cli when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-tools.sh sqlx
admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cli_db="${admin%/*}/gwd_schema_cli_$$"
embedded_db="${admin%/*}/gwd_schema_embedded_$$"
out="$(mktemp -d)"
cleanup() {
  for url in "$cli_db" "$embedded_db"; do
    sqlx database drop -y --database-url "$url" >/dev/null 2>&1 || true
  done
  rm -rf "$out"
}
trap cleanup EXIT

sqlx database create --database-url "$cli_db"
sqlx database create --database-url "$embedded_db"

sqlx migrate run --source migrations --database-url "$cli_db" >/dev/null
# The binary reads .env: every setting that could send it elsewhere is given here.
DATABASE_URL="$embedded_db" DATABASE_LISTEN_URL= DATABASE_POOLER=none RUST_LOG=warn \
  cargo run --locked --quiet --bin ghl-workflow-debugger -- migrate

dump() { # url, file
  # `\restrict`/`\unrestrict` carry a random key per dump (pg_dump 15.14+).
  pg_dump --schema-only --no-owner --no-privileges --dbname="$1" | grep -v '^\\\(un\)\?restrict ' >"$2"
  psql "$1" -XAtq -c "select version, description, encode(checksum, 'hex'), success
                       from _sqlx_migrations order by version" >"$2.ledger"
}
dump "$cli_db" "$out/cli.sql"
dump "$embedded_db" "$out/embedded.sql"

status=0
if ! diff -u "$out/cli.sql" "$out/embedded.sql"; then
  echo "check-migrations: the schemas differ (above: - sqlx-cli, + embedded migrator)" >&2
  status=1
fi
if ! diff -u "$out/cli.sql.ledger" "$out/embedded.sql.ledger"; then
  echo "check-migrations: the _sqlx_migrations ledgers differ (above: - sqlx-cli, + embedded)" >&2
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "check-migrations: sqlx-cli and the embedded migrator give the same schema ($(grep -c '^CREATE' "$out/cli.sql") CREATE statements, $(wc -l <"$out/cli.sql.ledger") migrations)"
fi
exit "$status"
