#!/usr/bin/env bash
set -euo pipefail  # resnext50_32x4d: one-device training on Ascend; --help for usage (logic in scripts/launch_lib.sh)
# shellcheck source=scripts/launch_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/launch_lib.sh"
zoo_launch standalone_ascend "$@"
