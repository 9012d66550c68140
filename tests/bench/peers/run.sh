#!/usr/bin/env bash
# lockwatch against its peers on a real PostgreSQL 15, one command:
#   bash tests/bench/peers/run.sh            full run (15-25 min on 2 cores), writes tests/bench/report/peers.md
#                                             and tests/bench/report/peers.png
#   bash tests/bench/peers/run.sh --quick    small pile-ups, a few minutes, writes to <build dir>/peers-quick/
# It installs the peers and the plotter when missing (Debian packages pg-activity,
# prometheus-postgres-exporter, gnuplot-nox; apt only when something is missing), builds
# lockwatch_peers_bench (LOCKWATCH_BUILD_BENCH=ON), starts a throwaway cluster of its own sized for 2,000
# waiting sessions and 1,000,000 lock rows (Unix socket only, removed on exit), starts postgres_exporter on
# loopback against it, runs the measurements (tests/bench/peers/peers_bench.cc) and plots with gnuplot.
#
# Environment: PEERS_BUILD_DIR (default build-bench), PEERS_OUT (report directory), PEERS_REPS,
# PEERS_TIMEOUT_MS (statement_timeout of the peers' queries), PEERS_PGBENCH_SECONDS, PEERS_PGBENCH_REPS,
# LOCKWATCH_JOBS (build parallelism, default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "${ROOT}"
# shellcheck source=tests/pg_cluster.sh
source tests/pg_cluster.sh

QUICK=0
for arg in "$@"; do
  case "${arg}" in
    --quick) QUICK=1 ;;
    *)
      echo "usage: $0 [--quick]" >&2
      exit 2
      ;;
  esac
done
BUILD_DIR="${PEERS_BUILD_DIR:-build-bench}"
if ((QUICK)); then
  OUT="${PEERS_OUT:-${BUILD_DIR}/peers-quick}"
else
  OUT="${PEERS_OUT:-tests/bench/report}"
fi
PG_ACTIVITY_SQL=/usr/lib/python3/dist-packages/pgactivity/queries/get_blocking_post_090600.sql
EXPORTER_PID=""
CLUSTER_DIR=""

cleanup() {
  if [[ -n "${EXPORTER_PID}" ]]; then kill "${EXPORTER_PID}" 2>/dev/null || true; fi
  if [[ -n "${CLUSTER_DIR}" ]]; then lw_pg_stop "${CLUSTER_DIR}"; fi
}
trap cleanup EXIT

# 1. Packages.
missing=()
for pkg in pg-activity prometheus-postgres-exporter gnuplot-nox postgresql-15 libpq-dev libbenchmark-dev; do
  dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}" 2>/dev/null | grep -q '^ii' || missing+=("${pkg}")
