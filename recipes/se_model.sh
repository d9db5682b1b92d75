#!/usr/bin/env bash
# Model stages of the speech-enhancement recipe (see egs/speech/se1/run.sh, stages 1-2 = data).
#   recipes/se_model.sh --datadir data --expdir exp --stage 3 --stop-stage 7
# Stages: 3 feature autoencoder, 4 LatentSE, 5 predictive baseline, 6 STFT-diffusion baseline,
# 7 PESQ-WB / ESTOI / SI-SDR of every trained model on dev and test ($expdir/<model>/scores_*.json),
# 8 enhance the test set's noisy files with every trained model ($expdir/<model>/enhanced/test),
# 9 benchmarks against the peers: RESULTS.md (quality), RESULTS_dnsmos.md (DNSMOS on 24 utterances),
# RESULTS_stream.md (streaming speed), RESULTS_quant.md and RESULTS_stream_ops.md (precision),
# 10 adversarial fine-tuning, 11 training studies: LatentSE variants x seeds (RESULTS_studies.md),
# 12 few-step distillation of the stage-10 model into 1- and 2-step DDIM students.
set -euo pipefail

stage=3
stop_stage=100
datadir=data        # Kaldi data dirs: $datadir/{train,dev,test}
expdir=exp          # one folder per model, logs in <model>/log
confdir=conf        # autoencoder.yaml, latent_se.yaml, predictive.yaml, stft_diffusion.yaml
steps=""            # sampler steps for stages 7-8 (empty: each model's default)
max_utts=0          # stages 7, 10-12: score the first N utterances of each set (0: all)
adversarial_from=   # stage 10: enhancer to fine-tune (default: $expdir/latent_se/final.pt)
study_seeds=3       # stage 11: seeds per study variant
study_steps=""      # stage 11: training steps of each study run (empty: the config's)
study_jobs=1        # stage 11: study runs trained at once
study_only=""       # stage 11: space-separated variants to train (empty: all)
train_cmd=run.pl
decode_cmd=run.pl
help_message="Usage: $0 [options]
Stages: 3 autoencoder, 4 latent_se, 5 predictive baseline, 6 stft_diffusion baseline,
7 score dev and test, 8 enhance \$datadir/test with each trained model, 9 peer benchmarks,
10 adversarial fine-tuning (diffusion-GAN hybrid), scored on dev against its starting point,
11 training studies: lightweight variants, stable-training switches, multi-stage and flat-TCN
ablations x seeds, scored on dev,
12 few-step distillation (1- and 2-step DDIM students of the stage-10 model), scored on dev"

. parse_options.sh
. stage.sh

train_model() {
  # $1: model name (config conf/<name>.yaml, output $expdir/<name>); further args go to the trainer.
  local name=$1
  shift
  log "Training; follow with: tail -f $expdir/$name/log/train.log"
  ${train_cmd} "$expdir/$name/log/train.log" \
    latentdiff train se-model --config "$confdir/$name.yaml" \
      --data-dir "$datadir/train" --exp-dir "$expdir/$name" "$@"
}

if run_stage 3 "Feature autoencoder"; then
  log "Training; follow with: tail -f $expdir/autoencoder/log/train.log"
  ${train_cmd} "$expdir/autoencoder/log/train.log" \
    latentdiff train se-autoencoder --config "$confdir/autoencoder.yaml" \
      --data-dir "$datadir/train" --exp-dir "$expdir/autoencoder"
fi

if run_stage 4 "LatentSE (latent correction diffusion)"; then
  train_model latent_se --autoencoder "$expdir/autoencoder/final.pt"
fi

if run_stage 5 "Predictive baseline"; then
  train_model predictive
fi

if run_stage 6 "STFT-diffusion baseline"; then
  train_model stft_diffusion
fi

models=(latent_se predictive stft_diffusion adversarial)  # adversarial: from stage 10

if run_stage 7 "Score dev and test"; then
  for name in "${models[@]}"; do
    [[ -f $expdir/$name/final.pt ]] || continue
    for set in dev test; do
      ${decode_cmd} "$expdir/$name/log/score_$set.log" \
        latentdiff evaluate se-model --data-dir "$datadir/$set" --model "$expdir/$name/final.pt" \
          --output "$expdir/$name/scores_$set.json" --max-utts "$max_utts" ${steps:+--steps "$steps"}
    done
  done
fi

if run_stage 8 "Enhance the test set"; then
  noisy_dir=$(dirname "$(head -n 1 "$datadir/test/wav.scp" | cut -d' ' -f2)")
  for name in "${models[@]}"; do
    [[ -f $expdir/$name/final.pt ]] || continue
    ${decode_cmd} "$expdir/$name/log/enhance_test.log" \
      latentdiff enhance "$noisy_dir" "$expdir/$name/enhanced/test" \
        --model "$expdir/$name/final.pt" ${steps:+--steps "$steps"}
  done
fi

