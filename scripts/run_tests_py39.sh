#!/usr/bin/env bash
# The Python 3.9 leg of CI: install requirements.txt into a Python 3.9 venv and check that the zoo runs there.
#   (a) the quickstart's training path, short: digits data set, 1 epoch of train.py, eval.py, plot_run.py;
#   (b) the unit tests that need no PyTorch (an explicit file list: PyTorch/timm, onnxruntime, msrun and mpirun
#       are not installed in this venv, and the main leg, scripts/run_tests.sh, runs everything on 3.11).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: bash scripts/run_tests_py39.sh [pytest arguments]   (e.g. -k lr_schedule)
  Creates or reuses a Python 3.9 venv, installs requirements.txt and scripts/py39-requirements.txt into it, runs
  the quickstart's training path for one epoch and the unit tests that need no PyTorch.
environment:
  ZOO_VENV39    the venv to create or reuse (default: .venv39 in the repository)
  ZOO_PYTHON39  the Python 3.9 interpreter to create it with (default: pyenv's 3.9.x, else python3.9 on PATH)
EOF
}
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi

# The unit tests of this leg: none imports torch, timm, torchvision or onnxruntime, or starts msrun/mpirun. The
# two tests of test_predict.py that use torchvision (its class list; its transforms as the reference of the scores)
# are deselected by name (a collection error, not a skip, if a listed file ever imports PyTorch: the leg goes red).
TESTS=(
  tests/test_lr_schedule.py
  tests/test_train_units.py
  tests/test_models.py
  tests/test_quickstart_data.py
  tests/test_cli_help.py
  tests/test_hccl_tools.py
  tests/test_predict.py
  tests/test_plot_run.py
)
DESELECT=(tests/test_predict.py::test_imagenet_names_ship_in_torchvision_order
  tests/test_predict.py::test_scores_are_the_networks_probabilities_label_by_label)

is_python39() {  # is_python39 EXE: true when EXE runs and is CPython 3.9
  [[ -n "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' >/dev/null 2>&1
}

find_python39() {  # prints the path of a Python 3.9 interpreter, or fails
  if [[ -n "${ZOO_PYTHON39:-}" ]]; then
    is_python39 "$ZOO_PYTHON39" || die 1 "ZOO_PYTHON39='$ZOO_PYTHON39' is not a working Python 3.9"
    echo "$ZOO_PYTHON39"
    return
  fi
  local candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9 "$(command -v python3.9 || true)"; do
    if is_python39 "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  die 1 "no Python 3.9 found: install one (e.g. 'pyenv install 3.9') or set ZOO_PYTHON39 to its python"
}

start="$(date +%s)"
venv="${ZOO_VENV39:-$ZOO_ROOT/.venv39}"
if [[ ! -x "$venv/bin/python" ]]; then
  python39="$(find_python39)"
  echo "py39: creating $venv with $python39"
  "$python39" -m venv "$venv" || die 1 "could not create a virtual environment at $venv"
fi
is_python39 "$venv/bin/python" || die 1 "$venv is not a Python 3.9 venv; remove it or point ZOO_VENV39 elsewhere"
ZOO_VENV="$venv" ensure_venv "$ZOO_ROOT/requirements.txt" "$ZOO_ROOT/scripts/py39-requirements.txt"
echo "py39: $(python --version) in $venv, ready after $(($(date +%s) - start)) s"

export GLOG_v="${GLOG_v:-3}"
cd "$ZOO_ROOT"
work="$(mktemp -d "${TMPDIR:-/tmp}/zoo-py39.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# (a) the quickstart's path (scripts/quickstart.sh) for one epoch: data, train (evaluates at its last epoch), eval
arch="resnext50_32x4d"
python scripts/make_digits.py "$work/digits"
python "$arch/train.py" --config_path scripts/quickstart.yaml --data_dir "$work/digits" --output_dir "$work/run" \
  --epoch_size 1
ckpt="$(python -c 'import sys; from common.weights.checkpoint import list_checkpoints; print(list_checkpoints(*sys.argv[1:])[-1][2])' \
  "$work/run" "$arch")"
python "$arch/eval.py" --config_path scripts/quickstart.yaml --data_dir "$work/digits" --checkpoint_path "$ckpt" \
  --output_dir "$work/run" | tee "$work/eval.log"
grep -q '^acc=.*%(TOP1)$' "$work/eval.log" || die 1 "eval.py printed no acc=...%(TOP1) line"
python scripts/plot_run.py "$work/run" --out "$work/metrics.png"
echo "py39: quickstart path (1 epoch) done after $(($(date +%s) - start)) s"

# (b) the unit tests that need no PyTorch; pytest's summary stays the last line (CI reads it)
python -m pytest -p no:cacheprovider -q "${TESTS[@]}" "${DESELECT[@]/#/--deselect=}" "$@"
