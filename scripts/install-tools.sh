#!/usr/bin/env bash
# Installs the cargo tools `make migrate`, `make lint` and CI use, each pinned, and only when
# the pinned version is not already on PATH (a second run costs nothing):
# - sqlx-cli at the version of sqlx in Cargo.lock (its migrator and `prepare` data must match
#   the library's), Postgres only, rustls (no OpenSSL build);
# - cargo-deny (`make lint`: licences, advisories, duplicate crates; see deny.toml).
# Usage: scripts/install-tools.sh [sqlx|deny]...   (no argument: both)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
# The sqlx that Cargo.lock resolves (one [[package]] named "sqlx").
SQLX_VERSION="$(awk '/^name = "sqlx"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$SQLX_VERSION" ]; then
  echo "install-tools: no sqlx in Cargo.lock" >&2
  exit 1
fi

# `installed NAME VERSION`: whether `cargo NAME --version` reports exactly VERSION.
installed() {
  local out
  out="$(cargo "$1" --version 2>/dev/null || true)"
  [ "${out##* }" = "$2" ]
}

install_sqlx() {
  installed sqlx "$SQLX_VERSION" && return 0
  echo "install-tools: installing sqlx-cli $SQLX_VERSION" >&2
  cargo install --locked "sqlx-cli@$SQLX_VERSION" --no-default-features --features postgres,rustls
}

install_deny() {
  installed deny "$CARGO_DENY_VERSION" && return 0
  echo "install-tools: installing cargo-deny $CARGO_DENY_VERSION" >&2
  cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
}

[ "$#" -gt 0 ] || set -- sqlx deny
for tool in "$@"; do
  case "$tool" in
    sqlx) install_sqlx ;;
    deny) install_deny ;;
    *) echo "install-tools: unknown tool $tool (sqlx, deny)" >&2; exit 2 ;;
  esac
done
