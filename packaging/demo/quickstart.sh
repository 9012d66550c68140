#!/usr/bin/env bash
# lockwatch quick start: `bash packaging/demo/quickstart.sh` (as root on a fresh Debian 12 machine).
#
# Installs what is missing, builds lockwatch (build/), starts a throwaway PostgreSQL 15 (Unix socket only, in a
# temporary directory), and stages a classic lock pile-up with real sessions:
#   batch-job        BEGIN; UPDATE accounts ... WHERE id = 7;  then goes idle, transaction left open
#   payments-worker  UPDATE accounts ... WHERE id = 7          (3 sessions, wait for the row)
#   migration        ALTER TABLE accounts ADD COLUMN note text (waits for the table, queues everyone behind it)
#   mobile-api       SELECT ... FROM accounts                  (30 sessions, stuck behind the ALTER)
# then shows `lockwatch tree` and `lockwatch tree --json`, and runs the agent (`lockwatch run`) so its Prometheus
# metrics can be seen at http://127.0.0.1:${LOCKWATCH_DEMO_PORT:-9817}/metrics. Everything is removed on exit
# (also on Ctrl-C).
#
# Environment: LOCKWATCH_DEMO_HOLD_S  how long to keep the pile-up (default: until Enter on a terminal,
#                                     60 s otherwise; 0 = clean up at once)
#              LOCKWATCH_DEMO_READERS number of mobile-api sessions (default 30)
#              LOCKWATCH_DEMO_PORT    port of the agent's metrics endpoint on 127.0.0.1 (default 9817)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
# shellcheck source=tests/deps.sh
source tests/deps.sh
# shellcheck source=tests/pg_cluster.sh
source tests/pg_cluster.sh

BUILD_DIR="${LOCKWATCH_BUILD_DIR:-build}"
READERS="${LOCKWATCH_DEMO_READERS:-30}"
PORT="${LOCKWATCH_DEMO_PORT:-9817}"
ROW_WAITERS=3
DEMO_DIR=""
BG_PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  echo
  echo "==> cleaning up"
  exec 7>&-  # EOF to the idle batch-job session
  local pid
  for pid in "${BG_PIDS[@]}"; do
    kill "${pid}" 2>/dev/null || true
  done
  lw_pg_stop
  for pid in "${BG_PIDS[@]}"; do
    wait "${pid}" 2>/dev/null || true
  done
  if [[ -n "${DEMO_DIR}" ]]; then
    rm -rf -- "${DEMO_DIR}"
  fi
  echo "==> done"
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> dependencies"
lw_install_deps

echo "==> building lockwatch (${BUILD_DIR}/)"
# Same configuration as tests/run.sh, so both share one incremental build directory.
lw_configure "${BUILD_DIR}" >/dev/null
cmake --build "${BUILD_DIR}" --target lockwatch -j "$(nproc)"
LOCKWATCH="${ROOT}/${BUILD_DIR}/lockwatch"
if [[ ! -x "${LOCKWATCH}" ]]; then
  LOCKWATCH="$(find "${BUILD_DIR}" -type f -name lockwatch -perm -u+x | head -n1)"
fi
[[ -x "${LOCKWATCH}" ]] || { echo "lockwatch binary not found under ${BUILD_DIR}" >&2; exit 1; }

echo "==> starting a throwaway PostgreSQL 15"
lw_pg_start
DSN="${LOCKWATCH_TEST_DSN}"
DEMO_DIR="$(mktemp -d /tmp/lockwatch-demo.XXXXXX)"

lw_psql -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
INSERT INTO accounts SELECT g, 'customer ' || g, 1000 FROM generate_series(1, 10000) g;
ANALYZE accounts;
SQL

# psql in the background as application `name`; output goes to a log in DEMO_DIR.
bg_psql() {
  local name=$1
  shift
  "${PGBIN}/psql" -X -q "${DSN} application_name=${name}" "$@" >>"${DEMO_DIR}/${name}.log" 2>&1 &
  BG_PIDS+=($!)
}

# Waits until `count` sessions of application `name` wait on a lock.
wait_for_waiters() {
  local name=$1 count=$2 n=0 i
  for ((i = 0; i < 300; i++)); do
    n="$(lw_psql -At -c "SELECT count(*) FROM pg_stat_activity
                         WHERE application_name = '${name}' AND wait_event_type = 'Lock'")"
    if ((n >= count)); then
      return 0
    fi
    sleep 0.1
  done
  echo "only ${n}/${count} ${name} sessions are waiting after 30 s" >&2
  return 1
}

echo "==> starting the agent: lockwatch run (metrics on http://127.0.0.1:${PORT}/metrics)"
# Incidents open at the usual thresholds and, for the demo, resolve after 5 quiet seconds; dumps go to the
# demo's directory.
cat >"${DEMO_DIR}/lockwatch.yaml" <<YAML
incidents:
  resolve_after: 5s
dumps:
  dir: ${DEMO_DIR}/dumps
