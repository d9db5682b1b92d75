#!/usr/bin/env bash
# DNS Challenge, Interspeech 2020 (microsoft/DNS-Challenge, branch interspeech2020/master; the
# audio is stored with git-lfs: about 500 h of clean read speech and 180 h of noise at 16 kHz):
#   1  clone the branch and fetch datasets/clean, datasets/noise and the synthetic test set
#   2  data dirs: data/train_clean + data/train_noise (mixed on the fly at the SNRs in
#      data/train_mixing.yaml), data/dev (pre-mixed, held-out readers and noises), data/test
#
# Later challenges (ICASSP 2021 onwards) are published as tar.bz2 archives on Azure blob storage
# (download-dns-challenge-{3,4}.sh on the master branch, e.g.
# https://dns4public.blob.core.windows.net/dns4archive/datasets_fullband/clean_fullband/...);
# unpacked, their clean and noise folders can be linked as datasets/clean and datasets/noise.
set -euo pipefail

stage=1
stop_stage=2
downloads=downloads              # the clone goes to $downloads/DNS-Challenge
datadir=data
snr_low=-5                       # SNR range (dB) of the training mixtures
snr_high=20
dev_speakers=20                  # readers held out for dev
dev_utterances=200
help_message="Usage: $0 [options]
Stages: 1 download (git-lfs), 2 data dirs"

. parse_options.sh
. stage.sh

repo=https://github.com/microsoft/DNS-Challenge.git
branch=interspeech2020/master
corpus=$downloads/DNS-Challenge
lfs_paths="datasets/clean/**,datasets/noise/**,datasets/test_set/synthetic/no_reverb/**"

if run_stage 1 "Download DNS Challenge 2020 (about 80 GB)"; then
  command -v git-lfs >/dev/null \
    || { log "git-lfs is needed: sudo apt-get install git-lfs && git lfs install"; exit 1; }
  mkdir -p "$downloads"
  if [[ ! -d $corpus/.git ]]; then
    GIT_LFS_SKIP_SMUDGE=1 git clone --depth 1 --branch "$branch" "$repo" "$corpus"
  fi
  git -C "$corpus" lfs pull --include "$lfs_paths"
fi

if run_stage 2 "Data dirs"; then
  latentdiff prepare dns --corpus-dir "$corpus" --out-dir "$datadir" \
    --snr-low "$snr_low" --snr-high "$snr_high" --dev-speakers "$dev_speakers" \
    --dev-utterances "$dev_utterances"
fi
