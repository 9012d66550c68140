#pragma once

// Snapshot statement results as the server sends them, per PostgreSQL version. The PG15 rows were recorded
// from a real 15.18 server (a row-lock wait, a prepared transaction); the others follow each version's
// column set and locktype spelling (leader_pid from 13, waitstart from 14, "speculative token" in 12,
// PG16's spectoken and applytransaction layout, PG17's "<procNumber>/<lxid>" vxids).

#include <optional>
#include <string>
#include <vector>

#include "agent/pg/queries.h"
#include "agent/pg/row_set.h"

namespace lockwatch::pg::testing {

using Cell = std::optional<std::string>;
using Cells = std::vector<Cell>;
inline const Cell kNull = std::nullopt;

inline std::vector<std::string> SnapshotColumnNames() {
  std::vector<std::string> cols{"kind"};
  for (std::size_t i = 1; i <= kPayloadColumns; ++i) cols.push_back("c" + std::to_string(i));
  return cols;
}

// A result from rows given as kind + the kind's fields; unused columns are padded with NULL.
inline RowSet MakeResult(const std::vector<Cells>& rows) {
  RowSet result;
  result.columns = SnapshotColumnNames();
  for (Cells row : rows) {
    row.resize(kSnapshotColumns, kNull);
    result.rows.push_back(std::move(row));
  }
  return result;
}

inline Cells Meta(const std::string& version, const std::string& waiting) {
  return {"m", version, "1795614812289637", "8020", "postgres", "5", waiting, "7368"};
}

inline Cells Setting(const std::string& name, const std::string& value) { return {"s", name, value}; }

struct VersionFixture {
  int version = 0;
  RowSet result;
};

inline VersionFixture Pg12() {
  return {
      120022,
      MakeResult({
          {"a", "4100", kNull, "app", "billing", "10.0.0.7", "shop", "client backend", "active", "Lock",
           "speculative token", "1795614700000000", "1795614801000000", "1795614801000100",
           "1795614801000200", "731", "730", "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "f"},
          {"a", "4101", kNull, "app", "billing", "10.0.0.8", "shop", "client backend", "idle in transaction",
           "Client", "ClientRead", "1795614700000000", "1795614800000000", "1795614800000100",
           "1795614800000300", "730", kNull, "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "f"},
          {"l", "speculative token", "730", kNull, kNull, kNull, kNull, kNull, "1", "0", "0", "4/12", "4101",
           "ExclusiveLock", "t", "f", kNull},
          {"l", "speculative token", "730", kNull, kNull, kNull, kNull, kNull, "1", "0", "0", "5/3", "4100",
           "ShareLock", "f", "f", kNull},
          Setting("deadlock_timeout", "1s"),
          Meta("120022", "t"),
      })};
}

inline VersionFixture Pg13() {
  return {130018, MakeResult({
                      {"a", "5200", kNull, "etl", "loader", kNull, "dw", "client backend", "active", "IO",
                       "DataFileRead", "1795614700000000", "1795614801000000", "1795614801000000",
                       "1795614801000000", kNull, "900", "SELECT count(*) FROM big", "f"},
                      {"a", "5201", "5200", "etl", "loader", kNull, "dw", "parallel worker", "active", "Lock",
                       "relation", "1795614801000500", "1795614801000000", "1795614801000000",
                       "1795614801000600", kNull, "900", "SELECT count(*) FROM big", "f"},
                      {"a", "5300", kNull, "dba", "psql", kNull, "dw", "client backend",
                       "idle in transaction", "Client", "ClientRead", "1795614700000000", "1795614790000000",
                       "1795614790000000", "1795614790000100", "901", kNull, "LOCK big", "t"},
                      {"l", "relation", "16384", "16390", kNull, kNull, kNull, kNull, kNull, kNull, kNull,
                       "6/4", "5201", "AccessShareLock", "f", "f", kNull},
                      {"l", "relation", "16384", "16390", kNull, kNull, kNull, kNull, kNull, kNull, kNull,
                       "7/9", "5300", "AccessExclusiveLock", "t", "f", kNull},
                      {"l", "spectoken", "905", kNull, kNull, kNull, kNull, kNull, "3", "0", "0", "7/9",
                       "5300", "ExclusiveLock", "t", "f", kNull},
                      Meta("130018", "t"),
                  })};
}

inline VersionFixture Pg14() {
  return {140015, MakeResult({
                      {"a", "6100", kNull, "app", "api", "::1", "shop", "client backend", "active", "Lock",
                       "advisory", "1795614700000000", "1795614801000000", "1795614801000000",
                       "1795614801000001", kNull, kNull, "SELECT pg_advisory_lock(42)", "f"},
                      {"a", "6101", kNull, "app", "api", "::1", "shop", "client backend", "idle", kNull,
                       kNull, "1795614700000000", kNull, "1795614790000000", "1795614790000100", kNull, kNull,
                       "SELECT pg_advisory_lock(42)", "f"},
                      {"l", "advisory", "16384", kNull, kNull, kNull, kNull, kNull, "0", "42", "1", "3/0",
                       "6101", "ExclusiveLock", "t", "f", kNull},
                      {"l", "advisory", "16384", kNull, kNull, kNull, kNull, kNull, "0", "42", "1", "4/77",
                       "6100", "ExclusiveLock", "f", "f", "1795614801000123"},
                      Meta("140015", "t"),
                  })};
}

// Recorded from PostgreSQL 15.18: B (8016) updates the row A (8005) has updated; plus a prepared xact.
inline VersionFixture Pg15() {
  return {150018, MakeResult({
                      {"a", "7135", kNull, kNull, "", kNull, kNull, "autovacuum launcher", kNull, "Activity",
                       "AutoVacuumMain", "1795614722009890", kNull, kNull, kNull, kNull, kNull, "", kNull},
                      {"a", "8005", kNull, "postgres", "psql", kNull, "postgres", "client backend", "active",
                       "Timeout", "PgSleep", "1795614811078177", "1795614811084081", "1795614811084081",
                       "1795614811084082", "725", "725",
                       "begin; update t set v=v+1 where id=1; select pg_sleep(4); commit;", "t"},
                      {"a", "8016", kNull, "postgres", "psql", kNull, "postgres", "client backend", "active",
                       "Lock", "transactionid", "1795614811585201", "1795614811588074", "1795614811588074",
                       "1795614811588075", "726", "725", "update t set v=v+1 where id=1", "t"},
                      {"l", "transactionid", kNull, kNull, kNull, kNull, kNull, "725", kNull, kNull, kNull,
                       "4/2", "8016", "ShareLock", "f", "f", "1795614811589098"},
                      {"l", "transactionid", kNull, kNull, kNull, kNull, kNull, "725", kNull, kNull, kNull,
                       "3/14", "8005", "ExclusiveLock", "t", "f", kNull},
                      {"l", "tuple", "5", "16385", "0", "1", kNull, kNull, kNull, kNull, kNull, "4/2", "8016",
                       "ExclusiveLock", "t", "f", kNull},
                      {"l", "transactionid", kNull, kNull, kNull, kNull, kNull, "740", kNull, kNull, kNull,
                       "3/24", kNull, "ExclusiveLock", "t", "f", kNull},
                      {"p", "740", "gx1", "1795614790000000", "postgres", "postgres"},
                      Setting("deadlock_timeout", "1s"),
                      Setting("lock_timeout", "100ms"),
                      Setting("statement_timeout", "2s"),
                      Setting("max_prepared_transactions", "10"),
                      Meta("150018", "t"),
                  })};
}

inline VersionFixture Pg16() {
  return {160010,
          MakeResult({
              {"a", "9100", kNull, "app", "ingest", "10.1.1.1", "shop", "client backend", "active", "Lock",
               "spectoken", "1795614700000000", "1795614801000000", "1795614801000000", "1795614801000000",
               "812", "811", "INSERT INTO t VALUES (2) ON CONFLICT DO NOTHING", "f"},
              {"a", "9200", "9199", "postgres", "", kNull, "shop", "logical replication parallel worker",
               "active", "Lock", "applytransaction", "1795614700000000", "1795614801000000", kNull,
               "1795614801000000", kNull, kNull, "", "t"},
              {"l", "spectoken", kNull, kNull, kNull, kNull, kNull, "811", kNull, "5", kNull, "5/8", "9101",
               "ExclusiveLock", "t", "f", kNull},
              {"l", "spectoken", kNull, kNull, kNull, kNull, kNull, "811", kNull, "5", kNull, "6/2", "9100",
               "ShareLock", "f", "f", "1795614801000050"},
              {"l", "applytransaction", "16384", kNull, kNull, kNull, kNull, "1234567", kNull, "16500", "1",
               "7/1", "9200", "AccessExclusiveLock", "f", "f", "1795614801000070"},
              Meta("160010", "t"),
          })};
}

inline VersionFixture Pg17() {
  return {170006, MakeResult({
                      {"a", "10100", kNull, "app", "web", "192.0.2.1", "shop", "client backend", "active",
                       "Lock", "virtualxid", "1795614700000000", "1795614801000000", "1795614801000000",
                       "1795614801000000", kNull, "950", "CREATE INDEX CONCURRENTLY ON t2(v)", "f"},
                      {"l", "virtualxid", kNull, kNull, kNull, kNull, "103/7", kNull, kNull, kNull, kNull,
                       "103/7", "10102", "ExclusiveLock", "t", "f", kNull},
                      {"l", "virtualxid", kNull, kNull, kNull, kNull, "103/7", kNull, kNull, kNull, kNull,
                       "101/3", "10100", "ShareLock", "f", "f", "1795614801000009"},
                      Meta("170006", "t"),
                  })};
}

// A steady state: nobody waits, pg_locks was not read.
inline VersionFixture Pg18() {
  return {180001, MakeResult({
                      {"a", "11100", kNull, "app", "web", kNull, "shop", "client backend", "idle", "Client",
                       "ClientRead", "1795614700000000", kNull, "1795614790000000", "1795614790000100", kNull,
                       kNull, "COMMIT", "f"},
                      Setting("max_locks_per_transaction", "64"),
                      Setting("idle_in_transaction_session_timeout", "0"),
                      Meta("180001", "f"),
                  })};
}

inline std::vector<VersionFixture> AllVersionFixtures() {
  return {Pg12(), Pg13(), Pg14(), Pg15(), Pg16(), Pg17(), Pg18()};
}

}  // namespace lockwatch::pg::testing
