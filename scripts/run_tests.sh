#!/usr/bin/env bash
# Install everything the tests need into .venv (first run only) and run the whole suite on CPU.
#   bash scripts/run_tests.sh [pytest args...]
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  echo "usage: bash scripts/run_tests.sh [pytest arguments]  (e.g. -k parity, or tests/test_models.py to run one file)"
}
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi

ensure_venv "$ZOO_ROOT/requirements.txt" "$ZOO_ROOT/requirements-test.txt"
# Packages whose own pins fight ours go in without their dependencies (see requirements-test-nodeps.txt).
nodeps="$ZOO_ROOT/requirements-test-nodeps.txt"
nodeps_stamp="${ZOO_VENV:-$ZOO_ROOT/.venv}/.installed-nodeps"
if [[ ! -f "$nodeps_stamp" ]] || [[ "$(sha256sum <"$nodeps")" != "$(cat "$nodeps_stamp")" ]]; then
  python -m pip install -q --disable-pip-version-check --no-deps --requirement="$nodeps" \
    || die 1 "pip could not install $nodeps; check the network or the package index"
  sha256sum <"$nodeps" >"$nodeps_stamp"
fi
cd "$ZOO_ROOT"
# msrun and the launchers start the `python` on PATH: the venv's (activated by ensure_venv).
export GLOG_v="${GLOG_v:-3}"
# Lint first (seconds): style errors fail the run before the slow tests start.
ruff check --quiet . || die 1 "ruff found style errors (listed above); fix them or run: ruff check --fix ."
# The whole suite unless the arguments name test files or folders themselves.
targets=(tests)
for arg in "$@"; do
  if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then
    targets=()
    break
  fi
done
# Three pytest workers (pytest-xdist; ZOO_TEST_WORKERS to change, 0 for none, or pass -n yourself): most tests spend
# their time starting MindSpore in a subprocess or compiling a graph on one core, so several at a time fill the
# cores (2 cores: 18.1-23.2 min with 3 in CI, as the VM's speed swings).
workers=(-n "${ZOO_TEST_WORKERS:-3}" --dist worksteal)
for arg in "$@"; do
  if [[ "$arg" == -n* || "$arg" == --numprocesses* ]]; then
    workers=()
  fi
done
python -m pytest -p no:cacheprovider -q "${workers[@]}" "${targets[@]}" "$@"
