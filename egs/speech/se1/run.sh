#!/usr/bin/env bash
# Speech enhancement on the mixed corpus (Debian game/education speech, synthetic voices,
# keyboard/music/effects/babble/synthetic noise). Run from this directory.
#   ./run.sh --stop-stage 2                          data only (stages 1-2)
#   ./run.sh --corpus-config conf/corpus_tiny.yaml   a corpus small enough for a quick check
#   ./run.sh --stage 7                               re-score trained models
# Stages: 1 sources (Debian packages, TTS voices), 2 mixed corpus -> data/{train,dev,test},
# 3 feature autoencoder, 4 LatentSE, 5 predictive baseline, 6 STFT-diffusion baseline,
# 7 score dev/test, 8 enhance the test set, 9 benchmarks (peers, reduced precision),
# 10 adversarial fine-tuning, 11 training studies (lightweight variants, stable-training
# switches, multi-stage and flat-TCN ablations x seeds: RESULTS_studies.md), e.g.
#   ./run.sh --stage 11 --stop-stage 11 --study-seeds 3 --study-jobs 2 --max-utts 50
# 12 few-step distillation of the stage-10 model (1- and 2-step DDIM students).
set -euo pipefail
cd "$(dirname "$0")"

stage=1                         # first stage to run
stop_stage=100                  # last stage to run
datadir=data                    # prepared data
expdir=exp                      # models, logs ($expdir/<model>/log)
corpus_config=conf/corpus.yaml  # corpus sources and sizes
install_packages=true           # apt-get missing Debian packages when run as root
max_utts=0                      # stages 7, 10-12: score the first N utterances (0: all)
adversarial_from=               # stage 10: enhancer to fine-tune (default: exp/latent_se)
study_seeds=3                   # stage 11: seeds per study variant
study_steps=                    # stage 11: training steps per study run (empty: the config's)
study_jobs=1                    # stage 11: study runs trained at once
study_only=                     # stage 11: variants to train, space-separated (empty: all)
# shellcheck disable=SC2034  # read by parse_options.sh
help_message="Usage: ./run.sh [options]
Stages: 1 speech/noise sources and synthetic voices, 2 mixed corpus, 3 autoencoder, 4 LatentSE,
5 predictive baseline, 6 STFT-diffusion baseline, 7 score dev/test, 8 enhance test,
9 peer benchmarks (RESULTS.md, RESULTS_dnsmos.md, RESULTS_stream.md, RESULTS_quant.md,
RESULTS_stream_ops.md), 10 adversarial fine-tuning,
11 training studies: lightweight variants, stable-training switches, multi-stage and flat-TCN
ablations (RESULTS_studies.md),
12 few-step distillation"

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
  "$LATENTDIFF_ROOT/recipes/se_data.sh" \
    --stage "$stage" --stop-stage "$(( stop_stage < 2 ? stop_stage : 2 ))" --datadir "$datadir" \
    --corpus-config "$corpus_config" --install-packages "$install_packages" \
    --decode-cmd "$decode_cmd"
fi

if (( stop_stage >= 3 )); then
  "$LATENTDIFF_ROOT/recipes/se_model.sh" \
    --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$stop_stage" --datadir "$datadir" \
    --expdir "$expdir" --confdir conf --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" \
    --max-utts "$max_utts" --adversarial-from "$adversarial_from" --study-seeds "$study_seeds" \
    --study-steps "$study_steps" --study-jobs "$study_jobs" --study-only "$study_only"
fi
