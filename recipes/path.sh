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
study_jobs=1          # study runs trained at once (stage 7)
study_seeds=3         # seeds per study variant
study_only=""         # space-separated study variants to train (empty: all)
help_message="Usage: $0 [options]
Stages: 1 data, 2 trajectory autoencoder, 3 latent diffusion, 4 waypoint-space baseline,
5 evaluate, 6 multi-scale ablation, 7 training studies (stability, size, multi-scale x seeds),
8 few-step distillation (1 and 2 DDIM steps), 9 reduced-precision planner (int8, fp16),
10 straight-line residual reference ablation, 11 evenly spaced waypoints ablation"

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
  ${decode_cmd} "$expdir/log/evaluate_windows.log" \
    latentdiff evaluate path-windows --model "latent=$expdir/diffusion/final.pt" \
      --model "latent_guided=$expdir/diffusion/final.pt" --model-guidance latent_guided=30 \
      --model "waypoint=$expdir/waypoint/final.pt" --data-dir "$datadir" --split test \
      --results "${results%.md}_windows.md"
  log "Reports: $results ${results%.md}_windows.md"
fi

if run_stage 6 "Ablation: multi-scale map features along the guide"; then
  ${train_cmd} "$expdir/diffusion_local/log/train.log" \
    latentdiff train path-diffusion --config "$confdir/latent_diffusion_local.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/diffusion_local" \
      --autoencoder "$expdir/autoencoder/final.pt"
  ${decode_cmd} "$expdir/log/evaluate_local.log" \
    latentdiff evaluate path-windows --model "flat=$expdir/diffusion/final.pt" \
      --model "multiscale=$expdir/diffusion_local/final.pt" --data-dir "$datadir" --split test \
      --results "${results%.md}_multiscale.md"
  log "Report: ${results%.md}_multiscale.md"
fi

# Study variants: name, then the config overrides that make it (--set key=value each).
study_variants=(
  "default"
  "plain trainer.ema_decay=0 model.diffusion.diffusion.loss_weighting=uniform trainer.grad_clip=0 trainer.warmup_steps=0"
  "no_ema trainer.ema_decay=0"
  "uniform_weighting model.diffusion.diffusion.loss_weighting=uniform"
  "no_clipping trainer.grad_clip=0"
  "no_warmup trainer.warmup_steps=0"
  "tiny model.diffusion.backbone.unet_channels=[24]"
  "base model.diffusion.backbone.unet_channels=[64]"
  "multiscale model.map_encoder.local_dim=8"
  "two_stage model.diffusion.stages=2"
)

if run_stage 7 "Training studies: ${study_only:-${#study_variants[@]}} variants x $study_seeds seeds"; then
  for entry in "${study_variants[@]}"; do
    read -r -a words <<< "$entry"
    name=${words[0]}
    [[ -z $study_only || " $study_only " == *" $name "* ]] || continue
    sets=(--set "trainer.seed=JOB")
    for override in "${words[@]:1}"; do sets+=(--set "$override"); done
    ${train_cmd} --max-jobs-run "$study_jobs" "JOB=1:$study_seeds" \
      "$expdir/study/$name/seedJOB/log/train.log" \
      latentdiff train path-diffusion --config "$confdir/latent_diffusion.yaml" \
        --data-dir "$datadir" --exp-dir "$expdir/study/$name/seedJOB" \
        --autoencoder "$expdir/autoencoder/final.pt" "${sets[@]}"
  done
  ${decode_cmd} "$expdir/log/evaluate_study.log" \
    latentdiff evaluate path-study --study-dir "$expdir/study" --data-dir "$datadir" \
      --split dev --results "${results%.md}_studies.md"
  log "Report: ${results%.md}_studies.md"
fi

