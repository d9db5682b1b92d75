#!/usr/bin/env bash
# Demo recipe: the whole toolkit in a few minutes on a CPU. Installs itself on first use.
#   ./run.sh                      all stages
#   ./run.sh --stage 5            re-evaluate the toy models, then run the speech-enhancement part
#   ./run.sh --stage 6            only the speech-enhancement part
#   ./run.sh --stage 10           only re-score the speech-enhancement model
# Stages: 0 install; toy latent diffusion (recipes/toy.sh): 1 toy data, 2 autoencoder,
# 3 latent diffusion, 4 data-space diffusion baseline, 5 evaluate -> RESULTS.md; speech
# enhancement (recipes/se_demo.sh): 6 tiny corpus (espeak-ng voices, synthetic noise),
# 7 feature autoencoder, 8 LatentSE, 9 streaming check, 10 score the test set -> RESULTS_se.md,
# which is also copied to the end of RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"

stage=0            # first stage to run
stop_stage=100     # last stage to run
datadir=data       # prepared data (speech enhancement: $datadir/se)
expdir=exp         # models, logs ($expdir/*/log)
help_message="Usage: ./run.sh [options]
Stages: 0 install, 1 toy data, 2 autoencoder, 3 latent diffusion, 4 data-space diffusion
baseline, 5 evaluate -> RESULTS.md, 6 tiny speech-enhancement corpus, 7 SE autoencoder,
8 LatentSE, 9 streaming check, 10 score SE test set -> RESULTS_se.md (appended to RESULTS.md)"

if [[ ! -x ../../../.venv/bin/python ]] || ! ../../../tools/install.sh --check >/dev/null 2>&1; then
  ../../../tools/install.sh
fi
. ./path.sh
. ./cmd.sh
. parse_options.sh

"$LATENTDIFF_ROOT/recipes/toy.sh" \
  --stage "$stage" --stop-stage "$stop_stage" --datadir "$datadir" --expdir "$expdir" \
  --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --confdir conf --results RESULTS.md

"$LATENTDIFF_ROOT/recipes/se_demo.sh" \
  --stage "$stage" --stop-stage "$stop_stage" --datadir "$datadir/se" --expdir "$expdir" \
  --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --confdir conf --results RESULTS_se.md \
  --append-to RESULTS.md
