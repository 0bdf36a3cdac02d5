#!/usr/bin/env bash
set -euo pipefail  # resnest50: training on CPU; --help for usage (logic in scripts/launch_lib.sh)
# shellcheck source=scripts/launch_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/launch_lib.sh"
zoo_launch standalone_cpu "$@"
