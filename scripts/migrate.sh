#!/usr/bin/env bash
# `make migrate`: applies migrations/ with sqlx-cli (`sqlx migrate run`), installing the pinned
# sqlx-cli first when it is missing. The database is created when it does not exist yet.
# Target: DATABASE_LISTEN_URL when set (the direct server: behind a transaction-mode pooler
# the migrator's advisory lock would not hold), else DATABASE_URL; from the environment or
# .env, like the service. The service's embedded migrator (`ghl-workflow-debugger migrate`,
# run by `make dev`) applies the same files to the same ledger; scripts/check-migrations.sh
# shows both give the same schema.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then set -a; . ./.env; set +a; fi
url="${DATABASE_LISTEN_URL:-${DATABASE_URL:-}}"
if [ -z "$url" ]; then
  echo "migrate: set DATABASE_URL (environment or .env)" >&2
  exit 1
fi

scripts/install-tools.sh sqlx
sqlx database create --database-url "$url"
sqlx migrate run --source migrations --database-url "$url"
