#!/usr/bin/env bash
# Data stages shared by the speech-enhancement recipes on the mixed corpus (egs/speech/se1):
#   1  sources: install missing Debian packages (as root) and synthesise the TTS voices
#   2  mix: split by voice and noise file, mix, write data/{train,dev,test}
set -euo pipefail

stage=1
stop_stage=2
datadir=data                    # output: data dirs, wav/, local/, corpus_summary.yaml
corpus_config=conf/corpus.yaml  # CorpusConfig fields (latentdiff.se.corpus.build)
install_packages=true           # run apt-get for missing packages when running as root
decode_cmd=run.pl
help_message="Usage: $0 [options]
Stages: 1 speech/noise sources and synthetic voices, 2 mixed corpus"

. parse_options.sh
. stage.sh

if run_stage 1 "Speech and noise sources"; then
  read -r -a packages <<< "$(latentdiff prepare se-corpus --config "$corpus_config" \
    --out-dir "$datadir" --list-packages)"
  missing=()
  for package in "${packages[@]}"; do
    # shellcheck disable=SC2016  # ${Status} is a dpkg-query field
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  if (( ${#missing[@]} > 0 )); then
    if [[ $install_packages == true && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      log "Installing Debian packages: ${missing[*]}"
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
      log "Missing Debian packages: ${missing[*]}"
      log "Install them with: sudo apt-get install ${missing[*]}"
      log "(or remove their sources from $corpus_config), then rerun with --stage 1"
      exit 1
    fi
  fi
  ${decode_cmd} "$datadir/log/sources.log" \
    latentdiff prepare se-corpus --config "$corpus_config" --out-dir "$datadir" --sources-only
  grep -h 'speech files' "$datadir/log/sources.log" | sed 's/^/  /' >&2 || true
fi

if run_stage 2 "Mixed corpus"; then
  log "Mixing; follow with: tail -f $datadir/log/corpus.log"
  ${decode_cmd} "$datadir/log/corpus.log" \
    latentdiff prepare se-corpus --config "$corpus_config" --out-dir "$datadir"
  log "Summary ($datadir/corpus_summary.yaml):"
  sed 's/^/  /' "$datadir/corpus_summary.yaml" >&2
fi
