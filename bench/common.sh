# SPDX-License-Identifier: MIT
# common.sh - sourced by the bench scripts that run against a build
# directory given as their first argument (data.sh, run.sh).

# bench_build SCRIPT "$@": BUILD, the absolute path of the build
# directory "$1", and STORED and CTL, its eventfold-stored and
# eventfoldctl. Without an argument, prints SCRIPT's usage and exits 2;
# exits 2 as well if the directory is not there.
bench_build() {
  local script="$1"
  shift
  if [ $# -lt 1 ]; then
    echo "usage: bench/$script BUILD_DIR" >&2
    exit 2
  fi
  BUILD="$(cd "$1" && pwd)" || exit 2
  STORED="$BUILD/daemons/stored/eventfold-stored"
  CTL="$BUILD/clients/eventfoldctl/eventfoldctl"
}
