#!/usr/bin/env bash
# Shared stages of the learned path planner (see egs/worlds/path1/run.sh).
set -euo pipefail

stage=1
stop_stage=100
datadir=data          # planner windows: train/dev/test .npz
expdir=exp            # autoencoder/, diffusion/, waypoint/, logs in <model>/log
confdir=conf          # data.yaml, autoencoder.yaml, latent_diffusion.yaml, waypoint_diffusion.yaml
results=RESULTS.md    # report written by the last stage
train_cmd=run.pl
decode_cmd=run.pl
help_message="Usage: $0 [options]
Stages: 1 data, 2 trajectory autoencoder, 3 latent diffusion, 4 waypoint-space baseline,
5 evaluate"

. parse_options.sh
. stage.sh

if run_stage 1 "Planner data"; then
  ${decode_cmd} "$expdir/log/prepare.log" \
    latentdiff prepare path --out-dir "$datadir" --config "$confdir/data.yaml"
fi

if run_stage 2 "Trajectory autoencoder"; then
  log "Training; follow with: tail -f $expdir/autoencoder/log/train.log"
  ${train_cmd} "$expdir/autoencoder/log/train.log" \
    latentdiff train path-autoencoder --config "$confdir/autoencoder.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/autoencoder"
fi

if run_stage 3 "Latent path diffusion"; then
  ${train_cmd} "$expdir/diffusion/log/train.log" \
    latentdiff train path-diffusion --config "$confdir/latent_diffusion.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/diffusion" \
      --autoencoder "$expdir/autoencoder/final.pt"
fi

if run_stage 4 "Waypoint-space diffusion baseline"; then
  ${train_cmd} "$expdir/waypoint/log/train.log" \
    latentdiff train path-diffusion --config "$confdir/waypoint_diffusion.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/waypoint"
fi

if run_stage 5 "Evaluate"; then
  ${decode_cmd} "$expdir/log/evaluate.log" \
    latentdiff evaluate path --model "latent=$expdir/diffusion/final.pt" \
      --model "waypoint=$expdir/waypoint/final.pt" --results "$results"
  log "Report: $results"
fi
