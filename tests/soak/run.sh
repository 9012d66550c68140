#!/usr/bin/env bash
# Builds the agent and the soak test, then runs the soak for SECONDS (default 600, i.e. 10 minutes) against
# a PostgreSQL 15 cluster of its own. Needs root (or unprivileged user namespaces) for the private tmpfs
# that holds the agent's dump directory.
#
#   tests/soak/run.sh [SECONDS]        e.g. tests/soak/run.sh 600
#   BUILD_DIR=build-soak tests/soak/run.sh 90
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-${LOCKWATCH_SOAK_SECONDS:-600}}"
build="${BUILD_DIR:-${repo}/build-soak}"
case "${build}" in /*) ;; *) build="${repo}/${build}" ;; esac

if [[ ! "${seconds}" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [[ ! -f "${build}/CMakeCache.txt" ]]; then
  cmake -S "${repo}" -B "${build}" -G Ninja "${launcher[@]}"
fi
cmake --build "${build}" --target lockwatch lockwatch_soak_test -j"${JOBS:-2}"

binary="$(find "${build}" -name lockwatch_soak_test -type f -perm -u+x | head -n1)"
if [[ -z "${binary}" ]]; then
  echo "run.sh: lockwatch_soak_test was not built in ${build}" >&2
  exit 1
fi
echo "run.sh: soak for ${seconds} s" >&2
LOCKWATCH_SOAK_SECONDS="${seconds}" exec "${binary}" --gtest_color=no
