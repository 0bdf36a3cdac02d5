#!/usr/bin/env bash
# Shared shell helpers, sourced by every launcher and tool script (never run directly).
set -euo pipefail

ZOO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ZOO_ROOT

die() {  # die CODE MESSAGE...: one line on stderr, exit CODE
  local code="$1"
  shift
  echo "error: $*" >&2
  exit "$code"
}

# ensure_venv REQUIREMENTS...: create $ZOO_ROOT/.venv (or use $ZOO_VENV) and install the given files into it.
ensure_venv() {
  local venv="${ZOO_VENV:-$ZOO_ROOT/.venv}"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || die 1 "could not create a virtual environment at $venv (install python3-venv)"
  fi
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
  local stamp="$venv/.installed" want
  want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
    python -m pip install -q --disable-pip-version-check "${@/#/--requirement=}" \
      || die 1 "pip could not install $*; check the network or the package index"
    echo "$want" >"$stamp"
  fi
}
