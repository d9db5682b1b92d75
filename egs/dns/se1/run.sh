#!/usr/bin/env bash
# Speech enhancement on DNS Challenge (Interspeech 2020). Run from this directory.
#   ./run.sh --stop-stage 2        data only: 1 download, 2 data dirs (local/data.sh)
# Stage numbers 3 (feature statistics) and up are reserved for the model stages.
set -euo pipefail
cd "$(dirname "$0")"

stage=1            # first stage to run
stop_stage=100     # last stage to run
datadir=data       # prepared data
downloads=downloads # downloaded corpus (or a local copy laid out like the release)
# shellcheck disable=SC2034  # read by parse_options.sh
help_message="Usage: ./run.sh [options]
Stages: 1 download, 2 data dirs"

if [[ ! -x ../../../.venv/bin/python ]] || ! ../../../tools/install.sh --check >/dev/null 2>&1; then
  ../../../tools/install.sh
fi
# shellcheck source=path.sh
. ./path.sh
# shellcheck source=cmd.sh
. ./cmd.sh
# shellcheck source=../../../recipes/utils/parse_options.sh
. parse_options.sh

if (( stage <= 2 )); then
  local/data.sh --stage "$stage" --stop-stage "$(( stop_stage < 2 ? stop_stage : 2 ))" \
    --datadir "$datadir" --downloads "$downloads"
fi
