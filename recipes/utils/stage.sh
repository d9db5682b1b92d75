# shellcheck shell=bash
# Stage guards and logging for recipe scripts. Source it; it defines:
#
#   log MESSAGE...          prints "2025-01-31T12:00:00 (script.sh:42) MESSAGE" to stderr.
#   run_stage N [TITLE]     succeeds when $stage <= N <= $stop_stage (and then logs
#                           "Stage N: TITLE"), fails otherwise:
#
#       if run_stage 2 "Feature extraction"; then
#         ...
#       fi
#
# $stage and $stop_stage must be integers; anything else stops the script with a message.

_stage_log_line() {
  # $1: how many function calls lie between the recipe line to report and this function.
  local depth=$1
  shift
  local script=${BASH_SOURCE[depth + 1]:-$0}
  printf '%s (%s:%s) %s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "${script##*/}" \
    "${BASH_LINENO[depth]}" "$*" >&2
}

log() {
  _stage_log_line 1 "$@"
}

# shellcheck disable=SC2154  # stage and stop_stage are the sourcing script's variables
run_stage() {
  local number=${1-} title=${2:-}
  local name value
  for name in number stage stop_stage; do
    value=${!name-}
    if ! [[ $value =~ ^-?[0-9]+$ ]]; then
      echo "$(basename "$0"): run_stage: $name must be an integer, got '$value'" >&2
      exit 1
    fi
  done
  (( stage <= number && number <= stop_stage )) || return 1
  _stage_log_line 1 "Stage ${number}${title:+: $title}"
}