if run_stage 8 "Few-step distillation: DDIM students at 1 and 2 steps"; then
  for steps in 1 2; do
    ${train_cmd} "$expdir/distill_${steps}step/log/train.log" \
      latentdiff train path-distill --config "$confdir/distill.yaml" \
        --teacher "$expdir/diffusion/final.pt" --data-dir "$datadir" \
        --exp-dir "$expdir/distill_${steps}step" --set "distill.steps=$steps" \
        --set "distill.substeps=$(( 6 / steps ))"
  done
  ${decode_cmd} "$expdir/log/evaluate_distill.log" \
    latentdiff evaluate path-windows --model "teacher=$expdir/diffusion/final.pt" \
      --model "teacher_ddim_2step=$expdir/diffusion/final.pt" --model-steps teacher_ddim_2step=2 \
      --model "teacher_ddim_1step=$expdir/diffusion/final.pt" --model-steps teacher_ddim_1step=1 \
      --model "student_2step=$expdir/distill_2step/final.pt" \
      --model "student_1step=$expdir/distill_1step/final.pt" --data-dir "$datadir" --split test \
      --results "${results%.md}_distill.md"
  log "Report: ${results%.md}_distill.md"
fi

if run_stage 9 "Reduced-precision planner: int8 and fp16 kernels against fp32"; then
  ${decode_cmd} "$expdir/log/bench_quant.log" \
    latentdiff bench quant --tracks path --path-data "$datadir" --results "${results%.md}_quant.md"
  log "Report: ${results%.md}_quant.md"
fi

# evaluate_ablation NAME DATADIR MODEL... : the models (name=checkpoint) on the dev and test
# windows of DATADIR -> ${results%.md}_NAME_{dev,test}.md
evaluate_ablation() {
  local name=$1 data=$2 split
  shift 2
  local models=()
  for model in "$@"; do models+=(--model "$model"); done
  for split in dev test; do
    ${decode_cmd} "$expdir/log/evaluate_${name}_$split.log" \
      latentdiff evaluate path-windows "${models[@]}" --data-dir "$data" --split "$split" \
        --results "${results%.md}_${name}_$split.md"
  done
}

if run_stage 10 "Ablation: straight start-goal line as the residual reference"; then
  ${train_cmd} "$expdir/autoencoder_straight/log/train.log" \
    latentdiff train path-autoencoder --config "$confdir/autoencoder_straight.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/autoencoder_straight"
  ${train_cmd} "$expdir/diffusion_straight/log/train.log" \
    latentdiff train path-diffusion --config "$confdir/latent_diffusion_straight.yaml" \
      --data-dir "$datadir" --exp-dir "$expdir/diffusion_straight" \
      --autoencoder "$expdir/autoencoder_straight/final.pt"
  evaluate_ablation reference "$datadir" "route=$expdir/diffusion/final.pt" \
    "straight=$expdir/diffusion_straight/final.pt"
  log "Reports: ${results%.md}_reference_{dev,test}.md"
fi

if run_stage 11 "Ablation: evenly spaced waypoints instead of every bend kept"; then
  ${decode_cmd} "$expdir/log/prepare_even.log" \
    latentdiff prepare path --out-dir "${datadir}_even" --config "$confdir/data_even.yaml"
  ${train_cmd} "$expdir/autoencoder_even/log/train.log" \
    latentdiff train path-autoencoder --config "$confdir/autoencoder.yaml" \
      --data-dir "${datadir}_even" --exp-dir "$expdir/autoencoder_even"
  ${train_cmd} "$expdir/diffusion_even/log/train.log" \
    latentdiff train path-diffusion --config "$confdir/latent_diffusion.yaml" \
      --data-dir "${datadir}_even" --exp-dir "$expdir/diffusion_even" \
      --autoencoder "$expdir/autoencoder_even/final.pt"
  evaluate_ablation spacing "$datadir" "even=$expdir/diffusion_even/final.pt" \
    "bends_kept=$expdir/diffusion/final.pt"
  log "Reports: ${results%.md}_spacing_{dev,test}.md"
fi
