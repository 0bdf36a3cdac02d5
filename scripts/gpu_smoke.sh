#!/usr/bin/env bash
# GPU smoke test and throughput in one command, for an x86-64 Linux machine with an NVIDIA GPU and its driver:
# installs mindspore 2.8.0 and the CUDA 11 user space from PyPI (scripts/gpu-requirements.txt) into its own venv,
# writes synthetic 224 px JPEGs, trains resnext50_32x4d and resnest50 for ~50 steps each (AMP O2, dataset sink
# mode on), evaluates, exports MINDIR and ONNX, times the training step (scripts/benchmark.py) and prints img/s;
# --compare torch also times torchvision's resnext50_32x4d / timm's resnest50d training step on the same GPU at the
# same batch, from a second venv (PyTorch's CUDA 12 libraries stay apart from MindSpore's CUDA 11 ones).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: bash scripts/gpu_smoke.sh [--compare torch] [--steps N] [--batch_size N] [--device_id N] [--out DIR] [--dry-run]
  --compare torch   also time PyTorch (torchvision resnext50_32x4d, timm resnest50d) on the same GPU and batch
  --steps N         training steps per model, over 2 epochs (default 50; at least 2)
  --batch_size N    images per step, for training, evaluation and both benchmarks (default 64)
  --device_id N     GPU index (default 0)
  --out DIR         data, runs, exported files and JSON results (default ./outputs/gpu_smoke)
  --dry-run         check the arguments and print every command without running any (works without a GPU)
environment:
  ZOO_GPU_VENV        MindSpore venv to create or reuse (default .venv-gpu in the repository)
  ZOO_GPU_TORCH_VENV  PyTorch venv for --compare torch (default: the MindSpore venv's path + "-torch")
EOF
}

ARCHS=(resnext50_32x4d resnest50)
# CUDA libraries of scripts/gpu-requirements.txt (site-packages/nvidia/<name>/lib) for MindSpore's GPU plugin
NVIDIA_LIBS=(cuda_runtime cuda_nvrtc cublas cudnn curand cusolver cufft cusparse nccl)
NUM_CLASSES=10
BENCH_STEPS=20
BENCH_WARMUP=5

