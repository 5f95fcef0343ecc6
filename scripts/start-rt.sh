#!/usr/bin/env bash
# A throwaway Request Tracker 5 (Debian bookworm `request-tracker5`, RT 5.0.3) for the
# integration tests (tests/it/request_tracker*.rs, tests/it/compliance/request_tracker.rs):
# its own config and SQLite database under $RT_DIR, the built-in rt-server (Starlet, no Apache)
# on 127.0.0.1:$RT_PORT (loopback only), and a REST 2.0 auth token for root in $RT_DIR/token.
# Nothing in /etc is used: RT_SITE_CONFIG / RT_SITE_CONFIG_DIR point RT at $RT_DIR.
#
#   ./scripts/start-rt.sh install   # apt packages only (root; non-interactive, debconf preseeded)
#   ./scripts/start-rt.sh [start]   # install if missing, then start; reuses a running server
#   ./scripts/start-rt.sh stop      # SIGTERM to the server (the master stops its workers)
#   RESET=1 ./scripts/start-rt.sh   # wipe the database and start fresh
#
# Defaults: RT_PORT=18791 RT_DIR=/tmp/headcount-it/rt. The tests use the same variables and
# defaults, and run this script themselves when RT is not answering.
set -euo pipefail

RT_PORT=${RT_PORT:-18791}
RT_DIR=${RT_DIR:-/tmp/headcount-it/rt}
RT_ROOTPW=${RT_ROOTPW:-headcount-rt-root}
RT_LIB=/usr/share/request-tracker5
RT_SERVER=$RT_LIB/libexec/rt-server
BASE=http://127.0.0.1:$RT_PORT
PIDFILE=$RT_DIR/rt.pid
export RT_SITE_CONFIG=$RT_DIR/RT_SiteConfig.pm RT_SITE_CONFIG_DIR=$RT_DIR/site.d

# Answers REST 2.0 with our token (`/REST/2.0/` itself is a 404; `/REST/2.0/rt` is the health check).
up() {
  [[ -s $RT_DIR/token ]] || return 1
  curl -sf -o /dev/null --max-time 5 -H "Authorization: token $(cat "$RT_DIR/token")" "$BASE/REST/2.0/rt"
}

running() { [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() {
  if running; then
    local pid
    pid=$(cat "$PIDFILE")
    # SIGTERM, not SIGINT: rt-server's SIGINT handler (as root) chowns /var/lib/request-tracker5.
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

install() {
  if [[ -x $RT_SERVER ]]; then
    echo "request-tracker5 already installed"
    return 0
  fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: RT 5 is installed with apt as root: sudo $0 install" >&2
    exit 1
  fi
  # No database through dbconfig-common (we make our own), no cron jobs, no man-db rebuild,
  # no questions; policy-rc.d / no systemd keeps every service from starting.
  debconf-set-selections <<'EOF'
man-db man-db/auto-update boolean false
request-tracker5 request-tracker5/dbconfig-install boolean false
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/rtname string rt.example.com
request-tracker5 request-tracker5/organization string example.com
request-tracker5 request-tracker5/correspondaddress string rt@example.com
request-tracker5 request-tracker5/commentaddress string rt-comment@example.com
request-tracker5 request-tracker5/webbaseurl string http://127.0.0.1
EOF
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  # w3m only silences RT's "internal HTML converter" warning.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    request-tracker5 w3m >/dev/null
  [[ -x $RT_SERVER ]] || { echo "error: request-tracker5 installed no $RT_SERVER" >&2; exit 1; }
  echo "request-tracker5 installed"
}

init_db() {
  rm -rf "$RT_DIR"
  mkdir -p "$RT_DIR/site.d"
  cat >"$RT_SITE_CONFIG" <<EOF
Set(\$rtname, 'rt.example.com');
Set(\$Organization, 'example.com');
Set(\$CorrespondAddress, 'rt@example.com');
Set(\$CommentAddress, 'rt-comment@example.com');
Set(\$WebDomain, '127.0.0.1');
Set(\$WebPort, $RT_PORT);
Set(\$WebPath, '');
Set(\$WebBaseURL, '$BASE');
Set(@ReferrerWhitelist, qw(127.0.0.1:$RT_PORT localhost:$RT_PORT));
Set(\$DatabaseType, 'SQLite');
Set(\$DatabaseName, '$RT_DIR/rt.db');
Set(\$LogToSTDERR, 'warning');
Set(\$LogToSyslog, undef);
Set(\$LogToFile, undef);
Set(\$MailCommand, 'mbox');
Set(\$Timezone, 'UTC');
1;
EOF
  # The default bcrypt cost 12 makes every token-authenticated request cost ~0.3 s; the cost is
  # baked into the stored hashes, so it must be set before the database and the token exist.
  cat >"$RT_DIR/site.d/90-headcount-tests.pm" <<'EOF'
Set($BcryptCost, 4);
1;
EOF
  printf '%s\n' "$RT_ROOTPW" >"$RT_DIR/rootpw"
  chmod 600 "$RT_DIR/rootpw"
  /usr/sbin/rt-setup-database-5 --action init --root-password-file "$RT_DIR/rootpw" \
    >"$RT_DIR/init.log" 2>&1 || { cat "$RT_DIR/init.log" >&2; exit 1; }
  # REST 2.0 auth token for root (header `Authorization: token <value>`); RT has no CLI for it.
  perl -I"$RT_LIB/lib" -MRT -e '
    RT::LoadConfig(); RT::Init();
    my $u = RT::User->new(RT->SystemUser); $u->Load("root");
    my $t = RT::AuthToken->new(RT::CurrentUser->new($u));
    my ($id, $msg, $auth) = $t->Create(Owner => $u->Id, Description => "headcount-tests");
    die "$msg\n" unless $id; print "$auth\n";' >"$RT_DIR/token.new" 2>>"$RT_DIR/init.log" \
    || { cat "$RT_DIR/init.log" >&2; exit 1; }
  chmod 600 "$RT_DIR/token.new"
  mv "$RT_DIR/token.new" "$RT_DIR/token"
}

start() {
  install
  if [[ ${RESET:-0} != 1 ]] && running && up; then
    echo "RT already running at $BASE (token in $RT_DIR/token)"
    return 0
  fi
  stop
  if [[ ${RESET:-0} == 1 || ! -s $RT_DIR/rt.db || ! -s $RT_DIR/token ]]; then
    init_db
  fi
  # set -m: the background job keeps default signal handling (a non-interactive shell's `&`
  # job would start with SIGINT ignored).
  set -m
  nohup "$RT_SERVER" --host 127.0.0.1 --port "$RT_PORT" --max-workers 2 \
    >"$RT_DIR/server.log" 2>&1 &
  echo $! >"$PIDFILE"
  set +m
  for _ in $(seq 600); do up && break; sleep 0.1; done
  up || { echo "error: RT did not come up on $BASE; see $RT_DIR/server.log" >&2; exit 1; }
  echo "RT up at $BASE (pid $(cat "$PIDFILE")); REST at $BASE/REST/2.0, token in $RT_DIR/token"
}

case ${1:-start} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 [install|start|stop]" >&2; exit 1 ;;
esac
