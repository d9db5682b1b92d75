# shellcheck shell=bash
# How the recipe's jobs run (see `run.pl --help`).
#   run.pl    on this machine; JOB=1:N arrays run in parallel, at most --max-jobs-run at a time.
#   slurm.pl  through sbatch, e.g.
#               train_cmd="slurm.pl --partition gpu --gpus 1 --mem 16G --time 24:00:00"
#               decode_cmd="slurm.pl --config conf/slurm.conf"
#             Options can also come from the environment: SLURM_OPTS="--partition cpu".
# Both runners accept the same options, so switching between them only changes the name.
train_cmd="run.pl"
decode_cmd="run.pl"
