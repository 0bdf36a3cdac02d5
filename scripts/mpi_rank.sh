#!/usr/bin/env bash
# One rank of the GPU launcher (run_distribute_train_gpu.sh): mpirun starts this program once per rank.
#   mpirun ... bash scripts/mpi_rank.sh RUN_DIR COMMAND...
# It takes the rank from OpenMPI, sets DEVICE_ID (the rank on this server) and RANK_ID, and runs COMMAND in
# RUN_DIR/rank_<rank>/ (its working folder: kernel_meta/, IR dumps land there; COMMAND's paths are absolute) with its
# output in RUN_DIR/rank_<rank>/train.log. Its exit status goes to RUN_DIR/rank_<rank>/exit_code, which the launcher
# watches to name the rank that failed. Not meant to be run by hand.
set -euo pipefail

usage() {
  echo "usage: mpirun -n N bash scripts/mpi_rank.sh RUN_DIR COMMAND...  (started by run_distribute_train_gpu.sh)"
}

main() {
  if (($# < 2)) || [[ "$1" != /* ]]; then
    usage >&2
    exit 2
  fi
  local run_dir="$1" rank="${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-}}" child status=0
  shift
  if [[ -z "$rank" ]]; then
    echo "error: scripts/mpi_rank.sh runs under mpirun only (no OMPI_COMM_WORLD_RANK)" >&2
    exit 2
  fi
  local rank_dir="$run_dir/rank_$rank"
  mkdir -p "$rank_dir"
  cd "$rank_dir"
  DEVICE_ID="${OMPI_COMM_WORLD_LOCAL_RANK:-$rank}" RANK_ID="$rank" "$@" >"$rank_dir/train.log" 2>&1 &
  child=$!
  # mpirun stops a job by signalling this program: pass it on, and wait until the rank has really gone.
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do
    status=0
    wait "$child" || status=$?
  done
  echo "$status" >"$rank_dir/exit_code"
  exit "$status"
}

main "$@"
