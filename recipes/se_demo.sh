#!/usr/bin/env bash
# Speech-enhancement stages of the core demo (see egs/demo/v1/run.sh, stages 1-5 = toy):
#   6  tiny corpus: espeak-ng voices in synthetic noise -> $datadir/{train,dev,test}
#   7  feature autoencoder -> $expdir/se_autoencoder
#   8  LatentSE -> $expdir/se_model
#   9  streaming check: one test file in 10 ms blocks against offline enhancement
#   10 PESQ-WB / ESTOI / SI-SDR on the test set (noisy and each of $eval_steps) -> $results
# Whatever the stages, $results then becomes the last section of $append_to (if both exist),
# replacing the copy a previous run put there.
set -euo pipefail

stage=6
stop_stage=100
datadir=data/se       # SE corpus
expdir=exp            # se_autoencoder/, se_model/, logs in <model>/log and log/
confdir=conf          # se_corpus.yaml, se_autoencoder.yaml, se_model.yaml
results=RESULTS_se.md # report written by stage 10
append_to=""          # report that gets $results as its last section (empty: none)
eval_steps="0 2"      # sampler steps to score (0: the predictive estimate alone)
train_cmd=run.pl
decode_cmd=run.pl
help_message="Usage: $0 [options]
Stages: 6 tiny SE corpus, 7 autoencoder, 8 LatentSE, 9 streaming check, 10 score test -> results"

. parse_options.sh
. stage.sh

autoencoder_dir=$expdir/se_autoencoder
model_dir=$expdir/se_model
section_marker="<!-- speech-enhancement demo (recipes/se_demo.sh) -->"

if run_stage 6 "Tiny speech-enhancement corpus"; then
  ${decode_cmd} "$expdir/log/se_corpus.log" \
    latentdiff prepare se-corpus --config "$confdir/se_corpus.yaml" --out-dir "$datadir" \
      --no-progress
  grep -h 'utterances' "$expdir/log/se_corpus.log" | sed 's/^/  /' >&2 || true
fi

if run_stage 7 "Feature autoencoder"; then
  log "Training; follow with: tail -f $autoencoder_dir/log/train.log"
  ${train_cmd} "$autoencoder_dir/log/train.log" \
    latentdiff train se-autoencoder --config "$confdir/se_autoencoder.yaml" \
      --data-dir "$datadir/train" --exp-dir "$autoencoder_dir"
fi

if run_stage 8 "LatentSE"; then
  log "Training; follow with: tail -f $model_dir/log/train.log"
  ${train_cmd} "$model_dir/log/train.log" \
    latentdiff train se-model --config "$confdir/se_model.yaml" \
      --data-dir "$datadir/train" --exp-dir "$model_dir" \
      --autoencoder "$autoencoder_dir/final.pt"
  grep -h '^latency' "$model_dir/log/train.log" | sed 's/^/  /' >&2 || true
fi

if run_stage 9 "Streaming check"; then
  # The first test file in 10 ms blocks through a streaming session must give the offline output.
  python - "$model_dir/final.pt" "$datadir/test" "$model_dir/stream_check.json" <<'EOF'
import json
import sys

import numpy as np

from latentdiff.se.audio import load_audio
from latentdiff.se.datadir import read_datadir
from latentdiff.se.enhancer import Enhancer

model, data_dir, output = sys.argv[1:]
utt, path = min(read_datadir(data_dir).wav.items())
enhancer = Enhancer.from_pretrained(model)
noisy = load_audio(path, enhancer.sample_rate)
session = enhancer.stream(backend="eager")
size = session.block_samples
blocks = [session.process(noisy[i : i + size]) for i in range(0, noisy.size, size)]
streamed = np.concatenate([*blocks, session.flush()])
offline = enhancer.enhance(noisy, enhancer.sample_rate)
check = {
    "utterance": utt,
    "seconds": noisy.size / enhancer.sample_rate,
    "block_ms": 1000 * size / enhancer.sample_rate,
    "max_abs_diff": float(np.abs(streamed - offline).max()),
    "blocks": session.stats.blocks,
    "overruns": session.stats.overruns,
    "rtf": session.stats.rtf,
    "max_block_ms": session.stats.max_block_ms,
    "latency_ms": session.latency_ms,
}
with open(output, "w") as file:
    json.dump(check, file, indent=2)
print(
    f"  streamed {utt}: max |streamed - offline| {check['max_abs_diff']:.2e}, "
    f"RTF {check['rtf']:.3f}, latency {check['latency_ms']:.0f} ms",
    file=sys.stderr,
)
if streamed.size != offline.size or check["max_abs_diff"] > 1e-4:
    sys.exit("streaming output differs from offline enhancement")
