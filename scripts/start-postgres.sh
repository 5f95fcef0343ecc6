#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the `postgres` state backend's integration tests
# (tests/it/state_postgres*.rs). It never touches the system's own clusters: our cluster is
# created with initdb under $HEADCOUNT_PG_DIR and runs as a plain process on loopback only,
# trust authentication for the superuser `headcount`, fsync off (tests only).
#
#   ./scripts/start-postgres.sh install   # apt-get postgresql (non-interactive), if missing
#   ./scripts/start-postgres.sh start     # install if needed, then start; reuses a running cluster
#   ./scripts/start-postgres.sh stop
#
# URL: postgres://headcount@127.0.0.1:18543/postgres (each test creates its own database).
set -euo pipefail

PG_PORT=${HEADCOUNT_PG_PORT:-18543}
PG_DIR=${HEADCOUNT_PG_DIR:-/tmp/headcount-it/pg}
DATA="$PG_DIR/data"

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb ]] && { echo "$d"; return; }
  done
  dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)"
}

installed() { [[ -x "$(pg_bin)/initdb" ]]; }

install() {
  if installed; then
    echo "postgresql already installed"
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: installing postgresql needs root (apt-get install postgresql)" >&2
    exit 1
  fi
  # policy-rc.d / no systemd keeps the package's own cluster from starting; we never use it.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
  echo "postgresql installed"
}

# initdb and postgres refuse to run as root: as root, run them as the package's `postgres` user.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1 &&
    "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null
}

start() {
  install
  if running; then
    echo "postgres already running on 127.0.0.1:$PG_PORT"
    return
  fi
  mkdir -p "$PG_DIR"
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$PG_DIR"; fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    rm -rf "$DATA"
    as_owner "$(pg_bin)/initdb" -D "$DATA" -A trust -U headcount >/dev/null
  fi
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -l "$PG_DIR/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200" \
    start >/dev/null
  echo "postgres started on 127.0.0.1:$PG_PORT (postgres://headcount@127.0.0.1:$PG_PORT/postgres)"
}

stop() {
  if [[ -f $DATA/postmaster.pid ]]; then
    as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true
  fi
  echo "postgres stopped"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
