#include "agent/pg/collector.h"

#include <algorithm>
#include <utility>

#include <pqxx/pqxx>

#include "agent/pg/decode.h"
#include "agent/pg/dsn.h"
#include "agent/pg/pq_session.h"
#include "agent/pg/queries.h"
#include "agent/pg/relation_names.h"
#include "agent/pg/row_set.h"

namespace lockwatch::pg {
namespace {

constexpr const char* kSnapshotStatement = "lockwatch_snapshot";
constexpr const char* kNamesStatement = "lockwatch_relation_names";

std::string Milliseconds(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + "ms"; }

// Text form of a result, and the size of its DataRow messages on the wire (text format: 7 bytes of
// framing per row, 4 of length per field, then the value bytes).
RowSet ToRowSet(const pqxx::result& result, uint64_t* bytes) {
  RowSet rows;
  const auto ncols = result.columns();
  for (pqxx::row::size_type c = 0; c < ncols; ++c) rows.columns.emplace_back(result.column_name(c));
  rows.rows.reserve(result.size());
  for (const pqxx::row& row : result) {
    auto& out = rows.rows.emplace_back();
    out.reserve(ncols);
    *bytes += 7;
    for (pqxx::row::size_type c = 0; c < ncols; ++c) {
      const pqxx::field field = row[c];
      *bytes += 4;
      if (field.is_null()) {
        out.emplace_back(std::nullopt);
      } else {
        out.emplace_back(std::string(field.c_str(), field.size()));
        *bytes += field.size();
      }
    }
  }
  return rows;
}

}  // namespace

struct Collector::Impl {
  std::string dsn;
  SessionOptions options;
  std::string redacted_dsn;
  std::unique_ptr<pqxx::connection> conn;
  int server_version_num = 0;
  RelationNameCache names;

  // Drops the connection when libpq says it is gone, or when the error says the session ended.
  core::Status Check(core::Status status) {
    if (!status.ok() &&
        (status.code() == core::Status::Code::kUnavailable || conn == nullptr || !conn->is_open())) {
      conn.reset();
      server_version_num = 0;
      if (status.code() != core::Status::Code::kUnavailable) {
        return core::Status::Unavailable(status.message());
      }
    }
    return status;
  }
};

Collector::Collector(std::string dsn, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->redacted_dsn = RedactDsn(dsn);
  impl_->dsn = std::move(dsn);
  impl_->options = std::move(options);
}

Collector::~Collector() = default;

bool Collector::connected() const { return impl_->conn != nullptr && impl_->conn->is_open(); }

void Collector::Disconnect() {
  impl_->conn.reset();
  impl_->server_version_num = 0;
}

int Collector::server_version_num() const { return impl_->server_version_num; }

const std::string& Collector::redacted_dsn() const { return impl_->redacted_dsn; }

core::Status Collector::Connect() {
  Impl& d = *impl_;
  if (connected()) return core::Status::Ok();
  d.conn.reset();
  d.server_version_num = 0;
  d.names.Clear();  // a reconnect may reach another server (failover): oids differ

  const std::string where = "connect to " + d.redacted_dsn;
  if (core::Status opened = OpenSession(d.dsn, d.redacted_dsn, d.options, &d.conn); !opened.ok())
    return opened;
  const int version = d.conn->server_version();

  // One statement. statement_timeout bounds a poll; lock_timeout keeps the monitor from queueing behind
  // DDL; JIT compilation and parallel workers only add latency to a small monitoring query.
  const SessionOptions& o = d.options;
  const std::string settings =
      "SELECT set_config('statement_timeout', '" + Milliseconds(o.statement_timeout) +
      "', false), set_config('lock_timeout', '" + Milliseconds(o.lock_timeout) +
      "', false), set_config('jit', 'off', false), set_config('max_parallel_workers_per_gather', '0', false)";
  core::Status st = Guard(where, d.dsn, [&] {
    pqxx::nontransaction tx(*d.conn);
    tx.exec(settings);
    // SQL-level PREPARE rather than libpqxx's prepare(): it is eager on every libpqxx version, so a bad
    // statement fails here and the parse-time catalog lookups happen now, while nothing is locked.
    tx.exec(std::string("PREPARE ") + kSnapshotStatement + " AS\n" + SnapshotSql(version));
    tx.exec(std::string("PREPARE ") + kNamesStatement + "(oid[]) AS\n" + RelationNamesSql());
    tx.commit();
  });
  if (!st.ok()) {
    d.conn.reset();
    return st;
  }
  d.server_version_num = version;
  return core::Status::Ok();
}

core::Result<core::Snapshot> Collector::Poll(PollStats* stats) {
  Impl& d = *impl_;
  PollStats local;
  PollStats& s = stats != nullptr ? *stats : local;
  s = PollStats();
  if (!connected()) {
    d.conn.reset();
    return core::Status::Unavailable("not connected to " + d.redacted_dsn);
  }

  const auto start = std::chrono::steady_clock::now();
  const std::string where = "poll " + d.redacted_dsn;
  RowSet rows;
  core::Status st = Guard(where, d.dsn, [&] {
    pqxx::nontransaction tx(*d.conn);
    const pqxx::result result = tx.exec(std::string("EXECUTE ") + kSnapshotStatement);
    tx.commit();
    rows = ToRowSet(result, &s.bytes_received);
  });
  s.round_trips = 1;
  if (st = d.Check(std::move(st)); !st.ok()) return st;

  PollMeta meta;
  core::Result<core::Snapshot> decoded = DecodeSnapshot(rows, d.server_version_num, &meta);
  if (!decoded.ok()) return decoded.status();
  core::Snapshot snapshot = std::move(decoded).value();
  s.locks_read = snapshot.locks_read;
  s.server_seconds = static_cast<double>(meta.elapsed_us) / 1e6;

  core::Status names_connection;
  const FetchRelationNamesFn fetch = [&](const std::vector<uint32_t>& oids) -> core::Result<RowSet> {
    RowSet names;
    ++s.round_trips;
    core::Status fst = Guard("relation names " + d.redacted_dsn, d.dsn, [&] {
      pqxx::nontransaction tx(*d.conn);
      const pqxx::result result =
          tx.exec(std::string("EXECUTE ") + kNamesStatement + "(" + tx.quote(OidArrayLiteral(oids)) + ")");
      tx.commit();
      names = ToRowSet(result, &s.bytes_received);
    });
    if (!fst.ok()) {
      names_connection = fst;
      return fst;
    }
    return names;
  };
  s.relation_names_status = ResolveRelationNames(meta.database_oid, fetch, &d.names, &snapshot);
  // A lost connection during the names statement does not spoil the snapshot, but the next poll must
  // reconnect.
  if (!names_connection.ok()) d.Check(names_connection);

  s.client_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return snapshot;
}

}  // namespace lockwatch::pg
