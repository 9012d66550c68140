-- Least-privilege PostgreSQL roles for lockwatch. Run as a superuser (or a role with CREATEROLE that is a
-- member of pg_monitor and pg_signal_backend WITH ADMIN OPTION), once per server:
--
--   psql -v ON_ERROR_STOP=1 -d postgres -f /usr/share/lockwatch/sql/roles.sql
--
-- Idempotent: running it again re-applies the attributes, memberships and settings below and changes nothing
-- else. It sets no password: set one with \password lockwatch_monitor, or use peer/cert authentication.
-- Roles are cluster-wide, so one run covers every database of the server.
--
-- lockwatch_monitor  observes: `lockwatch tree` and `lockwatch run`. Member of pg_monitor, which is what lets it
--                    see other roles' query text, backend_start and leader_pid in pg_stat_activity.
-- lockwatch_actor    acts: cancels or terminates sessions (pg_signal_backend) in addition to observing. Only
--                    needed for remediation; keep it separate so that the observing credentials cannot kill.

DO $lockwatch$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'lockwatch_monitor') THEN
    CREATE ROLE lockwatch_monitor;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'lockwatch_actor') THEN
    CREATE ROLE lockwatch_actor;
  END IF;
END
$lockwatch$;

-- Attributes are (re)applied every time, so a role created earlier by hand ends up with exactly these.
-- A small connection limit: the agent uses one connection per server, `lockwatch tree` one more.
ALTER ROLE lockwatch_monitor WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS
  CONNECTION LIMIT 3;
ALTER ROLE lockwatch_actor WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS
  CONNECTION LIMIT 2;

-- pg_monitor: read all pg_stat_* views and settings, including other roles' queries.
GRANT pg_monitor TO lockwatch_monitor;
GRANT pg_monitor TO lockwatch_actor;
-- pg_signal_backend: pg_cancel_backend / pg_terminate_backend on non-superuser sessions.
GRANT pg_signal_backend TO lockwatch_actor;

-- Session defaults, a backstop to the timeouts lockwatch sets on its own session:
--  * search_path pinned to pg_catalog, so no object in a user schema can shadow a catalog name;
--  * read-only transactions (signalling a backend is not a write);
--  * a monitor never waits long in a lock queue and never runs long (monitors that queued behind an
--    ALTER TABLE have made outages worse);
--  * an abandoned transaction of the monitor does not hold a snapshot for long.
ALTER ROLE lockwatch_monitor SET search_path = pg_catalog;
ALTER ROLE lockwatch_monitor SET default_transaction_read_only = on;
ALTER ROLE lockwatch_monitor SET statement_timeout = '5s';
ALTER ROLE lockwatch_monitor SET lock_timeout = '1s';
ALTER ROLE lockwatch_monitor SET idle_in_transaction_session_timeout = '10s';
ALTER ROLE lockwatch_monitor SET application_name = 'lockwatch';

ALTER ROLE lockwatch_actor SET search_path = pg_catalog;
ALTER ROLE lockwatch_actor SET default_transaction_read_only = on;
ALTER ROLE lockwatch_actor SET statement_timeout = '5s';
ALTER ROLE lockwatch_actor SET lock_timeout = '1s';
ALTER ROLE lockwatch_actor SET idle_in_transaction_session_timeout = '10s';
ALTER ROLE lockwatch_actor SET application_name = 'lockwatch';
