#!/usr/bin/env bash
# Shared stages of the core demo on toy sequences (see egs/demo/v1/run.sh).
set -euo pipefail

stage=1
stop_stage=100
datadir=data          # toy corpus
expdir=exp            # one folder per model, logs in <model>/log
confdir=conf          # data.yaml, autoencoder.yaml, latent_diffusion.yaml, data_diffusion.yaml
results=RESULTS.md    # report written by the last stage
eval_steps="1 2 4 8"  # sampler step counts to evaluate
eval_samples=256      # generated sequences per sampler and step count
train_cmd=run.pl
decode_cmd=run.pl
help_message="Usage: $0 [options]
Stages: 1 toy data, 2 autoencoder, 3 latent diffusion, 4 data-space diffusion, 5 evaluate"

. parse_options.sh
. stage.sh

if run_stage 1 "Toy corpus"; then
  ${decode_cmd} "$expdir/log/prepare.log" \
    latentdiff prepare toy --data-dir "$datadir" --config "$confdir/data.yaml"
fi

if run_stage 2 "Autoencoder"; then
  log "Training; follow with: tail -f $expdir/autoencoder/log/train.log"
  ${train_cmd} "$expdir/autoencoder/log/train.log" \
    latentdiff train toy-autoencoder --config "$confdir/autoencoder.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/autoencoder"
fi

if run_stage 3 "Latent diffusion"; then
  ${train_cmd} "$expdir/latent_diffusion/log/train.log" \
    latentdiff train toy-diffusion --config "$confdir/latent_diffusion.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/latent_diffusion" \
      --autoencoder "$expdir/autoencoder/final.pt"
fi

if run_stage 4 "Data-space diffusion baseline"; then
  ${train_cmd} "$expdir/data_diffusion/log/train.log" \
    latentdiff train toy-diffusion --config "$confdir/data_diffusion.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/data_diffusion"
fi

if run_stage 5 "Evaluate samplers and steps"; then
  # shellcheck disable=SC2086  # eval_steps is a list of numbers
  ${decode_cmd} "$expdir/log/evaluate.log" \
    latentdiff evaluate toy --data-dir "$datadir" --results "$results" \
      --model "latent=$expdir/latent_diffusion/final.pt" \
      --model "data-space=$expdir/data_diffusion/final.pt" \
      --steps $eval_steps --n-samples "$eval_samples"
  log "Report: $results"
fi
