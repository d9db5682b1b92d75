#!/usr/bin/env bash
# Runs the checks: tools/install.sh (a no-op when up to date), ruff, then pytest with this
# script's arguments, e.g. `bash tools/test.sh tests/core -k sampler`. Works from any directory;
# exits with pytest's status. INSTALL_OPTS passes options to tools/install.sh (e.g. --no-system).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# shellcheck disable=SC2086  # INSTALL_OPTS is a list of options
bash tools/install.sh ${INSTALL_OPTS:-}
.venv/bin/ruff check latentdiff tests

status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if (( status == 5 )); then
  echo "tools/test.sh: pytest collected no tests; check the paths and -k/-m selections" >&2
fi
exit "$status"
