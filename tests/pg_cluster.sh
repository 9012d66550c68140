#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and the demo: data and socket in a fresh temporary directory,
# Unix socket only (no TCP), fsync off, autovacuum off.
#
# As a library (source it):
#   lw_pg_start            starts a cluster; exports LW_PG_DIR, LW_PG_SOCKDIR, LW_PG_PORT, PGBIN,
#                          LOCKWATCH_TEST_DSN ("host=<sockdir> port=<port> user=postgres dbname=lockwatch_test")
#   lw_pg_stop             stops it and removes LW_PG_DIR (idempotent; safe in an EXIT trap)
#   lw_psql [args...]      psql against the cluster as the postgres superuser, database lockwatch_test
# As a command:
#   bash tests/pg_cluster.sh start       prints `export ...` lines to eval
#   bash tests/pg_cluster.sh stop DIR    stops the cluster living in DIR and removes DIR
#
# Root is dropped to the `postgres` user (PostgreSQL refuses to run as root); any other user runs it as itself.

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"

# Runs a command as the cluster owner.
lw_pg_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Prints the first port from 55432 upward with no PostgreSQL socket in the usual places and no TCP listener.
lw_pg_free_port() {
  local port listening=""
  if command -v ss >/dev/null 2>&1; then
    listening="$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)"
  fi
  for ((port = 55432; port < 55632; port++)); do
    if [[ -e "/tmp/.s.PGSQL.${port}" || -e "/var/run/postgresql/.s.PGSQL.${port}" ]]; then
      continue
    fi
    if grep -qx "${port}" <<<"${listening}"; then
      continue
    fi
    if compgen -G "/tmp/lockwatch-pg.*/.s.PGSQL.${port}" >/dev/null; then
      continue
    fi
    echo "${port}"
    return 0
  done
  echo "pg_cluster: no free port in 55432..55631" >&2
  return 1
}

lw_pg_start() {
  if [[ ! -x "${PGBIN}/initdb" ]]; then
    echo "pg_cluster: ${PGBIN}/initdb not found (install postgresql-15)" >&2
    return 1
  fi
  LW_PG_DIR="$(mktemp -d /tmp/lockwatch-pg.XXXXXX)" || return 1
  export LW_PG_DIR
  export LW_PG_SOCKDIR="${LW_PG_DIR}"
  if ((EUID == 0)); then
    chown postgres:postgres "${LW_PG_DIR}"
  fi
  local data="${LW_PG_DIR}/data" log="${LW_PG_DIR}/postgres.log"
  if ! lw_pg_as_owner "${PGBIN}/initdb" -D "${data}" -U postgres --auth=trust --no-sync -E UTF8 \
    --locale=C.UTF-8 >"${LW_PG_DIR}/initdb.log" 2>&1; then
    echo "pg_cluster: initdb failed:" >&2
    cat "${LW_PG_DIR}/initdb.log" >&2
    return 1
  fi
  LW_PG_PORT="$(lw_pg_free_port)" || return 1
  export LW_PG_PORT
  lw_pg_as_owner tee -a "${data}/postgresql.conf" >/dev/null <<CONF
# lockwatch throwaway test cluster
listen_addresses = ''
port = ${LW_PG_PORT}
unix_socket_directories = '${LW_PG_SOCKDIR}'
max_connections = 300
max_prepared_transactions = 20
autovacuum = off
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_worker_processes = 16
max_parallel_workers = 8
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %a: '
CONF
  if ! lw_pg_as_owner "${PGBIN}/pg_ctl" -D "${data}" -l "${log}" -w -t 60 start >/dev/null; then
    echo "pg_cluster: server did not start; log:" >&2
    cat "${log}" >&2 || true
    return 1
  fi
  export PGBIN
  export LOCKWATCH_TEST_DSN="host=${LW_PG_SOCKDIR} port=${LW_PG_PORT} user=postgres dbname=lockwatch_test"
  if ! lw_pg_as_owner "${PGBIN}/psql" -X -q -h "${LW_PG_SOCKDIR}" -p "${LW_PG_PORT}" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -c 'CREATE DATABASE lockwatch_test' >/dev/null; then
    echo "pg_cluster: CREATE DATABASE lockwatch_test failed" >&2
    return 1
  fi
  echo "pg_cluster: PostgreSQL $("${PGBIN}/postgres" --version | awk '{print $3}') on socket" \
    "${LW_PG_SOCKDIR}/.s.PGSQL.${LW_PG_PORT} (dir ${LW_PG_DIR})" >&2
}

lw_psql() {
  "${PGBIN}/psql" -X -q -h "${LW_PG_SOCKDIR}" -p "${LW_PG_PORT}" -U postgres -d lockwatch_test "$@"
}

# Stops the cluster in LW_PG_DIR (or $1) and removes the directory. Never fails.
lw_pg_stop() {
  local dir="${1:-${LW_PG_DIR:-}}"
  if [[ -z "${dir}" || ! -d "${dir}" ]]; then
    return 0
  fi
  case "${dir}" in
    /tmp/lockwatch-pg.*) ;;
    *)
      echo "pg_cluster: refusing to remove ${dir} (not a lockwatch-pg temp dir)" >&2
      return 0
      ;;
  esac
  if [[ -f "${dir}/data/postmaster.pid" ]]; then
    local pid
    pid="$(head -n1 "${dir}/data/postmaster.pid" 2>/dev/null || true)"
    lw_pg_as_owner "${PGBIN}/pg_ctl" -D "${dir}/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    # The postmaster is gone after a successful stop; make sure even when pg_ctl failed.
    if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  fi
  rm -rf -- "${dir}"
  if [[ "${dir}" == "${LW_PG_DIR:-}" ]]; then
    unset LW_PG_DIR LW_PG_SOCKDIR LW_PG_PORT LOCKWATCH_TEST_DSN
  fi
  return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    start)
      lw_pg_start
      printf 'export LW_PG_DIR=%q LW_PG_SOCKDIR=%q LW_PG_PORT=%q PGBIN=%q LOCKWATCH_TEST_DSN=%q\n' \
        "${LW_PG_DIR}" "${LW_PG_SOCKDIR}" "${LW_PG_PORT}" "${PGBIN}" "${LOCKWATCH_TEST_DSN}"
      ;;
    stop)
      [[ -n "${2:-}" ]] || { echo "usage: $0 stop DIR" >&2; exit 2; }
      lw_pg_stop "$2"
      ;;
    *)
      echo "usage: $0 start | stop DIR" >&2
      exit 2
      ;;
  esac
fi
