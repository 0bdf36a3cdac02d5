#!/usr/bin/env bash
# Quickstart on any machine, no accelerator and no download of data: install the requirements into .venv, build an
# ImageFolder of real JPEGs from scikit-learn's handwritten digits, train resnext50_32x4d on CPU with the same
# train.py used on Ascend (recipe: scripts/quickstart.yaml), evaluate it and print the TOP1/TOP5 lines.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  echo "usage: bash scripts/quickstart.sh [OUT_DIR]   (default OUT_DIR: ./outputs/quickstart)"
  echo "  OUT_DIR/digits holds the data set, OUT_DIR/run the checkpoints, logs and metrics.jsonl."
}
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  usage
  exit 0
fi
if [[ $# -gt 1 ]]; then
  usage >&2
  exit 2
fi
out="$(mkdir -p "${1:-outputs/quickstart}" && cd "${1:-outputs/quickstart}" && pwd)" \
  || die 2 "cannot create the output folder '${1:-outputs/quickstart}'"
arch="resnext50_32x4d"

ensure_venv "$ZOO_ROOT/requirements.txt" "$ZOO_ROOT/scripts/quickstart-requirements.txt"
export GLOG_v="${GLOG_v:-3}"
cd "$ZOO_ROOT"
start="$(date +%s)"
python scripts/make_digits.py "$out/digits"
# a fresh run folder each time: train.py refuses to mix runs in one folder
rm -rf "$out/run"
python "$arch/train.py" --config_path scripts/quickstart.yaml --data_dir "$out/digits" --output_dir "$out/run"
ckpt="$(python -c 'import sys; from common.weights.checkpoint import list_checkpoints; print(list_checkpoints(*sys.argv[1:])[-1][2])' \
  "$out/run" "$arch")"
python "$arch/eval.py" --config_path scripts/quickstart.yaml --data_dir "$out/digits" --checkpoint_path "$ckpt" \
  --output_dir "$out/run"
echo "quickstart: trained and evaluated $arch in $(($(date +%s) - start)) s; checkpoint $ckpt"