if run_stage 9 "Benchmarks against the peers"; then
  extra=()
  for name in "${models[@]}"; do
    [[ -f $expdir/$name/final.pt ]] || continue
    extra+=(--model "$name=$expdir/$name/final.pt")
  done
  log "Quality: RESULTS.md; follow with: tail -f $expdir/log/bench_se.log"
  ${decode_cmd} "$expdir/log/bench_se.log" \
    latentdiff bench se --data-dir "$datadir/test" --results RESULTS.md --max-utts 120 "${extra[@]}"
  log "DNSMOS P.835 (about 4 s per utterance and system): RESULTS_dnsmos.md"
  ${decode_cmd} "$expdir/log/bench_dnsmos.log" \
    latentdiff bench se --data-dir "$datadir/test" --results RESULTS_dnsmos.md --max-utts 24 \
      "${extra[@]}" --dnsmos
  log "Streaming speed: RESULTS_stream.md"
  ${decode_cmd} "$expdir/log/bench_stream.log" \
    latentdiff bench stream --seconds 30 --results RESULTS_stream.md
  log "Reduced precision: RESULTS_quant.md; time by operator: RESULTS_stream_ops.md"
  ${decode_cmd} "$expdir/log/bench_quant.log" \
    latentdiff bench quant --tracks se --data-dir "$datadir/dev" --results RESULTS_quant.md
  ${decode_cmd} "$expdir/log/bench_stream_ops.log" \
    latentdiff bench stream-ops --precisions fp32 int8 --blocks 300 --results RESULTS_stream_ops.md
fi

if run_stage 10 "Adversarial fine-tuning (diffusion-GAN hybrid)"; then
  base=${adversarial_from:-$expdir/latent_se/final.pt}
  log "Training; follow with: tail -f $expdir/adversarial/log/train.log"
  ${train_cmd} "$expdir/adversarial/log/train.log" \
    latentdiff train se-adversarial --config "$confdir/adversarial.yaml" --enhancer "$base" \
      --data-dir "$datadir/train" --exp-dir "$expdir/adversarial"
  for pair in "base=$base" "adversarial=$expdir/adversarial/final.pt"; do
    ${decode_cmd} "$expdir/adversarial/log/score_dev_${pair%%=*}.log" \
      latentdiff evaluate se-model --data-dir "$datadir/dev" --model "${pair#*=}" \
        --output "$expdir/adversarial/scores_dev_${pair%%=*}.json" --max-utts "$max_utts"
  done
fi

# Study variants: name, then the config overrides (on latent_se.yaml) that make it.
study_variants=(
  "base"
  "small model.cond_encoder.channels=48 model.cond_encoder.out_channels=48 model.backbone.channels=48"
  "tiny model.cond_encoder.channels=32 model.cond_encoder.out_channels=32 model.backbone.channels=32 model.backbone.depth=4"
  "plain trainer.ema_decay=0 model.diffusion.loss_weighting=uniform trainer.grad_clip=0 trainer.warmup_steps=0"
  "two_stage model.stages=2"
  "flat model.backbone.dilation_cycle=1"
)

if run_stage 11 "Training studies: lightweight variants, stable-training switches, multi-stage and flat-TCN ablations"; then
  log "${study_only:-${#study_variants[@]}} variants x $study_seeds seeds in $expdir/study/<variant>/seed<k>"
  for entry in "${study_variants[@]}"; do
    read -r -a words <<< "$entry"
    name=${words[0]}
    [[ -z $study_only || " $study_only " == *" $name "* ]] || continue
    sets=(--set "trainer.seed=JOB")
    [[ -z $study_steps ]] || sets+=(--set "trainer.steps=$study_steps")
    for override in "${words[@]:1}"; do sets+=(--set "$override"); done
    ${train_cmd} --max-jobs-run "$study_jobs" "JOB=1:$study_seeds" \
      "$expdir/study/$name/seedJOB/log/train.log" \
      latentdiff train se-model --config "$confdir/latent_se.yaml" --data-dir "$datadir/train" \
        --exp-dir "$expdir/study/$name/seedJOB" --autoencoder "$expdir/autoencoder/final.pt" \
        "${sets[@]}"
  done
  ${decode_cmd} "$expdir/log/evaluate_study.log" \
    latentdiff evaluate se-study --study-dir "$expdir/study" --data-dir "$datadir/dev" \
      --max-utts "$max_utts" --results RESULTS_studies.md
  log "Report: RESULTS_studies.md"
fi

if run_stage 12 "Few-step distillation: DDIM students at 1 and 2 steps"; then
  teacher=$expdir/adversarial/final.pt
  for steps in 1 2; do
    ${train_cmd} "$expdir/distill_${steps}step/log/train.log" \
      latentdiff train se-distill --config "$confdir/distill.yaml" --teacher "$teacher" \
        --data-dir "$datadir/train" --exp-dir "$expdir/distill_${steps}step" \
        --set "distill.steps=$steps"
    ${decode_cmd} "$expdir/distill_${steps}step/log/score_dev.log" \
      latentdiff evaluate se-model --data-dir "$datadir/dev" \
        --model "$expdir/distill_${steps}step/final.pt" --max-utts "$max_utts" \
        --output "$expdir/distill_${steps}step/scores_dev.json"
  done
  for steps in 1 4; do
    ${decode_cmd} "$expdir/adversarial/log/score_dev_steps$steps.log" \
      latentdiff evaluate se-model --data-dir "$datadir/dev" --model "$teacher" \
        --steps "$steps" --max-utts "$max_utts" \
        --output "$expdir/adversarial/scores_dev_steps$steps.json"
  done
fi
