# shellcheck shell=bash
# Command-line options for recipe scripts (Kaldi / ESPnet convention).
#
# Source this file after defining the script's default variables:
#
#   stage=1
#   nj=4
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . parse_options.sh   # recipes/utils is on PATH once path.sh has been sourced
#
# Then `--nj 8`, `--nj=8` and `--use-gpu true` set the variables (dashes become underscores).
#   --config FILE   sources FILE (`var=value` lines) before any other option is applied,
#                   so options given on the command line win whatever their position.
#   --help, -h      prints $help_message and every settable variable with its value; exits 0.
#   --              ends the options.
# Option parsing stops at the first argument that does not start with `--`; what remains is left
# in "$@". Errors (option without a variable, option without a value, a non-boolean value for a
# variable whose default is true/false) print a message naming the option and exit 1.
# Every name this file uses starts with `_po_` and is unset again before it returns.

_po_fail() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

_po_names=()    # variable names to set, in command-line order
_po_values=()   # their values
_po_configs=()  # config files, in command-line order
_po_help=false
_po_consumed=0

_po_args=("$@")
_po_i=0
while (( _po_i < ${#_po_args[@]} )); do
  _po_arg=${_po_args[_po_i]}
  case $_po_arg in
    --)
      _po_consumed=$((_po_i + 1))
      break
      ;;
    --help | -h)
      _po_help=true
      _po_i=$((_po_i + 1))
      ;;
    --?*=*)
      _po_option=${_po_arg%%=*}
      _po_value=${_po_arg#*=}
      _po_i=$((_po_i + 1))
      ;;
    --?*)
      _po_option=$_po_arg
      (( _po_i + 1 < ${#_po_args[@]} )) || _po_fail "option '$_po_option' requires a value"
      _po_value=${_po_args[_po_i + 1]}
      _po_i=$((_po_i + 2))
      ;;
    *)
      break
      ;;
  esac
  _po_consumed=$_po_i
  [[ $_po_arg == --help || $_po_arg == -h ]] && continue
  if [[ $_po_option == --config ]]; then
    _po_configs+=("$_po_value")
    continue
  fi
  _po_name=${_po_option#--}
  _po_name=${_po_name//-/_}
  [[ $_po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _po_fail "invalid option '$_po_option'"
  _po_names+=("$_po_name")
  _po_values+=("$_po_value")
done

for _po_config in "${_po_configs[@]}"; do
  [[ -f $_po_config && -r $_po_config ]] || _po_fail "cannot read config file '$_po_config'"
  # shellcheck source=/dev/null
  . "$_po_config"
done

for _po_i in "${!_po_names[@]}"; do
  _po_name=${_po_names[_po_i]}
  _po_value=${_po_values[_po_i]}
  _po_option="--${_po_name//_/-}"
  [[ -v $_po_name ]] || _po_fail "unknown option '$_po_option' (no variable '$_po_name' is defined)"
  if [[ ${!_po_name} == true || ${!_po_name} == false ]] \
      && [[ $_po_value != true && $_po_value != false ]]; then
    _po_fail "option '$_po_option' expects true or false, got '$_po_value'"
  fi
  printf -v "$_po_name" '%s' "$_po_value"
done

if [[ $_po_help == true ]]; then
  if [[ -n ${help_message:-} ]]; then
    printf '%s\n' "$help_message"
  else
    echo "Usage: $(basename "$0") [options] [arguments]"
  fi
  echo
  echo "Options (current values; environment variables are not listed):"
  while IFS= read -r _po_name; do
    [[ $_po_name =~ ^[a-z][a-z0-9_]*$ && $_po_name != help_message ]] || continue
    [[ ${_po_name@a} == *x* ]] && continue
    printf '  --%s "%s"\n' "${_po_name//_/-}" "${!_po_name-}"
  done < <(compgen -v)
  exit 0
fi

shift "$_po_consumed"
unset -f _po_fail
unset _po_names _po_values _po_configs _po_help _po_consumed _po_args _po_i _po_arg _po_option \
  _po_value _po_name _po_config
