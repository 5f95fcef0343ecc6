#!/usr/bin/env bash
# Runs the README's quickstart in a scratch copy and checks plan → apply → plan is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
bin="$PWD/target/debug/headcount"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r examples/quickstart "$work/"
rm -rf "$work/quickstart/out" "$work/quickstart/.headcount"
cd "$work/quickstart"
"$bin" validate
"$bin" apply --auto-approve </dev/null
ls out/export-000001/users-001.csv >/dev/null
set +e
"$bin" plan --detailed-exitcode >/dev/null
code=$?
set -e
if [ "$code" -ne 0 ]; then
  echo "quickstart: a second plan should find no changes (exit 0), got exit $code" >&2
  exit 1
fi
echo "quickstart: apply wrote out/export-000001, and a second plan has no changes"
