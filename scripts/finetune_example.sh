#!/usr/bin/env bash
# Fine-tuning example on any machine, no download: split scikit-learn's handwritten digits into digits 0-4 (to
# pretrain on) and digits 5-9 (held out, the "new task"), pretrain resnext50_32x4d on 0-4 (or take --checkpoint),
# fine-tune it on 5-9 with --freeze_layers, and print the top-1 accuracy on 5-9's val split before (the pretrained
# backbone with the new, untrained 5-class head the fine-tuning starts from) and after fine-tuning. The test suite
# runs it at a short length (tests/test_finetune_example.py).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: bash scripts/finetune_example.sh [options] [OUT_DIR]   (default OUT_DIR: ./outputs/finetune_example)
  --checkpoint CKPT      start from this resnext50_32x4d checkpoint instead of pretraining on digits 0-4
                         (a quickstart checkpoint has seen digits 5-9: the held-out split is then not held out)
  --pretrain_epochs N    epochs of pretraining on digits 0-4 (default 6)
  --finetune_epochs N    epochs of fine-tuning on digits 5-9 (default 4)
  --freeze_layers N      stem + first N stages frozen while fine-tuning, -1..4 (default 3; 4 = linear probe)
  --per_class N          use at most N training images per digit (default 0 = all, about 144)
  --mode graph|pynative  MindSpore mode of the runs (default graph; pynative skips compiling for very short runs)
OUT_DIR/digits holds the data, OUT_DIR/pretrain and OUT_DIR/finetune the runs; the last line gives the accuracies.
EOF
}

ckpt="" pretrain_epochs=6 finetune_epochs=4 freeze=3 per_class=0 mode="graph" out_arg=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --checkpoint | --pretrain_epochs | --finetune_epochs | --freeze_layers | --per_class | --mode)
      [[ $# -ge 2 ]] || die 2 "option $1 needs a value (see --help)"
      case "$1" in
        --checkpoint) ckpt="$2" ;;
        --pretrain_epochs) pretrain_epochs="$2" ;;
        --finetune_epochs) finetune_epochs="$2" ;;
        --freeze_layers) freeze="$2" ;;
        --per_class) per_class="$2" ;;
        --mode) mode="$2" ;;
      esac
      shift 2 ;;
    -*) die 2 "unknown option '$1'; run with --help to list the options" ;;
    *)
      [[ -z "$out_arg" ]] || die 2 "one OUT_DIR only (got '$out_arg' and '$1'); run with --help"
      out_arg="$1"
      shift ;;
  esac
done
check_int() {  # check_int OPTION VALUE MIN MAX: an integer in MIN..MAX, else one error line and exit 2
  if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
    die 2 "$1 must be an integer in $3..$4, not '$2'"
  fi
}
check_int --pretrain_epochs "$pretrain_epochs" 1 1000
check_int --finetune_epochs "$finetune_epochs" 1 1000
check_int --freeze_layers "$freeze" -1 4
check_int --per_class "$per_class" 0 100000
[[ "$mode" == "graph" || "$mode" == "pynative" ]] || die 2 "--mode must be graph or pynative, not '$mode'"
if [[ -n "$ckpt" && ! -f "$ckpt" ]]; then
  die 2 "--checkpoint '$ckpt' does not exist; pass a resnext50_32x4d .ckpt (e.g. from scripts/quickstart.sh)"
fi
[[ -z "$ckpt" ]] || ckpt="$(cd "$(dirname "$ckpt")" && pwd)/$(basename "$ckpt")"
out_arg="${out_arg:-outputs/finetune_example}"
out="$(mkdir -p "$out_arg" && cd "$out_arg" && pwd)" || die 2 "cannot create the output folder '$out_arg'"
arch="resnext50_32x4d"
if [[ -z "${VIRTUAL_ENV:-}" ]]; then
  ensure_venv "$ZOO_ROOT/requirements.txt" "$ZOO_ROOT/scripts/quickstart-requirements.txt"
fi
export GLOG_v="${GLOG_v:-3}"
cd "$ZOO_ROOT"
start="$(date +%s)"

# digits 0-4 and 5-9 as two ImageFolders of links to the JPEGs (at most --per_class training images per digit)
python scripts/make_digits.py "$out/digits" >/dev/null
python - "$out" "$per_class" <<'EOF'
import os
import shutil
import sys

out, per_class = sys.argv[1], int(sys.argv[2])
for task, digits in (("task_0-4", "01234"), ("task_5-9", "56789")):
    shutil.rmtree(os.path.join(out, task), ignore_errors=True)
    for split in ("train", "val"):
        for digit in digits:
            src = os.path.join(out, "digits", split, digit)
            dst = os.path.join(out, task, split, digit)
            os.makedirs(dst)
            files = sorted(os.listdir(src))
            if split == "train" and per_class:
                files = files[:per_class]
            for name in files:
                os.symlink(os.path.join(src, name), os.path.join(dst, name))
EOF

common=(--config_path scripts/quickstart.yaml --mode "$mode" --num_classes 5 --run_eval false --log_interval 10)
if [[ -z "$ckpt" ]]; then
  rm -rf "$out/pretrain"  # train.py refuses to mix runs in one folder
  python "$arch/train.py" "${common[@]}" --data_dir "$out/task_0-4" --output_dir "$out/pretrain" \
    --epoch_size "$pretrain_epochs" --warmup_epochs "$((pretrain_epochs > 1 ? 1 : 0))"
  ckpt="$(python -c 'import sys; from common.weights.checkpoint import list_checkpoints; print(list_checkpoints(*sys.argv[1:])[-1][2])' \
    "$out/pretrain" "$arch")"
fi

top1() {  # top1 CKPT LOG: evaluate CKPT on digits 5-9's val split, keep the log, print the TOP1 figure
  python "$arch/eval.py" --config_path scripts/quickstart.yaml --mode "$mode" --data_dir "$out/task_5-9" \
    --checkpoint_path "$1" --output_dir "$out" >"$2"
  sed -n 's/^acc=\(.*\)%(TOP1)$/\1/p' "$2"
}

# The network fine-tuning starts from: the checkpoint's backbone and a new 5-class head for digits 5-9 (drawn with
# a fixed seed; the checkpoint's own head, if it has 5 outputs, belongs to other classes). "before" evaluates it.
python - "$arch" "$ckpt" "$out/start.ckpt" <<'EOF'
import sys

import mindspore as ms

from common.models import create_model
from common.training.resume import load_pretrained

arch, ckpt, start = sys.argv[1:]
net = create_model(arch, num_classes=5)
print(load_pretrained(net, ckpt, 5))
ms.set_seed(1)
net.reset_classifier(5)
ms.save_checkpoint(net, start)
print(f"start of fine-tuning: {start} (new 5-class head)")
EOF
before="$(top1 "$out/start.ckpt" "$out/eval_before.log")"

rm -rf "$out/finetune"
python "$arch/train.py" "${common[@]}" --data_dir "$out/task_5-9" --output_dir "$out/finetune" \
  --pretrained "$out/start.ckpt" --freeze_layers "$freeze" --epoch_size "$finetune_epochs" --warmup_epochs 0 --seed 1
tuned="$(python -c 'import sys; from common.weights.checkpoint import list_checkpoints; print(list_checkpoints(*sys.argv[1:])[-1][2])' \
  "$out/finetune" "$arch")"
after="$(top1 "$tuned" "$out/eval_after.log")"
echo "finetune_example: digits 5-9 (held out from pretraining), freeze_layers=$freeze, $finetune_epochs epoch(s):" \
  "top-1 before ${before}% -> after ${after}% ($(($(date +%s) - start)) s)"
