#!/usr/bin/env bash
# The test command: `bash tests/run.sh` (as root on Debian 12, or as a user with the packages installed).
#   1. installs missing build/test packages (tests/deps.sh; apt only when something is missing)
#   2. configures and builds everything into build/ with warnings as errors
#   3. checks style: clang-format 14 (all C++ under agent/ and tests/), clang-tidy 14 (agent/**/*.cc)
#   4. starts a throwaway PostgreSQL 15 cluster (tests/pg_cluster.sh), removed again on any exit
#   5. runs ctest: unit tests in parallel, then the PostgreSQL tests (label "pg") one at a time
#   6. runs the suite again under AddressSanitizer + UndefinedBehaviorSanitizer (tests/sanitize/run.sh; built
#      in build-asan/ in the background while the PostgreSQL tests run)
#   7. builds the libFuzzer targets (tests/fuzz, clang-14) and runs each for a fixed number of inputs
# Exits non-zero on any failure. Safe to run repeatedly; build/ is reused incrementally.
#
# Environment: LOCKWATCH_BUILD_DIR (default build), LOCKWATCH_BUILD_TYPE (default Release), LOCKWATCH_RANDOM_SEED / LOCKWATCH_RANDOM_CASES (randomized
# differential test), LOCKWATCH_JOBS (default nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=tests/deps.sh
source tests/deps.sh
# shellcheck source=tests/pg_cluster.sh
source tests/pg_cluster.sh

BUILD_DIR="${LOCKWATCH_BUILD_DIR:-build}"
JOBS="${LOCKWATCH_JOBS:-$(nproc)}"
LOG_DIR="${BUILD_DIR}/test-logs"
RUN_START=${SECONDS}
STAGE_SUMMARY=()
STYLE_RESULT="not run"
UNIT_RESULT="not run"
PG_RESULT="not run"
FUZZ_RESULT="not run"
SANITIZE_RESULT="not run"

summary() {
  local rc=$1 status="PASSED"
  ((rc == 0)) || status="FAILED"
  echo
  echo "==> stage timings: ${STAGE_SUMMARY[*]:-none}"
  echo "lockwatch tests: ${status} (style: ${STYLE_RESULT}; unit: ${UNIT_RESULT}; pg: ${PG_RESULT}; sanitize: ${SANITIZE_RESULT}; fuzz: ${FUZZ_RESULT})" \
    "in $((SECONDS - RUN_START)) s"
}

TIDY_PID=""
SANITIZE_BUILD_PID=""
# Stops a background stage and its children.
stop_background() {
  local pid=$1
  [[ -n "${pid}" ]] || return 0
  pkill -TERM -P "${pid}" 2>/dev/null || true
  kill "${pid}" 2>/dev/null || true
}
on_exit() {
  local rc=$?
  stop_background "${TIDY_PID}"
  stop_background "${SANITIZE_BUILD_PID}"
  lw_pg_stop
  summary "${rc}"
  exit "${rc}"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_stage NAME COMMAND...: runs a stage, records its duration, stops the run when it fails.
run_stage() {
  local name=$1
  shift
  local start=${SECONDS} rc=0
  echo
  echo "==> ${name}"
  "$@" || rc=$?
  STAGE_SUMMARY+=("${name}=$((SECONDS - start))s")
  echo "==> ${name}: $([[ ${rc} == 0 ]] && echo ok || echo "FAILED (exit ${rc})") in $((SECONDS - start)) s"
  return "${rc}"
}

tool() {
  # Prefer the versioned binary: the style rules are written for clang 14.
  if command -v "$1-14" >/dev/null 2>&1; then echo "$1-14"; else echo "$1"; fi
}

stage_configure() {
  lw_configure "${BUILD_DIR}"
}

stage_build() {
  cmake --build "${BUILD_DIR}" -j "${JOBS}"
}

cxx_sources() {
  find agent tests -type f \( -name '*.h' -o -name '*.cc' \) -print0 | sort -z
}

stage_format() {
  local clang_format n
  clang_format="$(tool clang-format)"
  n="$(cxx_sources | tr -cd '\0' | wc -c)"
  echo "$(${clang_format} --version | head -n1): ${n} files"
  cxx_sources | xargs -0 -r "${clang_format}" --dry-run --Werror
}

stage_tidy() {
  local clang_tidy files=() f log="${LOG_DIR}/clang-tidy.log"
  clang_tidy="$(tool clang-tidy)"
  mkdir -p "${LOG_DIR}"
  # Only translation units the build knows (compile_commands.json gives their flags).
  while IFS= read -r -d '' f; do
    if grep -qF "\"file\": \"${ROOT}/${f}\"" "${BUILD_DIR}/compile_commands.json"; then
      files+=("${f}")
    else
      echo "clang-tidy: ${f} is not part of the build; skipped"
    fi
  done < <(find agent -type f -name '*.cc' -print0 | sort -z)
  echo "$(${clang_tidy} --version | grep -i version | head -n1): ${#files[@]} files, ${JOBS} in parallel"
  local rc=0
  printf '%s\0' "${files[@]}" |
    xargs -0 -r -n 1 -P "${JOBS}" "${clang_tidy}" -p "${BUILD_DIR}" --quiet >"${log}" 2>&1 || rc=$?
  # Any diagnostic fails the stage, even one not promoted to an error.
  if grep -E ': (warning|error): ' "${log}"; then
    rc=1
  fi
  if ((rc != 0)); then
    echo "clang-tidy found problems (full log: ${log})"
    grep -vE '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter' "${log}" | tail -n 200
  fi
  return "${rc}"
}

stage_postgres() {
  lw_pg_start || return 1
  echo "LOCKWATCH_TEST_DSN=${LOCKWATCH_TEST_DSN}"
}

# ctest_stage RESULT_VAR ARGS...: runs ctest and stores "passed/total" (or the failure line) in RESULT_VAR.
ctest_stage() {
  local result_var=$1
  shift
  local log rc=0 line
  log="$(mktemp)"
  ctest --test-dir "${BUILD_DIR}" --output-on-failure --timeout 300 "$@" 2>&1 | tee "${log}" || rc=$?
  line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "${log}" | tail -n1 || true)"
  if grep -q 'No tests were found' "${log}"; then
    line="no tests found"
    rc=1
  fi
  rm -f "${log}"
  printf -v "${result_var}" '%s' "${line:-ctest exit ${rc}}"
  return "${rc}"
}

