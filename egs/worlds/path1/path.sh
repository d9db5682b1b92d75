# shellcheck shell=bash
# Recipe environment: the repository's .venv, recipes/utils on PATH, thread counts.
# shellcheck source=../../../recipes/path_template.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../recipes/path_template.sh"
