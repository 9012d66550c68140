#!/usr/bin/env bash
# `lockwatch top` in a real terminal: tmux at 80x24, against a real DDL pile-up on PostgreSQL 15.
#
#   top_tmux_test.sh <binary-with-the-top-subcommand>
#
# Needs LOCKWATCH_TEST_DSN (a superuser conninfo of a throwaway cluster; fails without it), tmux and psql.
# Checks: the root line, its blocked count and explanation; moving, expanding, filtering; the superuser
# refusal; terminate with confirmation ends the root and its waiters proceed; a dump written with `w`;
# quitting with q and with Ctrl-C restores the terminal (normal screen, canonical mode with echo); plain
# text when stdout is not a terminal.
set -euo pipefail

TOP="$(realpath "${1:?usage: top_tmux_test.sh <lockwatch binary>}")"
if [[ -z "${LOCKWATCH_TEST_DSN:-}" ]]; then
  echo "FAIL: LOCKWATCH_TEST_DSN is not set (start a cluster: source tests/pg_cluster.sh && lw_pg_start)" >&2
  exit 1
fi
for tool in tmux psql; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

DSN="$LOCKWATCH_TEST_DSN"
ID="lwtop_$$"
ROLE="${ID}_app"
SOCKET="lwtop-$$"
WORK="$(mktemp -d /tmp/lwtop.XXXXXX)"
PIDS=()

sql() { psql "$DSN" -XAtqv ON_ERROR_STOP=1 -c "$1"; }
tm() { tmux -L "$SOCKET" "$@"; }
pane() { tm capture-pane -t top -p; }

cleanup() {
  set +e
  tm kill-server 2>/dev/null
  for fd in "${FDS[@]}"; do exec {fd}>&-; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$ROLE' OR application_name LIKE '${ID}%'" >/dev/null
  sleep 0.3
  sql "DROP SCHEMA IF EXISTS $ID CASCADE" >/dev/null 2>&1
  sql "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "---- pane ----" >&2
  pane >&2 || true
  exit 1
}

# Waits up to $2 seconds (default 10) until the pane matches the extended regexp $1.
wait_for() {
  local pattern="$1" limit="${2:-10}" i
  for ((i = 0; i < limit * 10; i++)); do
    if pane | grep -Eq -- "$pattern"; then return 0; fi
    sleep 0.1
  done
  fail "pane never matched /$pattern/ within ${limit}s"
}

# wait_for on the pane's lines joined together (for text wrapped at the width).
wait_for_joined() {
  local pattern="$1" i
  for ((i = 0; i < 100; i++)); do
    if pane | tr '\n' ' ' | grep -Eq -- "$pattern"; then return 0; fi
    sleep 0.1
  done
  fail "joined pane never matched /$pattern/ within 10s"
}

# Waits until the SQL condition $1 is true (bounded).
wait_sql() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(sql "SELECT ($1)::text")" == "true" ]] && return 0
    sleep 0.1
  done
  fail "condition never held: $1"
}

# Runs the SQL $2 in a background psql session as `user` $1 with application_name $3, kept open: psql
# reads a fifo whose write end this script holds until cleanup (then psql sees EOF and exits).
FDS=()
session() {
  local user="$1" statement="$2" app="$3" fd
  mkfifo "$WORK/$app.fifo"
  psql "$DSN user=$user application_name=$app" -Xq <"$WORK/$app.fifo" >/dev/null 2>&1 &
  PIDS+=($!)
  exec {fd}>"$WORK/$app.fifo"
  FDS+=("$fd")
  echo "$statement" >&"$fd"
}

pid_of() { sql "SELECT pid FROM pg_stat_activity WHERE application_name = '$1'"; }

# ---- a pile-up: an idle transaction read t, an ALTER queued behind it, readers queued behind the ALTER
sql "CREATE ROLE $ROLE LOGIN; CREATE SCHEMA $ID; CREATE TABLE $ID.t (id int); INSERT INTO $ID.t VALUES (1);
     ALTER TABLE $ID.t OWNER TO $ROLE; GRANT USAGE ON SCHEMA $ID TO $ROLE" >/dev/null
session "$ROLE" "BEGIN; SELECT count(*) FROM $ID.t;" "${ID}_billing"
wait_sql "EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '${ID}_billing' AND state = 'idle in transaction')"
session "$ROLE" "ALTER TABLE $ID.t ADD COLUMN x int;" "${ID}_migrate"
wait_sql "EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '${ID}_migrate' AND wait_event_type = 'Lock')"
session "$ROLE" "SELECT count(*) FROM $ID.t;" "${ID}_web1"
wait_sql "EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '${ID}_web1' AND wait_event_type = 'Lock')"
session "$ROLE" "SELECT count(*) FROM $ID.t;" "${ID}_web2"
wait_sql "EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '${ID}_web2' AND wait_event_type = 'Lock')"
session postgres "SELECT count(*) FROM $ID.t;" "${ID}_admin"
wait_sql "EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '${ID}_admin' AND wait_event_type = 'Lock')"
HOLDER="$(pid_of "${ID}_billing")"
DDL="$(pid_of "${ID}_migrate")"
ADMIN="$(pid_of "${ID}_admin")"