EOF
fi

if run_stage 10 "Score the test set"; then
  for steps in $eval_steps; do
    ${decode_cmd} "$model_dir/log/score_test_steps$steps.log" \
      latentdiff evaluate se-model --data-dir "$datadir/test" --model "$model_dir/final.pt" \
        --steps "$steps" --output "$model_dir/scores_test_steps$steps.json"
  done
  # shellcheck disable=SC2086  # eval_steps is a list of numbers
  python - "$results" "$datadir" "$autoencoder_dir" "$model_dir" $eval_steps <<'EOF'
import csv
import json
import sys
from pathlib import Path

import yaml

from latentdiff.reporting import markdown_table
from latentdiff.se.bench import machine_description

results, data_dir, autoencoder_dir, model_dir, *steps = sys.argv[1:]
model_dir = Path(model_dir)


def training(exp_dir: Path) -> str:
    with open(exp_dir / "train_log.csv") as file:
        last = list(csv.DictReader(file))[-1]
    return f"{last['step']} steps in {float(last['time']):.0f} s"


scores = {s: json.loads((model_dir / f"scores_test_steps{s}.json").read_text()) for s in steps}
report = json.loads((model_dir / "model_report.json").read_text())
test = yaml.safe_load((Path(data_dir) / "corpus_summary.yaml").read_text())["test"]
first = scores[steps[0]]
rows = [{"system": "noisy", "steps": "-", "nfe": 0, **first["noisy"]}]
rows += [
    {"system": "LatentSE", "steps": s, "nfe": score["nfe"], **score["enhanced"]}
    for s, score in scores.items()
]
lines = [
    "# Speech enhancement: tiny LatentSE (demo stages 6-10)",
    "",
    "Produced by `./run.sh --stage 6` (`recipes/se_demo.sh`): espeak-ng voices mixed with "
    "synthetic noise (`conf/se_corpus.yaml`), a causal feature autoencoder "
    f"(`conf/se_autoencoder.yaml`, {training(Path(autoencoder_dir))}) and a LatentSE "
    f"(`conf/se_model.yaml`, {training(model_dir)}), trained on a CPU. The numbers show the "
    "pipeline at work, not what the model can do (see `egs/speech/se1` for the full recipe).",
    "",
    f"Machine: {machine_description()}.",
    "",
    "## Test set",
    "",
    f"{first['utterances']} utterances ({60 * test['hours']:.1f} min; held-out speakers: "
    f"{test['speakers']}; mean input SNR {test['mean_snr_db']:.1f} dB). PESQ-WB, ESTOI and "
    "SI-SDR (dB) against the clean speech; steps 0 is the predictive estimate alone (no "
    "diffusion).",
    "",
    markdown_table(rows, ["system", "steps", "nfe", "pesq", "estoi", "si_sdr"]),
    "",
    f"Model: {report['parameters']['total']} parameters "
    f"({report['parameters']['autoencoder']} in the autoencoder), "
    f"{report['macs_per_second']['total'] / 1e6:.1f} MMAC/s at {report['nfe']} NFE, "
    f"algorithmic latency {report['latency_ms']:.0f} ms.",
    "",
]
check_path = model_dir / "stream_check.json"
if check_path.is_file():
    check = json.loads(check_path.read_text())
    lines += [
        "## Streaming",
        "",
        f"`{check['utterance']}` ({check['seconds']:.1f} s) fed in {check['block_ms']:.0f} ms "
        'blocks to `Enhancer.stream(backend="eager")`: the joined output differs from '
        f"`Enhancer.enhance` by at most {check['max_abs_diff']:.1e}; {check['blocks']} blocks, "
        f"{check['overruns']} overruns, RTF {check['rtf']:.3f}, slowest block "
        f"{check['max_block_ms']:.1f} ms, latency {check['latency_ms']:.0f} ms.",
        "",
    ]
Path(results).write_text("\n".join(lines))
EOF
  log "Report: $results"
fi

if [[ -n $append_to && -f $append_to && -f $results ]]; then
  # Keep $append_to up to the marker, then the marker and $results one heading level down.
  merged=$(awk -v marker="$section_marker" '$0 == marker { exit } { print }' "$append_to")
  {
    printf '%s\n\n%s\n\n' "$merged" "$section_marker"
    sed 's/^#/##/' "$results"
  } > "$append_to.tmp"
  mv "$append_to.tmp" "$append_to"
fi
