#!/usr/bin/env bash
# PostgreSQL from Debian's packages on 127.0.0.1:5432, for when DATABASE_URL is not given.
# Usage: deploy/local/postgres.sh {start|stop|status}. Idempotent: installs the package when
# absent, creates a cluster owned by the package's tooling, a role and database "loyalty".
set -euo pipefail
PORT="${PGPORT:-5432}"
DB_USER="${LOYALTY_DB_USER:-loyalty}"
DB_PASS="${LOYALTY_DB_PASSWORD:-loyalty}"
DB_NAME="${LOYALTY_DB_NAME:-loyalty}"
# Checkpoints from checkpoint_timeout, not from WAL volume: with Debian's 1 GB the engine's
# write load checkpointed every minute, and a consumer's commit stalled during one (README,
# Production). Applied to the cluster this script uses; empty leaves the cluster's own.
MAX_WAL_SIZE="${LOYALTY_PG_MAX_WAL_SIZE-4GB}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

install() {
  if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then return; fi
  echo "postgres.sh: installing PostgreSQL from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

cluster() { pg_lsclusters --no-header 2>/dev/null | awk -v p="$PORT" '$3 == p {print $1, $2; exit}'; }

start() {
  install
  local version name
  read -r version name <<<"$(cluster)" || true
  if [ -z "${version:-}" ]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -1)"; name="loyalty"
    as_root pg_createcluster -p "$PORT" "$version" "$name" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  fi
  if ! port_open; then
    as_root pg_ctlcluster "$version" "$name" start
  fi
  for _ in $(seq 1 60); do port_open && break; sleep 0.5; done
  port_open || { echo "postgres.sh: PostgreSQL did not open port $PORT" >&2; exit 1; }
  # Role and database, created once.
  as_root runuser -u postgres -- psql -p "$PORT" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'" | grep -q 1 \
    || as_root runuser -u postgres -- psql -p "$PORT" -qc "CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASS'"
  as_root runuser -u postgres -- psql -p "$PORT" -qtAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1 \
    || as_root runuser -u postgres -- psql -p "$PORT" -qc "CREATE DATABASE $DB_NAME OWNER $DB_USER"
  if [ -n "$MAX_WAL_SIZE" ] && [ "$(as_root runuser -u postgres -- psql -p "$PORT" -qtAc "SHOW max_wal_size")" != "$MAX_WAL_SIZE" ]; then
    as_root runuser -u postgres -- psql -p "$PORT" -qc "ALTER SYSTEM SET max_wal_size = '$MAX_WAL_SIZE'" -c "SELECT pg_reload_conf()" >/dev/null
    echo "postgres.sh: max_wal_size set to $MAX_WAL_SIZE (LOYALTY_PG_MAX_WAL_SIZE)"
  fi
  echo "postgres.sh: up: postgresql://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME?sslmode=disable"
}

stop() {
  local version name
  read -r version name <<<"$(cluster)" || true
  [ -n "${version:-}" ] && as_root pg_ctlcluster "$version" "$name" stop || echo "postgres.sh: not running"
}

status() { if port_open; then echo "postgres: up on 127.0.0.1:$PORT"; else echo "postgres: down"; return 1; fi; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
