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
# URL: postgres://headcount@127.0.0.1:18543/postgres (each test uses its own tables). TLS is on
# (sslmode=prefer/require work); the CA that signed the server certificate (for 127.0.0.1) is
# $HEADCOUNT_PG_DIR/tls/ca.pem.
set -euo pipefail

PG_PORT=${HEADCOUNT_PG_PORT:-18543}
PG_DIR=${HEADCOUNT_PG_DIR:-/tmp/headcount-it/pg}
DATA="$PG_DIR/data"
TLS="$PG_DIR/tls"

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

make_tls() {
  [[ -f $TLS/server.key ]] && return
  mkdir -p "$TLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=headcount test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TLS/ext.cnf"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" >/dev/null 2>&1
  chmod 600 "$TLS/server.key"
  if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$TLS"; fi
  chmod 644 "$TLS/ca.pem"
}

start() {
  install
  if running; then
    echo "postgres already running on 127.0.0.1:$PG_PORT"
    return
  fi
  mkdir -p "$PG_DIR"
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$PG_DIR"; fi
  make_tls
  if [[ ! -f $DATA/PG_VERSION ]]; then
    rm -rf "$DATA"
    as_owner "$(pg_bin)/initdb" -D "$DATA" -A trust -U headcount >/dev/null
  fi
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -l "$PG_DIR/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200 \
       -c ssl=on -c ssl_cert_file=$TLS/server.pem -c ssl_key_file=$TLS/server.key" \
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
