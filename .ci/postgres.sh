#!/usr/bin/env bash
# Sourced by .ci/run: a throw-away PostgreSQL 15 cluster on a loopback port, run as user
# `postgres`, for the prekey-server PostgreSQL tests (`#[ignore = "needs PostgreSQL …"]`, run
# with --ignored). Installs PostgreSQL (Debian) if missing. Exports OTR4_PG_URL (trust
# authentication, loopback only).
# Usage: source .ci/postgres.sh   (stop: "$OTR4_PG_CTL" -D "$OTR4_PG_DIR/data" stop)
# Sourced: uses the caller's shell options (.ci/run has `set -euo pipefail`).
_pg_bin=/usr/lib/postgresql/15/bin
if [ ! -x "$_pg_bin/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 >/dev/null
fi
OTR4_PG_DIR="$(mktemp -d /tmp/otr4-pg.XXXXXX)"
OTR4_PG_PORT="${OTR4_PG_PORT:-55432}"
chown postgres:postgres "$OTR4_PG_DIR"
_as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
_as_pg "$_pg_bin/initdb" -D "$OTR4_PG_DIR/data" -U postgres --auth=trust >/dev/null
_as_pg "$_pg_bin/pg_ctl" -D "$OTR4_PG_DIR/data" -l "$OTR4_PG_DIR/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$OTR4_PG_PORT -c unix_socket_directories=$OTR4_PG_DIR -c max_connections=300 -c fsync=on" start >/dev/null
export OTR4_PG_DIR OTR4_PG_CTL="$_pg_bin/pg_ctl"
export OTR4_PG_URL="postgres://postgres@127.0.0.1:$OTR4_PG_PORT/postgres"
echo "PostgreSQL test cluster on 127.0.0.1:$OTR4_PG_PORT ($OTR4_PG_DIR)"
