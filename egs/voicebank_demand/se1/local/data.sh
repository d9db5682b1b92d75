#!/usr/bin/env bash
# VoiceBank-DEMAND (Valentini-Botinhao 2017, Edinburgh DataShare item 10283/2791,
# doi:10.7488/ds/2117; 28-speaker training set, 48 kHz):
#   1  download and unzip the noisy/clean train and test sets (+ SNR log files) into $downloads
#   2  Kaldi data dirs at 16 kHz: data/train, data/dev (held-out speakers), data/test
set -euo pipefail

stage=1
stop_stage=2
downloads=downloads/voicebank_demand   # unzipped release (or a local copy laid out like it)
datadir=data
dev_speakers="p226 p287"               # training speakers held out for dev
help_message="Usage: $0 [options]
Stages: 1 download, 2 data dirs"

. parse_options.sh
. stage.sh

base_url=https://datashare.ed.ac.uk/bitstream/handle/10283/2791
# <zip name>:<DSpace sequence number of the file in the item>
archives=(
  clean_trainset_28spk_wav.zip:2
  noisy_trainset_28spk_wav.zip:6
  clean_testset_wav.zip:1
  noisy_testset_wav.zip:5
  logfiles.zip:4
)

if run_stage 1 "Download VoiceBank-DEMAND (about 2.7 GB)"; then
  command -v wget >/dev/null && command -v unzip >/dev/null \
    || { log "wget and unzip are needed: sudo apt-get install wget unzip"; exit 1; }
  mkdir -p "$downloads"
  for entry in "${archives[@]}"; do
    name=${entry%%:*}
    sequence=${entry##*:}
    if [[ -f $downloads/.${name%.zip}.done ]]; then
      log "$name already unpacked"
      continue
    fi
    log "Downloading $name"
    wget --continue --tries=3 -O "$downloads/$name" "$base_url/$name?sequence=$sequence&isAllowed=y"
    unzip -q -o "$downloads/$name" -d "$downloads"
    touch "$downloads/.${name%.zip}.done"
    rm -f "$downloads/$name"
  done
fi

if run_stage 2 "Data dirs (16 kHz)"; then
  # shellcheck disable=SC2086  # dev_speakers is a list
  latentdiff prepare voicebank-demand --corpus-dir "$downloads" --out-dir "$datadir" \
    --dev-speakers $dev_speakers
fi
