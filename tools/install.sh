#!/usr/bin/env bash
# Sets up the development environment: <repo>/.venv with latentdiff installed editable (with the
# test extras, versions pinned by tools/constraints.txt) and, as root on Debian/Ubuntu, the system
# packages the recipes need. A no-op when .venv/.installed holds the hash of pyproject.toml and
# tools/constraints.txt, i.e. when nothing changed since the last successful run.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/install.sh [--no-system] [--force] [--check] [--help]
  --no-system  do not install Debian packages with apt-get
  --force      install even when .venv/.installed says the environment is up to date
  --check      change nothing; exit 0 if up to date, 1 (saying why) otherwise
Environment: PYTHON  interpreter to create .venv with (default: python3; needs >= 3.10)
EOF
}

SYSTEM_PACKAGES=(espeak-ng sox ffmpeg libsndfile1 libportaudio2 libasound2-plugins pulseaudio
  pulseaudio-utils)
REQUIRED_PACKAGES=(espeak-ng libsndfile1)

with_system=true
force=false
check_only=false
for argument in "$@"; do
  case $argument in
    --no-system) with_system=false ;;
    --force) force=true ;;
    --check) check_only=true ;;
    --help | -h) usage; exit 0 ;;
    *) echo "tools/install.sh: unknown argument '$argument'" >&2; usage >&2; exit 1 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$root/.venv
stamp=$venv/.installed
done_steps=()

say() {
  echo "tools/install.sh: $*"
}

die() {
  echo "tools/install.sh: error: $*" >&2
  exit 1
}

input_hash() {
  local file
  for file in pyproject.toml tools/constraints.txt; do
    [[ -r $file ]] || die "$root/$file not found"
  done
  if command -v sha256sum >/dev/null; then
    cat pyproject.toml tools/constraints.txt | sha256sum | cut -d' ' -f1
  else
    cat pyproject.toml tools/constraints.txt | shasum -a 256 | cut -d' ' -f1
  fi
}

# Prints why the environment is out of date; prints nothing when it is up to date.
staleness() {
  local expected=$1
  if [[ ! -x $venv/bin/python ]]; then
    echo "$venv/bin/python does not exist"
  elif [[ ! -f $stamp ]]; then
    echo "$stamp does not exist (no completed install)"
  elif [[ $(head -n 1 "$stamp") != "$expected" ]]; then
    echo "pyproject.toml or tools/constraints.txt changed since the last install"
  fi
}

is_installed() {
  # shellcheck disable=SC2016  # ${Status} is a dpkg-query field, not a shell expansion
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

contains() {
  local wanted=$1 item
  shift
  for item in "$@"; do
    [[ $item == "$wanted" ]] && return 0
  done
  return 1
}

install_system_packages() {
  if [[ $with_system != true ]]; then
    say "skipping system packages (--no-system)"
    return
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    say "skipping system packages (no apt-get); the recipes need: ${SYSTEM_PACKAGES[*]}"
    return
  fi
  local missing=() package
  for package in "${SYSTEM_PACKAGES[@]}"; do
    is_installed "$package" || missing+=("$package")
  done
  if (( ${#missing[@]} == 0 )); then
    say "system packages present: ${SYSTEM_PACKAGES[*]}"
    return
  fi
  if (( $(id -u) != 0 )); then
    say "warning: not root, not installing missing system packages: ${missing[*]}" \
      "(run: sudo apt-get install ${missing[*]})" >&2
    return
  fi
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || say "warning: apt-get update failed; trying the package cache" >&2
  local failed_required=()
  for package in "${missing[@]}"; do
    if apt-get install -y -qq --no-install-recommends "$package"; then
      done_steps+=("installed $package")
    elif contains "$package" "${REQUIRED_PACKAGES[@]}"; then
      failed_required+=("$package")
    else
      say "warning: could not install optional package $package; some recipes need it" >&2
    fi
  done
  if (( ${#failed_required[@]} > 0 )); then
    die "could not install required system packages: ${failed_required[*]}"
  fi
}

check_python() {
  local python=${PYTHON:-python3}
  command -v "$python" >/dev/null || die "'$python' not found; install Python >= 3.10 or set PYTHON"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    die "$("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])') is older" \
      "than 3.10; set PYTHON to a newer interpreter"
  fi
  echo "$python"
}

expected=$(input_hash)
reason=$(staleness "$expected")

if [[ $check_only == true ]]; then
  if [[ -n $reason ]]; then
    say "out of date: $reason"
    exit 1
  fi
  say "up to date ($stamp)"
  exit 0
fi

if [[ -z $reason && $force != true ]]; then
  say "up to date; nothing to do (use --force to reinstall)"
  exit 0
fi

install_system_packages

if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
  python=$(check_python)
  say "creating $venv with $python"
  "$python" -m venv --clear "$venv" || die "could not create $venv"
  done_steps+=("created .venv")
fi
rm -f "$stamp"

say "upgrading pip"
"$venv/bin/python" -m pip install --quiet --upgrade pip || die "could not upgrade pip"
done_steps+=("upgraded pip")

say "installing latentdiff[test,bench] (editable) with tools/constraints.txt"
"$venv/bin/python" -m pip install --quiet -e '.[test,bench]' -c tools/constraints.txt \
  || die "pip install -e '.[test,bench]' -c tools/constraints.txt failed"
done_steps+=("installed latentdiff[test,bench]")

echo "$expected" >"$stamp"
summary=$(printf '%s, ' "${done_steps[@]}")
say "done: ${summary%, }"
