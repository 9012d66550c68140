#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt, clang 14, ASan + UBSan) into build-fuzz/ and runs
# each one for a bounded, deterministic number of inputs (-seed=1 -runs=N) on a copy of its checked-in seed
# corpus (tests/fuzz/corpus/<target>/), so the repository is never written. Exits non-zero on any crash,
# leak, timeout or out-of-memory, printing the reproducer path.
#
# Environment:
#   FUZZ_SECONDS=<s>     run each target for <s> seconds (-max_total_time) instead of a fixed -runs count
#   FUZZ_TARGETS="a b"   only these targets (default: all)
#   FUZZ_BUILD_DIR       build directory (default build-fuzz)
#   LOCKWATCH_JOBS       build parallelism (default nproc)
# Reproduce a crash: build-fuzz/<target> <reproducer file>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"

BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${LOCKWATCH_JOBS:-$(nproc)}"
CXX_FUZZ="${FUZZ_CXX:-clang++-14}"
CC_FUZZ="${FUZZ_CC:-clang-14}"

# target  runs  max_len
# target, inputs, max input length, seed corpus (default: the target's own folder under corpus/)
TARGETS=(
  "pg_decode_fuzz 80000 4096"
  "dump_reader_fuzz 30000 16384"
  "config_fuzz 45000 4096"
  "timeline_fuzz 10000 16384 dump_reader_fuzz"
  "rules_fuzz 20000 4096"
)

echo "==> fuzz: configure and build (${BUILD_DIR})"
cmake -S tests/fuzz -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_COMPILER="${CXX_FUZZ}" -DCMAKE_C_COMPILER="${CC_FUZZ}" >/dev/null
cmake --build "${BUILD_DIR}" -j "${JOBS}"

WORK="$(mktemp -d /tmp/lockwatch-fuzz.XXXXXX)"
trap 'rm -rf "${WORK}"' EXIT

failed=0
for spec in "${TARGETS[@]}"; do
  seeds=""
  read -r target runs max_len seeds <<<"${spec}"
  if [[ -n "${FUZZ_TARGETS:-}" && " ${FUZZ_TARGETS} " != *" ${target} "* ]]; then continue; fi
  corpus="${WORK}/${target}/corpus"
  artifacts="${WORK}/${target}/artifacts/"
  mkdir -p "${corpus}" "${artifacts}"
  cp tests/fuzz/corpus/"${seeds:-${target}}"/* "${corpus}/"
  if [[ -n "${FUZZ_SECONDS:-}" ]]; then
    limit=(-max_total_time="${FUZZ_SECONDS}")
  else
    limit=(-runs="${runs}")
  fi
  log="${WORK}/${target}/log"
  start=${SECONDS}
  rc=0
  "${BUILD_DIR}/${target}" -seed=1 "${limit[@]}" -max_len="${max_len}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="${artifacts}" "${corpus}" >"${log}" 2>&1 || rc=$?
  elapsed=$((SECONDS - start))
  if ((rc != 0)); then
    failed=1
    tail -n 60 "${log}"
    # Keep the reproducers: the work directory is removed on exit.
    keep="${BUILD_DIR}/crashes/${target}"
    mkdir -p "${keep}"
    cp "${artifacts}"* "${keep}/" 2>/dev/null || true
    echo "FAIL ${target} (exit ${rc}, ${elapsed} s); reproducer(s):"
    found="$(find "${keep}" -type f | sed 's/^/  /')"
    echo "${found:-  (none written)}"
    echo "  reproduce: ${BUILD_DIR}/${target} <reproducer>"
  else
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "${log}" | tail -n 1 || true)"
    echo "ok   ${target}: ${execs:-?} inputs, ${cov:-cov: ?}, corpus $(find "${corpus}" -type f | wc -l) files, ${elapsed} s"
  fi
done

if ((failed)); then
  echo "fuzz: FAILED"
  exit 1
fi
echo "fuzz: passed"
