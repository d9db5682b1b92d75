# shellcheck shell=bash
# Environment for recipes. A recipe's path.sh sources this file (it is never executed):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../../../recipes/path_template.sh"
#
# It activates <repo>/.venv (created by tools/install.sh), puts recipes/utils (run.pl, slurm.pl,
# parse_options.sh, stage.sh) on PATH and exports:
#   LATENTDIFF_ROOT   the repository root
#   OMP_NUM_THREADS   number of cores unless already set
#   MKL_NUM_THREADS   $OMP_NUM_THREADS unless already set
#   PYTHONUNBUFFERED  1, so that logs show Python output as it happens
# Sourcing it twice leaves PATH as sourcing it once. Returns 1 with a message when .venv is missing.

LATENTDIFF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LATENTDIFF_ROOT

if [[ ! -x $LATENTDIFF_ROOT/.venv/bin/python ]]; then
  echo "path.sh: $LATENTDIFF_ROOT/.venv/bin/python not found; run tools/install.sh first" >&2
  return 1
fi

export VIRTUAL_ENV=$LATENTDIFF_ROOT/.venv
unset PYTHONHOME
for _path_dir in "$LATENTDIFF_ROOT/recipes/utils" "$VIRTUAL_ENV/bin"; do
  # Move the directory to the front, dropping any earlier occurrence.
  _path_rest=":${PATH:-}:"
  _path_rest=${_path_rest//":$_path_dir:"/:}
  _path_rest=${_path_rest#:}
  PATH=$_path_dir${_path_rest:+:${_path_rest%:}}
done
unset _path_dir _path_rest
export PATH
hash -r

if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  OMP_NUM_THREADS=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
fi
export OMP_NUM_THREADS
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
export PYTHONUNBUFFERED=1