YAML
"${LOCKWATCH}" run --config "${DEMO_DIR}/lockwatch.yaml" --dsn "${DSN}" --listen "127.0.0.1:${PORT}" --interval 1s \
  >>"${DEMO_DIR}/agent.log" 2>&1 &
BG_PIDS+=($!)
AGENT_PID=$!
for ((i = 0; i < 50; i++)); do
  curl -fsS "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:${PORT}/healthz" >/dev/null || {
  echo "the agent did not start; its log:" >&2
  cat "${DEMO_DIR}/agent.log" >&2
  exit 1
}

echo "==> staging the pile-up"
# The culprit: a transaction that updated a row and went idle without committing. psql reads its commands
# from a FIFO that stays open, so the session sits "idle in transaction".
mkfifo "${DEMO_DIR}/batch-job.in"
"${PGBIN}/psql" -X -q "${DSN} application_name=batch-job" <"${DEMO_DIR}/batch-job.in" \
  >>"${DEMO_DIR}/batch-job.log" 2>&1 &
BG_PIDS+=($!)
exec 7>"${DEMO_DIR}/batch-job.in"
echo "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 7;" >&7
for ((i = 0; i < 100; i++)); do
  [[ "$(lw_psql -At -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'batch-job'
                        AND state = 'idle in transaction'")" == 1 ]] && break
  sleep 0.1
done
echo "  batch-job: idle in transaction, holding row 7"

for ((i = 0; i < ROW_WAITERS; i++)); do
  bg_psql payments-worker -c "UPDATE accounts SET balance = balance + 10 WHERE id = 7"
  wait_for_waiters payments-worker $((i + 1))
done
echo "  payments-worker: ${ROW_WAITERS} sessions waiting for row 7"

bg_psql migration -c "ALTER TABLE accounts ADD COLUMN note text"
wait_for_waiters migration 1
echo "  migration: ALTER TABLE waiting for the table"

for ((i = 0; i < READERS; i++)); do
  bg_psql mobile-api -c "SELECT count(*) FROM accounts WHERE balance > 0"
done
wait_for_waiters mobile-api "${READERS}"
echo "  mobile-api: ${READERS} sessions stuck behind the ALTER"

echo
echo "==> ${LOCKWATCH} tree --dsn \"${DSN}\""
time "${LOCKWATCH}" tree --dsn "${DSN}" || echo "(lockwatch tree exited with status $?)"

echo
echo "==> ${LOCKWATCH} tree --json --dsn ... | head -n 40"
"${LOCKWATCH}" tree --json --dsn "${DSN}" | head -n 40 || true

echo
echo "==> the agent's metrics during the pile-up: curl -s http://127.0.0.1:${PORT}/metrics | grep ..."
sleep 2  # at least one poll of the agent after the pile-up formed
curl -fsS "http://127.0.0.1:${PORT}/metrics" |
  grep -E '^lockwatch_(up|blocked_sessions|root_blockers|root_blocker_max_blocked_sessions|blocking_chain_max_depth|lock_wait_max_seconds|root_blocker_max_idle_in_transaction_seconds|last_poll_server_seconds|poll_duration_seconds_sum|polls_total)[{ ]|^process_resident_memory_bytes' ||
  echo "(could not scrape the agent; its log is ${DEMO_DIR}/agent.log)"
kill -0 "${AGENT_PID}" 2>/dev/null && echo "agent pid ${AGENT_PID} is running; log: ${DEMO_DIR}/agent.log"

echo
echo "The pile-up is still running; try it yourself:"
echo "  ${LOCKWATCH} tree --dsn \"${DSN}\""
echo "  ${LOCKWATCH} top --dsn \"${DSN}\"      # live view; q quits"
echo "  curl -s http://127.0.0.1:${PORT}/metrics | grep ^lockwatch_"
HOLD="${LOCKWATCH_DEMO_HOLD_S:-}"
if [[ -z "${HOLD}" && -t 0 ]]; then
  read -r -p "Press Enter to end the pile-up (batch-job commits)... " _ || true
else
  HOLD="${HOLD:-20}"
  echo "The batch job commits in ${HOLD} s (LOCKWATCH_DEMO_HOLD_S)."
  sleep "${HOLD}"
fi

echo
echo "==> batch-job commits; everyone proceeds and the incident resolves 5 s later"
echo "COMMIT;" >&7
DUMP=""
for ((i = 0; i < 300; i++)); do
  DUMP="$(find "${DEMO_DIR}/dumps" -name '*.dump.gz' 2>/dev/null | head -n1)"
  [[ -n "${DUMP}" ]] && break
  sleep 0.1
done
if [[ -z "${DUMP}" ]]; then
  echo "no incident dump appeared; the agent's log is ${DEMO_DIR}/agent.log" >&2
else
  echo
  echo "==> the incident dump: ${LOCKWATCH} analyze ${DUMP}"
  "${LOCKWATCH}" analyze "${DUMP}" || echo "(lockwatch analyze exited with status $?)"
  "${LOCKWATCH}" report "${DUMP}" -o "${DEMO_DIR}/report.html" &&
    echo "(an HTML report of it: ${DEMO_DIR}/report.html, removed at clean-up)"
fi