export CI="${CI:-}"
echo "lockwatch test command: root ${ROOT}, build dir ${BUILD_DIR}, ${JOBS} jobs"
run_stage deps lw_install_deps
run_stage configure stage_configure
run_stage build stage_build
# Style failures do not stop the run: the tests still tell whether the code works.
style_rc=0
run_stage clang-format stage_format || style_rc=1
# clang-tidy is the slowest stage and needs nothing but the build: it runs in the background while the tests
# run, and its result is collected at the end.
mkdir -p "${LOG_DIR}"
TIDY_START=${SECONDS}
# At a lower priority than the tests, whose timing matters more.
( (renice -n 10 -p "${BASHPID}" >/dev/null || true) && stage_tidy >"${LOG_DIR}/clang-tidy-stage.log" 2>&1) &
TIDY_PID=$!
echo
echo "==> clang-tidy: started in the background (pid ${TIDY_PID})"
run_stage postgres stage_postgres
unit_rc=0
pg_rc=0
run_stage unit-tests ctest_stage UNIT_RESULT -LE pg -j "${JOBS}" || unit_rc=$?
# The instrumented build needs nothing but the sources: it is compiled (at a lower priority) while the
# PostgreSQL tests, which mostly wait on the server, run.
SANITIZE_BUILD_START=${SECONDS}
(nice -n 10 bash tests/sanitize/run.sh build >"${LOG_DIR}/sanitize-build.log" 2>&1) &
SANITIZE_BUILD_PID=$!
echo
echo "==> sanitize build: started in the background (pid ${SANITIZE_BUILD_PID}, log ${LOG_DIR}/sanitize-build.log)"
# PostgreSQL tests inspect server-wide lock state: one at a time.
run_stage pg-tests ctest_stage PG_RESULT -L pg -j 1 || pg_rc=$?
sanitize_rc=0
wait "${SANITIZE_BUILD_PID}" || sanitize_rc=$?
SANITIZE_BUILD_PID=""
tail -n 3 "${LOG_DIR}/sanitize-build.log"
STAGE_SUMMARY+=("sanitize-build=$((SECONDS - SANITIZE_BUILD_START))s(background)")
if ((sanitize_rc != 0)); then
  echo "==> sanitize build: FAILED (exit ${sanitize_rc})"
  tail -n 100 "${LOG_DIR}/sanitize-build.log"
  SANITIZE_RESULT="build FAILED"
else
  # The same cluster; the instrumented binaries are the ones under test.
  run_stage sanitize bash tests/sanitize/run.sh test || sanitize_rc=$?
  SANITIZE_RESULT=$([[ ${sanitize_rc} == 0 ]] && echo "ok (ASan+UBSan)" || echo FAILED)
fi
# libFuzzer targets (clang-14, ASan+UBSan) over the decoders and parsers: fixed seed and run counts, so the
# result is reproducible.
fuzz_rc=0
run_stage fuzz bash tests/fuzz/run.sh || fuzz_rc=$?
FUZZ_RESULT=$([[ ${fuzz_rc} == 0 ]] && echo ok || echo FAILED)
tidy_rc=0
wait "${TIDY_PID}" || tidy_rc=$?
TIDY_PID=""
echo
echo "==> clang-tidy"
cat "${LOG_DIR}/clang-tidy-stage.log"
STAGE_SUMMARY+=("clang-tidy=$((SECONDS - TIDY_START))s(background)")
echo "==> clang-tidy: $([[ ${tidy_rc} == 0 ]] && echo ok || echo "FAILED (exit ${tidy_rc})")" \
  "in $((SECONDS - TIDY_START)) s (overlapping the tests)"
((tidy_rc == 0)) || style_rc=1
STYLE_RESULT=$([[ ${style_rc} == 0 ]] && echo ok || echo FAILED)
# ctest hides the output of passing tests; show what the randomized differential test covered.
grep -h '^random differential:' "${BUILD_DIR}/Testing/Temporary/LastTest.log" 2>/dev/null || true
if ((style_rc != 0 || unit_rc != 0 || pg_rc != 0 || sanitize_rc != 0 || fuzz_rc != 0)); then
  exit 1
fi