compare="" steps=50 batch=64 device_id=0 out="outputs/gpu_smoke" dry_run=0
bad_usage() {
  echo "error: $*" >&2
  usage >&2
  exit 2
}
need_count() {  # need_count OPTION VALUE MIN
  if [[ ! "$2" =~ ^[0-9]{1,6}$ ]] || ((10#$2 < $3)); then
    bad_usage "$1 takes a whole number >= $3, got '$2'"
  fi
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --dry-run)
      dry_run=1
      shift
      continue
      ;;
    --compare | --steps | --batch_size | --device_id | --out)
      [[ $# -ge 2 ]] || bad_usage "$1 needs a value"
      ;;
    *) bad_usage "unknown argument '$1'" ;;
  esac
  case "$1" in
    --compare)
      [[ "$2" == "torch" ]] || bad_usage "--compare takes 'torch', got '$2'"
      compare="$2"
      ;;
    --steps) need_count "$1" "$2" 2 && steps=$((10#$2)) ;;
    --batch_size) need_count "$1" "$2" 1 && batch=$((10#$2)) ;;
    --device_id) need_count "$1" "$2" 0 && device_id=$((10#$2)) ;;
    --out)
      [[ -n "$2" ]] || bad_usage "--out needs a folder"
      out="$2"
      ;;
  esac
  shift 2
done
[[ "$out" == /* ]] || out="$PWD/$out"
per_epoch=$(((steps + 1) / 2))  # 2 epochs: the second one's img/s holds no graph compile

if ((!dry_run)); then
  [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] \
    || die 1 "x86-64 Linux only: PyPI has no cuDNN 8 wheel for $(uname -m) (see scripts/gpu-requirements.txt)"
  if ! nvidia-smi -L >/dev/null 2>&1; then
    die 1 "no NVIDIA GPU here (nvidia-smi missing or failing); --dry-run prints the commands without one"
  fi
  nvidia-smi -L
fi

run() {  # print the command, then run it unless --dry-run
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if ((!dry_run)); then
    "$@"
  fi
}

venv="${ZOO_GPU_VENV:-$ZOO_ROOT/.venv-gpu}"
torch_venv="${ZOO_GPU_TORCH_VENV:-$venv-torch}"
start="$(date +%s)"
echo "# 1. MindSpore venv $venv: requirements.txt + scripts/gpu-requirements.txt (CUDA 11.8, cuDNN 8.9, from PyPI)"
if ((dry_run)); then
  run python3 -m venv "$venv"
  run "$venv/bin/python" -m pip install -r "$ZOO_ROOT/requirements.txt" -r "$ZOO_ROOT/scripts/gpu-requirements.txt"
else
  ZOO_VENV="$venv" ensure_venv "$ZOO_ROOT/requirements.txt" "$ZOO_ROOT/scripts/gpu-requirements.txt"
fi
# MindSpore loads the newest GPU plugin whose libraries resolve (libmindspore_gpu.so.11.6 with these) unless
# CUDA_HOME is set, when it asks that nvcc for the version instead: unset, so a CUDA 12 toolkit cannot steer it.
venv_python="python3"  # what ensure_venv creates the venv with
if [[ -x "$venv/bin/python" ]]; then
  venv_python="$venv/bin/python"
fi
pyver="$("$venv_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
site="$venv/lib/python$pyver/site-packages"
ld_path="$site/mindspore/lib/plugin/gpu11.6"
for name in "${NVIDIA_LIBS[@]}"; do
  ld_path+=":$site/nvidia/$name/lib"
done
ms_env=(env -u CUDA_HOME "LD_LIBRARY_PATH=$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "DEVICE_ID=$device_id"
  "GLOG_v=${GLOG_v:-3}")
printf '# MindSpore commands below run as "ms-env PYTHON ...", where ms-env is:'
printf ' %q' "${ms_env[@]}"
printf '\n'
run_ms() {  # run_ms ARGS...: the venv's python with MindSpore's GPU environment (printed as ms-env)
  printf '+ ms-env'
  printf ' %q' "$venv/bin/python" "$@"
  printf '\n'
  if ((!dry_run)); then
    "${ms_env[@]}" "$venv/bin/python" "$@"
  fi
}

echo "# 2. data: $((per_epoch * batch)) train / $((2 * batch)) val JPEGs of 224 px, $NUM_CLASSES classes"
run rm -rf "$out/data"
run mkdir -p "$out"
run "$venv/bin/python" "$ZOO_ROOT/scripts/gpu_smoke.py" jpegs "$out/data" --train $((per_epoch * batch)) \
  --val $((2 * batch)) --size 224 --classes "$NUM_CLASSES"

for arch in "${ARCHS[@]}"; do
  run_dir="$out/$arch"
  ckpt="$run_dir/$arch-2_$per_epoch.ckpt"
  echo "# 3. $arch: train $((2 * per_epoch)) steps (2 epochs, AMP O2, sink on), evaluate, export, time the step"
  # The recipe as it is: a fixed loss scale skips overflow steps (nonfinite_patience in a row end the run), and a
  # warm-up longer than the 2 epochs here is shortened by train.py with a note.
  run rm -rf "$run_dir"
  run_ms "$ZOO_ROOT/$arch/train.py" --data_dir "$out/data" --output_dir "$run_dir" \
    --device_target GPU --num_classes "$NUM_CLASSES" --image_size 224 --batch_size "$batch" --epoch_size 2 \
    --amp_level O2 --dataset_sink_mode true --log_interval 10 \
    --keep_checkpoint_max 1
  run_ms "$ZOO_ROOT/$arch/eval.py" --data_dir "$out/data" --checkpoint_path "$ckpt" \
    --output_dir "$run_dir" --device_target GPU --num_classes "$NUM_CLASSES" --image_size 224 --batch_size "$batch"
  for fmt in MINDIR ONNX; do
    run_ms "$ZOO_ROOT/$arch/export.py" --checkpoint_path "$ckpt" --file_format "$fmt" \
      --file_name "$run_dir/$arch" --device_target GPU --num_classes "$NUM_CLASSES" --batch_size 1
  done
  run_ms "$ZOO_ROOT/scripts/benchmark.py" --arch "$arch" --mode train --device_target GPU \
    --amp_level O2 --batch_size "$batch" --image_size 224 --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" \
    --json "$out/bench-$arch.json"
done

if [[ "$compare" == "torch" ]]; then
  echo "# 4. PyTorch venv $torch_venv: the torch / torchvision / timm pins of requirements-test.txt"
  if ((dry_run)); then
    run python3 -m venv "$torch_venv"
    run "$torch_venv/bin/python" -m pip install -r "$out/torch-requirements.txt"
  else
    grep -E '^(torch|torchvision|timm)==' "$ZOO_ROOT/requirements-test.txt" >"$out/torch-requirements.txt"
    ZOO_VENV="$torch_venv" ensure_venv "$out/torch-requirements.txt"
  fi
  for arch in "${ARCHS[@]}"; do
    run "$torch_venv/bin/python" "$ZOO_ROOT/scripts/gpu_smoke.py" torch-train --arch "$arch" --batch_size "$batch" \
      --image_size 224 --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" --device "cuda:$device_id" \
      --json "$out/torch-$arch.json"
  done
fi

echo "# 5. summary (train.py img/s: 2nd epoch, data pipeline included; step img/s: benchmark.py, fixed batch)"
run "$venv/bin/python" "$ZOO_ROOT/scripts/gpu_smoke.py" summary "$out" "${ARCHS[@]}"
if ((dry_run)); then
  echo "dry run: nothing was run"
else
  echo "gpu_smoke: done in $(($(date +%s) - start)) s; results in $out"
fi
