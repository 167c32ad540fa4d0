# The two commands a newcomer needs: `make dev` (run with demo data) and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: schemathesis dev run test migrate lint deny fmt openapi bench bench-load bench-notify services chaos sqlx-prepare sqlx-check check-migrations tools

dev: ## start Postgres/Redis if needed, create + migrate + seed the database, run the server
	scripts/dev.sh

run: ## run the server with the current environment / .env
	$(CARGO) run --locked --bin ghl-workflow-debugger -- serve

services: ## make sure Postgres and Redis answer (starts them if installed and stopped)
	scripts/ensure-services.sh

test: services ## every test, against real Postgres and Redis, then Schemathesis against a running instance
	$(CARGO) test --locked --lib --bins --tests
	CARGO=$(CARGO) scripts/schemathesis.sh

schemathesis: ## Schemathesis alone against the served OpenAPI document (fails on any failure)
	CARGO=$(CARGO) scripts/schemathesis.sh

chaos: services ## the fault suite (RELIABILITY.md) with CHAOS_SCALE (default 10) times the requests and longer faults
	CHAOS_SCALE=$${CHAOS_SCALE:-10} $(CARGO) test --locked --test api faults:: -- --nocapture --test-threads=1

migrate: ## `sqlx migrate run` on DATABASE_LISTEN_URL or DATABASE_URL (creates the database if missing; installs sqlx-cli once)
	scripts/migrate.sh

lint: ## formatting, clippy (warnings are errors), cargo deny (licences, advisories, duplicates)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	scripts/deny.sh

deny: ## cargo deny check alone (deny.toml)
	scripts/deny.sh

sqlx-prepare: services ## regenerate .sqlx/ (compile-time SQL data) after changing a statement or a migration
	scripts/sqlx-prepare.sh

sqlx-check: services ## fail when .sqlx/ is out of date (cargo sqlx prepare --check)
	scripts/sqlx-prepare.sh --check

check-migrations: services ## sqlx-cli and the embedded migrator give the same schema (pg_dump compared)
	scripts/check-migrations.sh

tools: ## install the pinned sqlx-cli and cargo-deny when missing
	scripts/install-tools.sh

fmt:
	$(CARGO) fmt --all

openapi: ## rewrite openapi.json from the code (the document /openapi.json serves; tests/api/openapi.rs checks they are equal)
	$(CARGO) run --locked --quiet --bin ghl-workflow-debugger -- openapi --output openapi.json

bench: ## criterion benchmarks, then the load benchmark (results in BENCHMARKS.md)
	$(CARGO) bench --locked
	$(MAKE) bench-load
	$(MAKE) bench-notify

bench-notify: ## what the Postgres invalidation bus's pg_notify costs a write (pgbench, plain vs notify)
	scripts/bench_notify.sh

bench-load: ## every read path under load on loopback (oha), ratios to the machine's ceilings
	python3 scripts/bench_load.py