# ---- plain text when stdout is not a terminal
PLAIN="$("$TOP" top --dsn "$DSN" --once --width 100 | cat)"
grep -q "^\[-\] $HOLDER idle in transaction" <<<"$PLAIN" || fail "plain frame has no root line: $PLAIN"
grep -q "why: ddl_amplifier: ALTER TABLE by pid $DDL" <<<"$PLAIN" || fail "plain frame has no explanation: $PLAIN"
if grep -q $'\x1b' <<<"$PLAIN"; then fail "plain frame contains escape sequences"; fi

# ---- the interactive view at 80x24
tm new-session -d -s top -x 80 -y 24 -c "$WORK" "bash --norc --noprofile"
tm send-keys -t top "PS1='READY\$ '; clear" Enter
wait_for '^READY\$ ?$'
tm send-keys -t top "'$TOP' top --dsn '$DSN' --interval 0.5" Enter
wait_for "^>\[\+\] $HOLDER idle in transaction [0-9hms]+ blocks 4"
wait_for "why: ddl_amplifier: ALTER TABLE by pid $DDL"
wait_for "waiting 4 \| longest wait"
wait_for "^connections: "
[[ "$(pane | wc -l)" -eq 24 ]] || fail "the view does not fill 24 lines"
while IFS= read -r line; do
  ((${#line} <= 80)) || fail "line longer than 80 columns: $line"
done < <(pane)

# expand the root, move to the ALTER, expand it
tm send-keys -t top Enter
wait_for "^ +\[\+\] $DDL waits .*AccessExclusiveLock"
tm send-keys -t top j
wait_for "^> +\[\+\] $DDL waits"
tm send-keys -t top Enter
wait_for "^> +\[-\] $DDL waits"
wait_for "$ADMIN waits .*AccessShareLock on relation $ID.t \(soft\)"

# details of the selected session
tm send-keys -t top i
wait_for "^query: ALTER TABLE $ID.t ADD COLUMN x int"
wait_for "WAITS AccessExclusiveLock on relation $ID.t"
tm send-keys -t top Escape
wait_for "^> +\[-\] $DDL waits"

# filter by application: nothing matches, then clear
tm send-keys -t top a
wait_for "filter application: _"
tm send-keys -t top -l "no-such-app"
tm send-keys -t top Enter
wait_for "No blocking tree matches the filter"
wait_for "app~no-such-app"
tm send-keys -t top x
wait_for "\[-\] $HOLDER idle in transaction"

# a superuser session is refused by default
tm send-keys -t top End
wait_for "^> +\`-  $ADMIN waits"
tm send-keys -t top t
wait_for "refused: pid $ADMIN is a superuser session"

# terminate the root after a confirmation that spells it out; "n" first sends nothing
tm send-keys -t top Home
wait_for "^>\[-\] $HOLDER"
tm send-keys -t top t
wait_for_joined "pg_terminate_backend\($HOLDER\) on pid $HOLDER \($ROLE, app ${ID}_billing, idle in transaction"
wait_for_joined "ends the session, its transaction rolls back - only if backend_start is still [0-9T:.-]+Z, xact_start [0-9T:.-]+Z, state_change [0-9T:.-]+Z; y/N"
tm send-keys -t top n
wait_for "not sent"
[[ "$(pid_of "${ID}_billing")" == "$HOLDER" ]] || fail "the root ended although the confirmation was refused"
tm send-keys -t top t
wait_for "y/N"
tm send-keys -t top y
wait_for "terminate pid $HOLDER: (exited|signalled)"
wait_sql "NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $HOLDER)"
# its waiters proceed: the ALTER commits, the readers finish
wait_sql "EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '$ID' AND column_name = 'x')"
wait_sql "NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name LIKE '${ID}%' AND wait_event_type = 'Lock')"
wait_for "No lock waits"

# write a dump now
tm send-keys -t top w
wait_for "dump written: "
compgen -G "$WORK/lockwatch-*.dump.gz" >/dev/null || fail "no dump file in $WORK"

# quit restores the normal screen and the terminal mode
tm send-keys -t top q
wait_for '^READY\$ ?$'
if pane | grep -q "lockwatch top |"; then fail "the alternate screen is still shown after q"; fi
tm send-keys -t top "stty -a | tr ' ' '\n' | grep -xE -- '-?(icanon|echo)' | tr '\n' ' '; echo" Enter
wait_for "^icanon echo ?$"

# Ctrl-C restores it too
tm send-keys -t top "clear; '$TOP' top --dsn '$DSN' --interval 0.5" Enter
wait_for "^lockwatch top \| "
tm send-keys -t top C-c
wait_for '^READY\$ ?$'
if pane | grep -q "lockwatch top |"; then fail "the alternate screen is still shown after Ctrl-C"; fi
tm send-keys -t top "clear; stty -a | tr ' ' '\n' | grep -xE -- '-?(icanon|echo)' | tr '\n' ' '; echo" Enter
wait_for "^icanon echo ?$"

echo "PASS: lockwatch top in tmux"
