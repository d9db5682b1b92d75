#!/usr/bin/env bash
# Learned path planner: A* guide refined by latent diffusion, trained on generated worlds.
#   ./run.sh                      all stages
#   ./run.sh --stage 5            only re-evaluate
set -euo pipefail
cd "$(dirname "$0")"

stage=0            # first stage to run
stop_stage=100     # last stage to run
datadir=data       # prepared data
expdir=exp         # models, logs ($expdir/*/log)
study_jobs=1       # study runs trained at once (stage 7)
study_seeds=3      # seeds per study variant (stage 7)
study_only=""      # study variants to train, space-separated (stage 7; empty: all)
help_message="Usage: ./run.sh [options]
Stages: 0 install, 1 data, 2 trajectory autoencoder, 3 latent diffusion, 4 waypoint-space
baseline, 5 evaluate -> RESULTS.md + RESULTS_windows.md, 6 multi-scale ablation ->
RESULTS_multiscale.md, 7 training studies -> RESULTS_studies.md, 8 few-step distillation ->
RESULTS_distill.md, 9 reduced precision -> RESULTS_quant.md, 10 straight-line reference ablation
-> RESULTS_reference_{dev,test}.md, 11 evenly spaced waypoints ablation
-> RESULTS_spacing_{dev,test}.md"

if [[ ! -x ../../../.venv/bin/python ]] || ! ../../../tools/install.sh --check >/dev/null 2>&1; then
  ../../../tools/install.sh
fi
. ./path.sh
. ./cmd.sh
. parse_options.sh

"$LATENTDIFF_ROOT/recipes/path.sh" \
  --stage "$stage" --stop-stage "$stop_stage" --datadir "$datadir" --expdir "$expdir" \
  --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --confdir conf --results RESULTS.md \
  --study-jobs "$study_jobs" --study-seeds "$study_seeds" --study-only "$study_only"
