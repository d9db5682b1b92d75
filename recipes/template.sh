#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Shared stage script showing the pattern recipe stage scripts follow. A recipe's run.sh calls it
# (after sourcing path.sh) with its settings as options:
#
#   recipes/template.sh --stage 2 --stop-stage 3 --nj 4 --train-cmd "run.pl" ...
#
# The demo prepares the numbers 1..num_items, squares them in nj parallel jobs and adds the squares.
set -euo pipefail

stage=1                # first stage to run
stop_stage=100         # last stage to run
nj=4                   # number of parallel jobs
num_items=20           # size of the demo data set
train_cmd=run.pl       # runner for the parallel jobs (see recipes/utils/run.pl --help)
decode_cmd=run.pl      # runner for the single summary job
datadir=data           # where prepared data goes
expdir=exp/demo        # where results go; logs are in $expdir/log
help_message="Usage: $0 [options]
Stages: 1 data preparation, 2 split into nj parts, 3 square the items (nj jobs), 4 sum the squares."

# shellcheck source=utils/parse_options.sh
. parse_options.sh  # recipes/utils is on PATH (path.sh)
# shellcheck source=utils/stage.sh
. stage.sh

if (( $# != 0 )); then
  echo "$help_message" >&2
  exit 1
fi

logdir=$expdir/log
splitdir=$datadir/split$nj
square_py='import sys; open(sys.argv[2], "w").write(f"{sum(int(x) ** 2 for x in open(sys.argv[1]))}\n")'
sum_py='import sys; open(sys.argv[1], "w").write(f"{sum(int(open(p).read()) for p in sys.argv[2:])}\n")'

if run_stage 1 "Data preparation"; then
  mkdir -p "$datadir"
  seq 1 "$num_items" >"$datadir/items.txt"
  log "Wrote $num_items items to $datadir/items.txt"
fi

if run_stage 2 "Split into $nj parts"; then
  mkdir -p "$splitdir"
  for job in $(seq 1 "$nj"); do
    : >"$splitdir/items.$job.txt"
  done
  awk -v nj="$nj" -v dir="$splitdir" '{ print > (dir "/items." ((NR - 1) % nj + 1) ".txt") }' \
    "$datadir/items.txt"
fi

if run_stage 3 "Square the items in $nj jobs"; then
  mkdir -p "$expdir"
  # The runner replaces JOB by 1..nj in the log name and the arguments; logs: $logdir/square.*.log
  # shellcheck disable=SC2086  # $train_cmd holds the runner and its options
  ${train_cmd} JOB=1:"$nj" "$logdir/square.JOB.log" \
    python -c "$square_py" "$splitdir/items.JOB.txt" "$expdir/squares.JOB.txt"
fi

if run_stage 4 "Sum the squares"; then
  parts=()
  for job in $(seq 1 "$nj"); do
    parts+=("$expdir/squares.$job.txt")
  done
  # shellcheck disable=SC2086
  ${decode_cmd} "$logdir/sum.log" python -c "$sum_py" "$expdir/total.txt" "${parts[@]}"
  log "Sum of the squares of 1..$num_items: $(cat "$expdir/total.txt")"
fi
