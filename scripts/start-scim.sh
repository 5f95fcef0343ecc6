#!/usr/bin/env bash
# Installs scim2-server (PyPI, python-scim), the real SCIM 2.0 target the integration tests
# (tests/it/scim_real.rs, scim_apply.rs, scim_faults.rs) run against. Idempotent: an existing, working venv
# is left alone. It only installs; the tests start (and stop) the server themselves.
#
#   ./scripts/start-scim.sh                         # venv in $HOME/.cache/headcount-it/venv
#   HEADCOUNT_SCIM_VENV=/some/dir ./scripts/start-scim.sh
#
# The tests look for the venv in the same place (same variable, same default). Without it they
# print `SKIPPED: <test>: ...` on stderr, except under CI=true, where a missing venv fails them.
set -euo pipefail

VENV=${HEADCOUNT_SCIM_VENV:-$HOME/.cache/headcount-it/venv}
PKGS=('scim2-server==0.8.3' 'scim2-models==0.12.3')

installed() {
  [[ -x $VENV/bin/scim2-server ]] || return 1
  "$VENV/bin/python" -c 'import scim2_server.testserver.cli' >/dev/null 2>&1 || return 1
  local frozen pkg
  frozen=$("$VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null) || return 1
  for pkg in "${PKGS[@]}"; do
    grep -qxF "$pkg" <<<"$frozen" || return 1
  done
}

if installed; then
  echo "scim2-server already installed in $VENV"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is needed to install scim2-server (apt-get install python3 python3-venv)" >&2
  exit 1
fi

# Debian's python3 ships venv without ensurepip until python3-venv is installed.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    echo "installing python3-venv (python3 has no ensurepip)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "error: python3 has no ensurepip; install python3-venv (as root: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

echo "installing ${PKGS[*]} into $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}"

if ! installed; then
  echo "error: scim2-server did not install cleanly into $VENV" >&2
  exit 1
fi
echo "scim2-server installed in $VENV"
