#!/usr/bin/env bash
# The launcher library. Every model folder's scripts/run_*.sh sources it and is one line: zoo_launch KIND "$@".
#
#   scripts/launch_lib.sh    this file: argument parsing, path checks, run folder, process supervision, zoo_launch
#   scripts/launch_kinds.sh  one section per launcher kind: its usage text, then its function
#   scripts/mpi_rank.sh      the program mpirun starts for each rank of the GPU launcher (not sourced)
#
# Every launcher: reads its arguments as one of its forms and says which (`form: ...`, first line of its output;
# where a ModelZoo form differs from the standard one, a first argument of digits selects it), checks them before
# starting anything (wrong arguments: usage, exit 2; a bad path or rank table: one `error:` line, exit 2), takes
# relative paths against the caller's current folder and hands every path on absolute, writes everything of a run
# under one run folder (--output_dir; default ./outputs/<model>_<launcher>_<time>), runs in the foreground and exits
# with the job's status. Multi-rank launchers run each rank in its own folder RUN/rank_<id>/ (its working folder and
# log), wait for all, and on the first failure stop the others (SIGTERM, SIGKILL after ZOO_STOP_GRACE seconds,
# default 5) and exit non-zero naming the rank and showing the tail of its log.
# --background runs the same supervisor detached and prints its pid file; it writes RUN/exit_code when done.
#
# Environment: HCCL_CONNECT_TIMEOUT, HCCL_EXEC_TIMEOUT (exported with the defaults below unless set), ZOO_PYTHON
# (interpreter; default `python` on PATH, else python3), ZOO_ENTRY_PY (a program to run instead of the model
# folder's train.py/eval.py/export.py: the tests' stand-in), SERVER_ID (multi-server rank table).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# HCCL timeouts (seconds), for Ascend jobs; the caller's values win. CANN's defaults (connect 120 s, exec about
# 1800 s) are too short for these jobs:
# - connect: every rank reaches HCCL's first link-up (init) only after its graph compiles; for ResNeXt-152 on a cold
#   compile cache that takes many minutes and differs between the ranks of a busy server. 1200 s covers it (CANN
#   accepts 120 to 7200).
# - exec: while one rank works alone (rank 0's evaluation with --run_eval, a checkpoint written to slow storage) the
#   others wait in their next collective for up to this long. 7200 s covers a full ImageNet evaluation of the
#   largest model here with margin, and a hung job still fails within hours, not after CANN's maximum of 17340 s.
ZOO_HCCL_CONNECT_DEFAULT=1200
ZOO_HCCL_EXEC_DEFAULT=7200

ZOO_STOP_GRACE="${ZOO_STOP_GRACE:-5}"
ZOO_STOP_SIGNAL=TERM  # msrun wants INT: its handler then kills the workers it started in their own sessions
ZOO_INNER_RANK_LOG=""  # set when the started process is mpirun/msrun: the log of rank {rank} inside it
ZOO_RANK_PIDS=()
ZOO_RANK_LABELS=()
ZOO_RANK_LOGS=()
# train.py/eval.py options (and their aliases) whose values are paths: made absolute among the -- options
ZOO_PATH_OPTIONS="data_dir|output_dir|ckpt_path|pretrained|resume|checkpoint_path|checkpoint_file_path|config_path"

