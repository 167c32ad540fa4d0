#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer.
# Already running: nothing to do. Otherwise: docker compose when a Docker engine answers,
# else the machine's installed servers are started. Never stops anything.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379

pg_up() { (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null && { command -v pg_isready >/dev/null || return 0; pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }; }
redis_up() { (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; }

wait_for() { # name, check
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "ensure-services: $1 did not come up on this machine" >&2; return 1
}

if pg_up && redis_up; then exit 0; fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "ensure-services: starting Postgres and Redis with docker compose"
  docker compose up -d --wait postgres redis
else
  if ! pg_up; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      version=$(ls /etc/postgresql | sort -V | tail -n 1)
      echo "ensure-services: starting the installed PostgreSQL $version"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    else
      echo "ensure-services: Postgres is not answering on $PG_HOST:$PG_PORT and neither Docker nor an installed PostgreSQL is available" >&2
      exit 1
    fi
  fi
  if ! redis_up; then
    if command -v redis-server >/dev/null 2>&1; then
      echo "ensure-services: starting the installed redis-server"
      dir=/var/lib/redis; [ -d "$dir" ] && [ -w "$dir" ] || dir=$(mktemp -d)
      log=/var/log/redis/ci.log; [ -w "$(dirname "$log")" ] || log="$dir/redis.log"
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$dir" --logfile "$log"
    else
      echo "ensure-services: Redis is not answering on 127.0.0.1:$REDIS_PORT and redis-server is not installed (the service still runs without it)" >&2
    fi
  fi
fi

wait_for Postgres pg_up
command -v redis-server >/dev/null 2>&1 && wait_for Redis redis_up
exit 0
