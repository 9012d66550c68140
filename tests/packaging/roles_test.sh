#!/usr/bin/env bash
# packaging/sql/roles.sql against the test cluster (LOCKWATCH_TEST_DSN, a superuser): applied twice (idempotent),
# the roles have the documented attributes, memberships and settings, and `lockwatch tree` connected as
# lockwatch_monitor sees another role's blocking session with its query text.
# Usage: roles_test.sh ROLES_SQL LOCKWATCH_BINARY
set -uo pipefail

readonly roles_sql=$1 binary=$2
failures=0
checks=0
pass() { checks=$((checks + 1)); echo "ok   - $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL - $*"; }
die() { echo "FAIL - $*"; exit 1; }

[[ -n ${LOCKWATCH_TEST_DSN:-} ]] ||
  die "LOCKWATCH_TEST_DSN is not set: start a PostgreSQL 15 test cluster (eval \"\$(bash tests/pg_cluster.sh start)\")"
command -v psql >/dev/null || die "psql not found (package postgresql-client-15)"
[[ -x ${binary} ]] || die "${binary} is not built"

admin=("psql" "${LOCKWATCH_TEST_DSN}" -X -q -v ON_ERROR_STOP=1 -At)
sql() { "${admin[@]}" -c "$1"; }
marker="lw_roles_probe_$$"
work=$(mktemp -d /tmp/lockwatch-roles-test.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "${p}" 2>/dev/null; done
  sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()" >/dev/null 2>&1
  wait 2>/dev/null
  sql "DROP TABLE IF EXISTS ${marker}; DROP ROLE IF EXISTS ${marker}_app" >/dev/null 2>&1
  rm -rf "${work}"
}
trap cleanup EXIT

# --- apply twice --------------------------------------------------------------------------------------------------
for round in 1 2; do
  if "${admin[@]}" -f "${roles_sql}" >"${work}/apply.log" 2>&1; then pass "roles.sql applies (round ${round})"; else
    cat "${work}/apply.log"
    die "roles.sql failed (round ${round})"
  fi
done

# --- attributes, memberships, settings -----------------------------------------------------------------------------
attrs() {
  sql "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolconnlimit
       FROM pg_roles WHERE rolname = '$1'"
}
[[ $(attrs lockwatch_monitor) == "t|f|f|f|f|f|3" ]] && pass "lockwatch_monitor: LOGIN, no privileges, limit 3" ||
  fail "lockwatch_monitor attributes: $(attrs lockwatch_monitor)"
[[ $(attrs lockwatch_actor) == "t|f|f|f|f|f|2" ]] && pass "lockwatch_actor: LOGIN, no privileges, limit 2" ||
  fail "lockwatch_actor attributes: $(attrs lockwatch_actor)"
member() { sql "SELECT pg_has_role('$1', '$2', 'MEMBER')"; }
for pair in lockwatch_monitor:pg_monitor lockwatch_actor:pg_monitor lockwatch_actor:pg_signal_backend; do
  [[ $(member "${pair%%:*}" "${pair##*:}") == t ]] && pass "${pair%%:*} is a member of ${pair##*:}" ||
    fail "${pair%%:*} is not a member of ${pair##*:}"
done
[[ $(member lockwatch_monitor pg_signal_backend) == f ]] && pass "lockwatch_monitor cannot signal backends" ||
  fail "lockwatch_monitor is a member of pg_signal_backend"
# Exactly one settings row per role, whatever the number of runs.
[[ $(sql "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
          WHERE r.rolname = 'lockwatch_monitor' AND s.setdatabase = 0") == 1 ]] &&
  pass "one settings row for lockwatch_monitor" || fail "settings rows for lockwatch_monitor"

# --- connect as lockwatch_monitor -----------------------------------------------------------------------------------
password="pw-$$-${RANDOM}${RANDOM}"
sql "ALTER ROLE lockwatch_monitor PASSWORD '${password}'" >/dev/null
# Later keywords of a conninfo string override earlier ones. The password travels in the environment only.
monitor_dsn="${LOCKWATCH_TEST_DSN} user=lockwatch_monitor"
export PGPASSWORD=${password}
settings=$(psql "${monitor_dsn}" -X -At -c "SELECT current_user, current_setting('search_path'),
  current_setting('statement_timeout'), current_setting('lock_timeout'),
  current_setting('default_transaction_read_only'), current_setting('idle_in_transaction_session_timeout')" 2>&1)
[[ ${settings} == "lockwatch_monitor|pg_catalog|5s|1s|on|10s" ]] &&
  pass "lockwatch_monitor session: search_path pg_catalog, statement_timeout 5s, lock_timeout 1s, read-only" ||
  fail "lockwatch_monitor session settings: ${settings}"
if psql "${monitor_dsn}" -X -At -c "CREATE TEMP TABLE lw_roles_write_probe (i int)" >/dev/null 2>&1; then
  fail "lockwatch_monitor can write"
else
  pass "lockwatch_monitor cannot write (read-only transactions)"
fi

# --- another role's blocking session, seen by lockwatch tree as lockwatch_monitor ----------------------------------
sql "DROP TABLE IF EXISTS ${marker}; DROP ROLE IF EXISTS ${marker}_app;
     CREATE ROLE ${marker}_app LOGIN; CREATE TABLE ${marker} (i int);
     GRANT ALL ON ${marker} TO ${marker}_app" >/dev/null
app_dsn="${LOCKWATCH_TEST_DSN} user=${marker}_app application_name=${marker}"
# The holder: another role, a table lock, then running a long statement whose text lockwatch must show.
PGPASSWORD='' psql "${app_dsn}" -X -q -c "BEGIN" -c "LOCK TABLE ${marker} IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(60) /* holder ${marker} */" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%holder ${marker}%' AND pid <> pg_backend_pid()") == 1 ]] && break
  sleep 0.1
done
# The waiter: the superuser, so lockwatch_monitor sees two roles it is not.
psql "${LOCKWATCH_TEST_DSN}" -X -q -c "SELECT count(*) /* waiter ${marker} */ FROM ${marker}" >/dev/null 2>&1 &
pids+=($!)
waiting=0
for _ in $(seq 1 50); do
  waiting=$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%waiter ${marker}%'
                 AND pid <> pg_backend_pid()")
  [[ ${waiting} == 1 ]] && break
  sleep 0.1
done
[[ ${waiting} == 1 ]] || die "the waiting session did not appear"

tree=$(timeout 30 "${binary}" tree --no-color --width 400 --dsn "${monitor_dsn}" 2>&1)
status=$?
((status == 0)) && pass "lockwatch tree as lockwatch_monitor exits 0" || fail "lockwatch tree exit ${status}: ${tree}"
echo "${tree}" | sed 's/^/#   /'
grep -q "ROOT .*holder ${marker}" <<<"${tree}" && pass "the holder (another role) is a root, with its query text" ||
  fail "no root line with the holder's query text"
grep -Eq "^[ |\`+-]+[0-9]+ .*waiter ${marker}" <<<"${tree}" &&
  pass "the waiter (a superuser's session) is shown under it, with its query text" ||
  fail "no waiter line with the waiter's query text"
grep -q "insufficient privilege" <<<"${tree}" && fail "tree shows <insufficient privilege>" ||
  pass "no <insufficient privilege> in the tree"
json=$(timeout 30 "${binary}" tree --json --dsn "${monitor_dsn}" 2>&1)
grep -q "holder ${marker}" <<<"${json}" && pass "lockwatch tree --json as lockwatch_monitor has the query text" ||
  fail "tree --json lacks the holder's query text"

echo "# ${checks} checks, ${failures} failed"
((failures == 0))