# --- usage --------------------------------------------------------------------------------------------------------
_zoo_usage() {  # _zoo_usage KIND: the kind's usage text (next to its function in launch_kinds.sh), then the rest
  local s="bash scripts/$ZOO_SCRIPT_NAME" o="[--background] [--output_dir DIR]"
  "_zoo_usage_${1%%_*}" "$s" "$o"
  cat <<EOF
Prints 'form: ...' first: the form its arguments were read as. Paths may be relative to the current folder; they
are passed on absolute, as are the values of these options after '--':
  --${ZOO_PATH_OPTIONS//|/ --}
--output_dir DIR: the run folder (default ./outputs/<model>_<launcher>_<time>); --background: start detached,
pid in DIR/launcher.pid, exit status in DIR/exit_code when done.
Environment: HCCL_CONNECT_TIMEOUT and HCCL_EXEC_TIMEOUT are exported as $ZOO_HCCL_CONNECT_DEFAULT and $ZOO_HCCL_EXEC_DEFAULT seconds unless set
(Ascend: ranks compile for long before they link up, and wait while rank 0 evaluates or saves); ZOO_PYTHON: the
interpreter; ZOO_STOP_GRACE: seconds from SIGTERM to SIGKILL when stopping a failed job (default 5).
EOF
}

_zoo_usage_error() {  # _zoo_usage_error MESSAGE: the problem, then the usage, exit 2
  echo "error: $*" >&2
  _zoo_usage "$ZOO_KIND" >&2
  exit 2
}

zoo_form() {  # zoo_form TEXT: say which form the arguments were read as (first line of the output)
  echo "form: $*"
}

# --- argument checks ----------------------------------------------------------------------------------------------
zoo_abs_path() {  # zoo_abs_path PATH: PATH made absolute against the current folder (leading ./ dropped)
  local path="$1"
  if [[ "$path" == /* ]]; then
    printf '%s\n' "$path"
    return
  fi
  while [[ "$path" == ./* ]]; do path="${path#./}"; done
  if [[ -z "$path" || "$path" == . ]]; then printf '%s\n' "$PWD"; else printf '%s\n' "$PWD/$path"; fi
}

# zoo_need_path NAME VARIABLE file|dir: the path in $VARIABLE must exist (else one error line, exit 2); a relative
# one is taken against the current folder, and $VARIABLE is set to the absolute path.
zoo_need_path() {
  local _name="$1" _var="$2" _kind="$3" _value _abs _what=folder _test=-d
  _value="${!_var}"
  [[ -n "$_value" ]] || die 2 "$_name is empty"
  _abs="$(zoo_abs_path "$_value")"
  if [[ "$_kind" == file ]]; then _what=file _test=-f; fi
  if ! test "$_test" "$_abs"; then
    if [[ "$_value" == /* ]]; then die 2 "$_name '$_value' is not an existing $_what"; fi
    die 2 "$_name '$_value' is a relative path; taken against the current folder it is $_abs, which is not an" \
      "existing $_what"
  fi
  printf -v "$_var" '%s' "$_abs"
}

zoo_need_int() {  # zoo_need_int NAME VALUE MIN MAX: an integer in [MIN, MAX], else usage and exit 2
  if [[ ! "$2" =~ ^[0-9]+$ ]] || ((10#$2 < $3 || 10#$2 > $4)); then
    _zoo_usage_error "$1 '$2' must be an integer from $3 to $4"
  fi
}

_zoo_hccl_env() {  # export HCCL_CONNECT_TIMEOUT/HCCL_EXEC_TIMEOUT: the caller's (checked) or the defaults above
  export HCCL_CONNECT_TIMEOUT="${HCCL_CONNECT_TIMEOUT:-$ZOO_HCCL_CONNECT_DEFAULT}"
  export HCCL_EXEC_TIMEOUT="${HCCL_EXEC_TIMEOUT:-$ZOO_HCCL_EXEC_DEFAULT}"
  local name min max
  for name in HCCL_CONNECT_TIMEOUT:120:7200 HCCL_EXEC_TIMEOUT:0:17340; do  # the ranges CANN accepts
    IFS=: read -r name min max <<<"$name"
    if [[ ! "${!name}" =~ ^[0-9]+$ ]] || ((10#${!name} < min || 10#${!name} > max)); then
      die 2 "$name='${!name}' must be a number of seconds from $min to $max (unset it for the default)"
    fi
  done
}

_zoo_abs_options() {  # make the values of the path options (ZOO_PATH_OPTIONS) among the -- options absolute
  local i n=${#ZOO_EXTRA[@]} key value
  for ((i = 0; i < n; i++)); do
    if [[ "${ZOO_EXTRA[i]}" =~ ^--($ZOO_PATH_OPTIONS)=(.*)$ ]]; then
      key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
      ZOO_EXTRA[i]="--$key=$(_zoo_abs_option "$key" "$value")"
    elif [[ "${ZOO_EXTRA[i]}" =~ ^--($ZOO_PATH_OPTIONS)$ ]] && ((i + 1 < n)); then
      key="${BASH_REMATCH[1]}"
      i=$((i + 1))
      ZOO_EXTRA[i]="$(_zoo_abs_option "$key" "${ZOO_EXTRA[i]}")"
    fi
  done
}

_zoo_abs_option() {  # _zoo_abs_option KEY VALUE: VALUE absolute, unless empty or a word (--resume auto)
  if [[ -z "$2" || ("$1" == resume && "$2" == auto) ]]; then printf '%s\n' "$2"; else zoo_abs_path "$2"; fi
}

_zoo_python() {  # the interpreter the launchers run (and msrun finds on PATH), absolute when given as a path
  local py="${ZOO_PYTHON:-}"
  if [[ -z "$py" ]]; then
    py="$(command -v python || command -v python3)" || die 2 "no python on PATH; activate the environment (.venv) first"
  fi
  if [[ "$py" == */* ]]; then zoo_abs_path "$py"; else echo "$py"; fi
}

_zoo_entry() {  # _zoo_entry NAME: the model folder's NAME.py, or the stand-in named by ZOO_ENTRY_PY
  zoo_abs_path "${ZOO_ENTRY_PY:-$ZOO_MODEL_DIR/$1.py}"
}

_zoo_make_run_dir() {  # the run folder: --output_dir (absolute, or taken against the current folder), or a new one
  if [[ -n "$ZOO_OUTPUT_DIR" ]]; then
    ZOO_RUN_DIR="$(zoo_abs_path "$ZOO_OUTPUT_DIR")"
  else
    ZOO_RUN_DIR="$PWD/outputs/$(basename "$ZOO_MODEL_DIR")_${ZOO_SCRIPT_NAME%.sh}_$(date +%Y%m%d_%H%M%S)"
    [[ ! -e "$ZOO_RUN_DIR" ]] || ZOO_RUN_DIR="${ZOO_RUN_DIR}_$$"
  fi
  mkdir -p "$ZOO_RUN_DIR" || die 2 "cannot create the run folder '$ZOO_RUN_DIR'"
  rm -f "$ZOO_RUN_DIR/exit_code"
}

# --- running and supervising --------------------------------------------------------------------------------------
# zoo_start_rank LABEL LOG WORK_DIR CPU_LIST COMMAND...: start one rank in its own process group, in WORK_DIR (created;
# empty: the current folder), bound to CPU_LIST (empty: not bound), its output in LOG.
zoo_start_rank() {
  local label="$1" log="$2" work_dir="${3:-$PWD}" cpus="$4"
  shift 4
  local bind=()
  if [[ -n "$cpus" ]] && command -v taskset >/dev/null; then bind=(taskset -c "$cpus"); fi
  mkdir -p "$(dirname "$log")" "$work_dir"
  # setsid: the rank and everything it forks (data workers) form one group, stopped together. The subshell is not a
  # group leader, so setsid execs in place and $! is the rank's pid (and its group's id).
  (cd "$work_dir" && exec setsid "${bind[@]}" "$@") >"$log" 2>&1 </dev/null &
  ZOO_RANK_PIDS+=("$!")
  ZOO_RANK_LABELS+=("$label")
  ZOO_RANK_LOGS+=("$log")
  echo "started $label (pid $!), log $log"
}

_zoo_stop_ranks() {  # signal every live rank's process group, SIGKILL what is left after ZOO_STOP_GRACE seconds
  local pid waited=0 alive sig="$ZOO_STOP_SIGNAL"
  for pid in "${ZOO_RANK_PIDS[@]}"; do kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true; done
  while ((waited < ZOO_STOP_GRACE * 10)); do
    alive=0
    for pid in "${ZOO_RANK_PIDS[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
    ((alive)) || break
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "${ZOO_RANK_PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

zoo_report_failure() {  # zoo_report_failure LABEL STATUS LOG: which rank failed and the tail of its log, on stderr
  echo "error: $1 exited with status $2; the other ranks were stopped. Last lines of $3:" >&2
  tail -n "${ZOO_TAIL_LINES:-30}" "$3" 2>/dev/null | sed 's/^/  | /' >&2 || true
}

_zoo_first_failed_rank() {  # RUN/rank_<r>/exit_code of the rank that failed first (stop signals' victims last)
  local file code stopped=""
  while read -r _ file; do
    code="$(<"$file")"
    if ((code == 0)); then continue; fi
    if ((code == 130 || code == 137 || code == 143)); then stopped="${stopped:-$file}"; else echo "$file"; return; fi
  done < <(find "$ZOO_RUN_DIR" -mindepth 2 -maxdepth 2 -path '*/rank_*/exit_code' -printf '%T@ %p\n' | sort -n)
  if [[ -n "$stopped" ]]; then echo "$stopped"; fi
}

_zoo_fail_inner() {  # _zoo_fail_inner EXIT_CODE_FILE: stop everything, name the rank inside mpirun/msrun, exit
  local rank="${1%/exit_code}" status
  rank="${rank##*/rank_}"
  status="$(<"$1")"
  _zoo_stop_ranks
  zoo_report_failure "rank $rank" "$status" "${ZOO_INNER_RANK_LOG//\{rank\}/$rank}"
  zoo_finish "$status"
}

zoo_finish() {  # zoo_finish STATUS: record the run's status in RUN/exit_code and exit with it
  echo "$1" >"$ZOO_RUN_DIR/exit_code"
  exit "$1"
}

# Wait for every started rank; on the first failure stop the rest, name it with the tail of its log, and exit with
# its status. Under mpirun/msrun (ZOO_INNER_RANK_LOG set) the ranks' exit_code files are watched as well.
zoo_supervise() {
  trap '_zoo_stop_ranks; echo "error: interrupted; all ranks stopped" >&2; zoo_finish 130' INT
  trap '_zoo_stop_ranks; echo "error: terminated; all ranks stopped" >&2; zoo_finish 143' TERM
  local -A finished=()
  local i pid status failed
  while ((${#finished[@]} < ${#ZOO_RANK_PIDS[@]})); do
    if [[ -n "$ZOO_INNER_RANK_LOG" ]]; then
      failed="$(_zoo_first_failed_rank)"
      if [[ -n "$failed" ]]; then _zoo_fail_inner "$failed"; fi
    fi
    for i in "${!ZOO_RANK_PIDS[@]}"; do
      pid="${ZOO_RANK_PIDS[$i]}"
      if [[ -n "${finished[$i]:-}" ]] || kill -0 "$pid" 2>/dev/null; then continue; fi
      status=0
      wait "$pid" || status=$?
      finished[$i]=1
      if ((status == 0)); then continue; fi
      if [[ -n "$ZOO_INNER_RANK_LOG" ]]; then
        failed="$(_zoo_first_failed_rank)"
        if [[ -n "$failed" ]]; then _zoo_fail_inner "$failed"; fi
      fi
      _zoo_stop_ranks
      zoo_report_failure "${ZOO_RANK_LABELS[$i]}" "$status" "${ZOO_RANK_LOGS[$i]}"
      zoo_finish "$status"
    done
    sleep 0.2
  done
  trap - INT TERM
  echo "done: every process exited with status 0; run folder $ZOO_RUN_DIR"
  zoo_finish 0
}

zoo_run_logged() {  # zoo_run_logged LOG COMMAND...: one process in the foreground, output shown and kept in LOG
  local log="$1" status=0
  shift
  echo "log: $log"
  "$@" 2>&1 | tee "$log" || status=$?
  ((status == 0)) || echo "error: the job exited with status $status; full log $log" >&2
  zoo_finish "$status"
}

_zoo_background() {  # run this same launcher detached under nohup/setsid, print its pid file, exit 0
  local pid_file="$ZOO_RUN_DIR/launcher.pid" log="$ZOO_RUN_DIR/launcher.log"
  nohup setsid bash "$ZOO_SCRIPT_PATH" --output_dir "$ZOO_RUN_DIR" "${ZOO_FOREGROUND_ARGS[@]}" >"$log" 2>&1 </dev/null &
  echo "$!" >"$pid_file"
  echo "started in the background: pid $! (pid file $pid_file)"
  echo "launcher log: $log; the exit status is written to $ZOO_RUN_DIR/exit_code when the job ends"
  exit 0
}

zoo_prepare_run() {  # create the run folder, and detach here when --background was given
  _zoo_make_run_dir
  if ((ZOO_BACKGROUND)); then _zoo_background; fi
  echo "run folder: $ZOO_RUN_DIR"
}

# shellcheck source=scripts/launch_kinds.sh
source "$ZOO_ROOT/scripts/launch_kinds.sh"

# --- entry point --------------------------------------------------------------------------------------------------
zoo_launch() {  # zoo_launch KIND ARGS...: parse the launcher's options, then run the KIND launcher
  ZOO_KIND="$1"
  shift
  ZOO_SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")"
  ZOO_SCRIPT_NAME="$(basename "$ZOO_SCRIPT_PATH")"
  ZOO_MODEL_DIR="$(dirname "$(dirname "$ZOO_SCRIPT_PATH")")"
  case "$ZOO_KIND" in
    ranktable | standalone_ascend | eval_ascend) ZOO_TARGET=Ascend ;;
    gpu | standalone_gpu | eval_gpu) ZOO_TARGET=GPU ;;
    standalone_cpu) ZOO_TARGET=CPU ;;
    msrun | export) ZOO_TARGET="" ;;
    *) die 2 "unknown launcher kind '$ZOO_KIND'" ;;
  esac
  ZOO_BACKGROUND=0 ZOO_OUTPUT_DIR="" ZOO_TARGET_GIVEN=0 ZOO_POSITIONAL=() ZOO_EXTRA=() ZOO_FOREGROUND_ARGS=()
  ZOO_MSRUN_OPTS=()
  local takes_target=0
  [[ "$ZOO_KIND" == msrun || "$ZOO_KIND" == eval_* || "$ZOO_KIND" == export ]] && takes_target=1
  while (($#)); do
    case "$1" in
      -h | --help) _zoo_usage "$ZOO_KIND"; exit 0 ;;
      --) shift; ZOO_EXTRA=("$@"); ZOO_FOREGROUND_ARGS+=(-- "$@"); break ;;
      --background) ZOO_BACKGROUND=1; shift; continue ;;
      --output_dir | --device_target | --worker_num | --node_rank | --master_addr | --master_port | --cluster_time_out)
        (($# >= 2)) || _zoo_usage_error "$1 needs a value"
        case "$1" in
          --output_dir) ZOO_OUTPUT_DIR="$2"; shift 2; continue ;;
          --device_target)
            ((takes_target)) || _zoo_usage_error "this launcher runs on $ZOO_TARGET only; --device_target is not taken"
            [[ "$2" =~ ^(Ascend|GPU|CPU)$ ]] || _zoo_usage_error "--device_target '$2' must be Ascend, GPU or CPU"
            ZOO_TARGET="$2" ZOO_TARGET_GIVEN=1 ;;
          *) [[ "$ZOO_KIND" == msrun ]] || _zoo_usage_error "$1 is an option of the msrun launcher only"
            ZOO_MSRUN_OPTS+=("$1" "$2") ;;
        esac
        ZOO_FOREGROUND_ARGS+=("$1" "$2")
        shift 2 ;;
      -*) _zoo_usage_error "unknown option '$1'" ;;
      *) ZOO_POSITIONAL+=("$1"); ZOO_FOREGROUND_ARGS+=("$1"); shift ;;
    esac
  done
  _zoo_hccl_env
  _zoo_abs_options
  "zoo_kind_${ZOO_KIND%%_*}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  die 2 "scripts/launch_lib.sh is sourced by the model folders' scripts/run_*.sh; run one of those (--help)"
fi