done
if ((${#missing[@]})); then
  echo "peers: installing ${missing[*]}"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[[ -f "${PG_ACTIVITY_SQL}" ]] || { echo "peers: ${PG_ACTIVITY_SQL} not found (pg-activity 3.x)" >&2; exit 1; }

# 2. Build.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "${BUILD_DIR}" -G Ninja -DLOCKWATCH_WERROR=ON -DLOCKWATCH_BUILD_BENCH=ON "${launcher[@]}" >/dev/null
cmake --build "${BUILD_DIR}" --target lockwatch_peers_bench -j "${LOCKWATCH_JOBS:-2}"
BENCH="$(cd "${BUILD_DIR}" && pwd)/tests/bench/lockwatch_peers_bench"

# 3. A cluster of our own: pg_cluster.sh's settings do not fit 2,000 sessions and a million lock rows.
# The shared lock table holds max_locks_per_transaction * (max_connections + max_prepared_transactions)
# objects: 600 * 2,210 = 1,326,000 >= 1,000,000 advisory locks plus everything else.
SETTINGS="max_connections = 2200, max_locks_per_transaction = 600, shared_buffers = 256MB, fsync off, pg_stat_statements loaded"
CLUSTER_DIR="$(mktemp -d /tmp/lockwatch-pg.XXXXXX)"
((EUID == 0)) && chown postgres:postgres "${CLUSTER_DIR}"
lw_pg_as_owner "${PGBIN}/initdb" -D "${CLUSTER_DIR}/data" -U postgres --auth=trust --no-sync -E UTF8 \
  --locale=C.UTF-8 >"${CLUSTER_DIR}/initdb.log" 2>&1
PORT="$(lw_pg_free_port)"
lw_pg_as_owner tee -a "${CLUSTER_DIR}/data/postgresql.conf" >/dev/null <<CONF
# lockwatch peers benchmark cluster
listen_addresses = ''
port = ${PORT}
unix_socket_directories = '${CLUSTER_DIR}'
max_connections = 2200
max_prepared_transactions = 10
max_locks_per_transaction = 600
shared_buffers = 256MB
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 2000
autovacuum = off
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
logging_collector = off
log_min_messages = warning
CONF
lw_pg_as_owner "${PGBIN}/pg_ctl" -D "${CLUSTER_DIR}/data" -l "${CLUSTER_DIR}/postgres.log" -w -t 120 start >/dev/null
psql_admin() { "${PGBIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${CLUSTER_DIR}" -p "${PORT}" -U postgres "$@"; }
psql_admin -d postgres -c 'CREATE DATABASE lockwatch_bench' -c 'CREATE DATABASE lockwatch_pgbench' \
  -c 'CREATE ROLE lw_monitor LOGIN IN ROLE pg_monitor' -c 'CREATE ROLE lw_exporter LOGIN IN ROLE pg_monitor'
psql_admin -d lockwatch_bench -c 'CREATE EXTENSION pg_stat_statements' \
  -c "DO \$\$ BEGIN FOR r IN 0..9 LOOP EXECUTE format('CREATE TABLE lw_hot_%s (id int)', r); END LOOP; END \$\$"
"${PGBIN}/pgbench" -i -q -s 10 -h "${CLUSTER_DIR}" -p "${PORT}" -U postgres lockwatch_pgbench >/dev/null 2>&1
echo "peers: PostgreSQL $("${PGBIN}/postgres" --version | awk '{print $3}') on ${CLUSTER_DIR}/.s.PGSQL.${PORT}"

# 4. postgres_exporter on loopback, against the cluster's socket.
EXPORTER_PORT=19187
while ss -Hltn 2>/dev/null | awk '{print $4}' | grep -q ":${EXPORTER_PORT}\$"; do EXPORTER_PORT=$((EXPORTER_PORT + 1)); done
DATA_SOURCE_NAME="host=${CLUSTER_DIR} port=${PORT} user=lw_exporter dbname=lockwatch_bench sslmode=disable" \
  prometheus-postgres-exporter --web.listen-address="127.0.0.1:${EXPORTER_PORT}" \
  >"${CLUSTER_DIR}/exporter.log" 2>&1 &
EXPORTER_PID=$!
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:${EXPORTER_PORT}/metrics" -o /dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:${EXPORTER_PORT}/metrics" | grep -q '^pg_up 1' ||
  { echo "peers: postgres_exporter is not up:" >&2; cat "${CLUSTER_DIR}/exporter.log" >&2; exit 1; }
echo "peers: $(prometheus-postgres-exporter --version 2>&1 | head -n1) on 127.0.0.1:${EXPORTER_PORT}"

# 5. Measure. One connection per waiting session: raise the descriptor limit.
ulimit -n 16384
mkdir -p "${OUT}"
args=(run --host="${CLUSTER_DIR}" --port="${PORT}" --db=lockwatch_bench --pgbench-db=lockwatch_pgbench
  --exporter-address="127.0.0.1:${EXPORTER_PORT}" --exporter-pid="${EXPORTER_PID}"
  --pg-activity-sql="${PG_ACTIVITY_SQL}" --pgbench="${PGBIN}/pgbench" --out="${OUT}" --self="${BENCH}"
  --date="$(date -u '+%Y-%m-%d %H:%M UTC')" --settings="${SETTINGS}")
((QUICK)) && args+=(--quick)
[[ -n "${PEERS_REPS:-}" ]] && args+=(--reps="${PEERS_REPS}")
[[ -n "${PEERS_TIMEOUT_MS:-}" ]] && args+=(--timeout-ms="${PEERS_TIMEOUT_MS}")
[[ -n "${PEERS_PGBENCH_SECONDS:-}" ]] && args+=(--pgbench-seconds="${PEERS_PGBENCH_SECONDS}")
[[ -n "${PEERS_PGBENCH_REPS:-}" ]] && args+=(--pgbench-reps="${PEERS_PGBENCH_REPS}")
start=${SECONDS}
"${BENCH}" "${args[@]}"

# 6. Plot; the data files are intermediate.
gnuplot -e "datadir='${OUT}'" tests/bench/peers/plot.gp
cat tests/bench/peers/notes.md >>"${OUT}/peers.md"
rm -f "${OUT}/peers_waiters.dat" "${OUT}/peers_rows.dat"
echo "peers: done in $((SECONDS - start)) s: ${OUT}/peers.md, ${OUT}/peers.png"
