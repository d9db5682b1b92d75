#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Recipe entry point; run it from this directory: ./run.sh [options] [-- stage-script options]
set -euo pipefail

stage=1            # first stage to run
stop_stage=100     # last stage to run
nj=4               # number of parallel jobs
num_items=20       # size of the demo data set
datadir=data       # prepared data
expdir=exp/demo    # results and logs ($expdir/log)
# shellcheck disable=SC2034  # read by parse_options.sh
help_message="Usage: ./run.sh [options] [-- options for recipes/template.sh]"

# shellcheck source=path.sh
. ./path.sh
# shellcheck source=cmd.sh
. ./cmd.sh
# shellcheck source=../../../recipes/utils/parse_options.sh
. parse_options.sh  # found on PATH, which path.sh extended

"$LATENTDIFF_ROOT/recipes/template.sh" \
  --stage "$stage" --stop-stage "$stop_stage" --nj "$nj" --num-items "$num_items" \
  --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --datadir "$datadir" --expdir "$expdir" \
  "$@"
