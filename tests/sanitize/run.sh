#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (gcc 12, -fno-sanitize-recover=all).
#   1. configures and builds build-asan/ (everything but the benchmarks; -O1 -g1, warnings not fatal: the
#      warning-clean build is the normal one)
#   2. uses the PostgreSQL cluster of LOCKWATCH_TEST_DSN when it is set (tests/run.sh starts one), otherwise
#      starts a throwaway cluster of its own (tests/pg_cluster.sh), removed again on exit
#   3. runs ctest: unit tests in parallel, then the PostgreSQL tests one at a time. Labels "packaging" (dpkg
#      install of the package: not for an instrumented binary) and "static" (Python checks of dashboards and
#      rules: no C++ under test) are left out.
# Every sanitizer report is written to a log file (log_path), so a report from a child process whose exit
# status a test does not look at (the `lockwatch` binary started by the end-to-end tests) still fails the
# run. Exits non-zero on any test failure or any sanitizer report.
#
# The soak test (label "soak") is left out too: it asserts the production binary's resident memory, which
# ASan's shadow memory and quarantine make meaningless, and it is the longest test; it runs uninstrumented in
# the test command.
#
# Usage: tests/sanitize/run.sh [build|test|all]   (default all; tests/run.sh builds in the background while the
# uninstrumented PostgreSQL tests run, then runs the tests)
#
# Environment: SANITIZE_BUILD_DIR (default build-asan), LOCKWATCH_JOBS (default nproc), SANITIZE_CTEST_ARGS
# (extra ctest arguments, e.g. "-R Analysis"), LOCKWATCH_TEST_DSN (reuse that cluster).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
# shellcheck source=tests/pg_cluster.sh
source tests/pg_cluster.sh

PHASE="${1:-all}"
case "${PHASE}" in
  build | test | all) ;;
  *)
    echo "usage: $0 [build|test|all]" >&2
    exit 2
    ;;
esac
BUILD_DIR="${SANITIZE_BUILD_DIR:-build-asan}"
JOBS="${LOCKWATCH_JOBS:-$(nproc)}"
START=${SECONDS}
OWN_CLUSTER=0
REPORT_DIR=""

on_exit() {
  local rc=$?
  if ((OWN_CLUSTER)); then lw_pg_stop; fi
  echo "sanitize: $([[ ${rc} == 0 ]] && echo PASSED || echo FAILED) in $((SECONDS - START)) s"
  exit "${rc}"
}
trap on_exit EXIT

if [[ "${PHASE}" != test ]]; then
  FLAGS="-O1 -g1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
  launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  echo "==> sanitize: configure ${BUILD_DIR}"
  # A build type of its own: the top-level Release flags (-O2 -DNDEBUG) must not be appended, and assertions
  # stay on.
  cmake -S . -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DLOCKWATCH_WERROR=OFF \
    -DLOCKWATCH_BUILD_BENCH=OFF "${launcher[@]}" \
    -DCMAKE_CXX_FLAGS="${FLAGS}" -DCMAKE_C_FLAGS="${FLAGS}" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  build_start=${SECONDS}
  echo "==> sanitize: build (${JOBS} jobs)"
  cmake --build "${BUILD_DIR}" -j "${JOBS}"
  echo "==> sanitize: build took $((SECONDS - build_start)) s"
fi
if [[ "${PHASE}" == build ]]; then exit 0; fi

REPORT_DIR="$(cd "${BUILD_DIR}" && pwd)/sanitizer-reports"
rm -rf "${REPORT_DIR}"
mkdir -p "${REPORT_DIR}"
SUPP="${ROOT}/tests/sanitize/lsan.supp"
# halt_on_error: the first report ends the process. detect_leaks: LeakSanitizer at exit. Reports go to
# ${REPORT_DIR}/<tool>.<pid>; stderr stays free for the tests' own output.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=${REPORT_DIR}/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=${REPORT_DIR}/ubsan"
export LSAN_OPTIONS="suppressions=${SUPP}:print_suppressions=0"

if [[ -z "${LOCKWATCH_TEST_DSN:-}" ]]; then
  echo "==> sanitize: starting a throwaway PostgreSQL cluster"
  OWN_CLUSTER=1
  # The server itself is not instrumented: keep the sanitizer settings away from it.
  (unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS && lw_pg_start && declare -p LW_PG_DIR LW_PG_SOCKDIR LW_PG_PORT \
    LOCKWATCH_TEST_DSN >"${REPORT_DIR}/../sanitize-cluster.env")
  # shellcheck disable=SC1091
  source "${REPORT_DIR}/../sanitize-cluster.env"
  export LW_PG_DIR LW_PG_SOCKDIR LW_PG_PORT LOCKWATCH_TEST_DSN
fi
echo "LOCKWATCH_TEST_DSN=${LOCKWATCH_TEST_DSN}"

extra=()
if [[ -n "${SANITIZE_CTEST_ARGS:-}" ]]; then read -r -a extra <<<"${SANITIZE_CTEST_ARGS}"; fi
rc=0
test_start=${SECONDS}
echo "==> sanitize: unit tests"
ctest --test-dir "${BUILD_DIR}" --output-on-failure --timeout 600 -LE 'pg|packaging|static|soak' -j "${JOBS}" \
  "${extra[@]}" || rc=1
echo "==> sanitize: PostgreSQL tests"
ctest --test-dir "${BUILD_DIR}" --output-on-failure --timeout 900 -L pg -LE 'packaging|static|soak' -j 1 \
  "${extra[@]}" || rc=1
echo "==> sanitize: tests took $((SECONDS - test_start)) s"

shopt -s nullglob
reports=("${REPORT_DIR}"/*)
if ((${#reports[@]} != 0)); then
  rc=1
  echo "==> sanitize: ${#reports[@]} sanitizer report(s):"
  for f in "${reports[@]}"; do
    echo "---- ${f}"
    head -n 80 "${f}"
  done
else
  echo "==> sanitize: no sanitizer reports"
fi
exit "${rc}"
