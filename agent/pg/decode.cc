#include "agent/pg/decode.h"

#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>

#include "agent/core/lock_mode.h"
#include "agent/pg/queries.h"

namespace lockwatch::pg {
namespace {

using Row = std::vector<std::optional<std::string>>;

// Values quoted in error messages are cut short and made printable: the decoder is fed arbitrary bytes.
std::string Quote(std::string_view value) {
  constexpr std::size_t kMax = 32;
  std::string out = "\"";
  for (std::size_t i = 0; i < value.size() && i < kMax; ++i) {
    const char c = value[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (value.size() > kMax) out += "...";
  out += "\"";
  return out;
}

template <typename Int>
std::optional<Int> ParseInt(std::string_view text) {
  Int value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// Reads the fields of one row. The first error is kept and later reads return defaults, so a decoder
// function reads every field unconditionally and checks status() once.
class FieldReader {
 public:
  FieldReader(const Row& row, std::size_t row_index, char kind, const std::string_view* names)
      : row_(row), row_index_(row_index), kind_(kind), names_(names) {}

  const core::Status& status() const { return status_; }

  std::optional<std::string> NullableText(std::size_t field) {
    const std::optional<std::string>* v = Cell(field);
    return v == nullptr ? std::nullopt : *v;
  }
  // NULL is read as "" (the model's convention for absent text).
  std::string Text(std::size_t field) { return NullableText(field).value_or(std::string()); }
  std::string RequiredText(std::size_t field) {
    std::optional<std::string> v = NullableText(field);
    if (!v.has_value()) {
      Fail(field, "unexpected NULL");
      return std::string();
    }
    return *v;
  }

  template <typename Int>
  std::optional<Int> NullableInt(std::size_t field) {
    const std::optional<std::string>* v = Cell(field);
    if (v == nullptr || !v->has_value()) return std::nullopt;
    std::optional<Int> parsed = ParseInt<Int>(**v);
    if (!parsed.has_value()) {
      const char* what = std::numeric_limits<Int>::is_signed ? "integer" : "unsigned integer";
      Fail(field,
           std::string("bad ") + what + " (" + std::to_string(sizeof(Int) * 8) + " bit) " + Quote(**v));
    }
    return parsed;
  }
  template <typename Int>
  Int RequiredInt(std::size_t field) {
    const std::optional<std::string>* v = Cell(field);
    if (v != nullptr && !v->has_value()) {
      Fail(field, "unexpected NULL");
      return Int{};
    }
    return NullableInt<Int>(field).value_or(Int{});
  }

  bool RequiredBool(std::size_t field) {
    std::string v = RequiredText(field);
    if (v == "t") return true;
    if (v != "f" && status_.ok()) Fail(field, "bad boolean " + Quote(v) + " (want t or f)");
    return false;
  }

  std::optional<bool> NullableBool(std::size_t field) {
    std::optional<std::string> v = NullableText(field);
    if (!v.has_value()) return std::nullopt;
    if (*v == "t") return true;
    if (*v != "f") Fail(field, "bad boolean " + Quote(*v) + " (want t or f)");
    return false;
  }

  core::LockMode RequiredMode(std::size_t field) {
    std::string v = RequiredText(field);
    if (!status_.ok()) return core::LockMode::kNone;
    std::optional<core::LockMode> mode = core::ParseLockMode(v);
    if (!mode.has_value()) {
      Fail(field, "unknown lock mode " + Quote(v));
      return core::LockMode::kNone;
    }
    return *mode;
  }

  // Columns past the kind's fields must be NULL: a value there means the SQL and this decoder disagree.
  void ExpectUnusedNull(std::size_t used) {
    for (std::size_t i = used; i < kPayloadColumns && status_.ok(); ++i) {
      if (row_[1 + i].has_value()) {
        status_ = core::Status::Corrupt(Where() + ", column c" + std::to_string(i + 1) +
                                        ": value in a column this kind does not use");
      }
    }
  }

  // A semantic error about a field found by the caller.
  void Fail(std::size_t field, const std::string& what) {
    if (!status_.ok()) return;
    status_ = core::Status::Corrupt(Where() + ", column c" + std::to_string(field + 1) + " (" +
                                    std::string(names_[field]) + "): " + what);
  }

 private:
  std::string Where() const {
    return "snapshot row " + std::to_string(row_index_) + " (kind '" + kind_ + "')";
  }
  const std::optional<std::string>* Cell(std::size_t field) {
    if (!status_.ok()) return nullptr;
    return &row_[1 + field];  // column 0 is "kind"; the row width was checked before
  }

  const Row& row_;
  std::size_t row_index_;
  char kind_;
  const std::string_view* names_;
  core::Status status_;
};

template <typename E>
constexpr std::size_t F(E field) {
  return static_cast<std::size_t>(field);
}

core::Status DecodeActivity(FieldReader& r, int version, core::Session* s) {
  using A = ActivityField;
  s->pid = r.RequiredInt<int32_t>(F(A::kPid));
  s->leader_pid = r.NullableInt<int32_t>(F(A::kLeaderPid));
  if (s->leader_pid.has_value() && version < 130000) r.Fail(F(A::kLeaderPid), "set on a server before 13");
  s->usename = r.Text(F(A::kUsename));
  s->application_name = r.Text(F(A::kApplicationName));
  s->client_addr = r.Text(F(A::kClientAddr));
  s->datname = r.Text(F(A::kDatname));
  s->backend_type = r.Text(F(A::kBackendType));
  s->state = r.Text(F(A::kState));
  s->wait_event_type = r.Text(F(A::kWaitEventType));
  s->wait_event = r.Text(F(A::kWaitEvent));
  s->backend_start = r.NullableInt<int64_t>(F(A::kBackendStart));
  s->xact_start = r.NullableInt<int64_t>(F(A::kXactStart));
  s->query_start = r.NullableInt<int64_t>(F(A::kQueryStart));
  s->state_change = r.NullableInt<int64_t>(F(A::kStateChange));
  s->backend_xid = r.NullableInt<uint32_t>(F(A::kBackendXid));
  s->backend_xmin = r.NullableInt<uint32_t>(F(A::kBackendXmin));
  s->query = r.Text(F(A::kQuery));
  s->superuser = r.NullableBool(F(A::kSuperuser));
  r.ExpectUnusedNull(kActivityFields.size());
  return r.status();
}

core::Status DecodeLock(FieldReader& r, int version, core::LockRow* l) {
  using L = LockField;
  l->locktype = r.RequiredText(F(L::kLocktype));
  l->database = r.NullableInt<uint32_t>(F(L::kDatabase));
  l->relation = r.NullableInt<uint32_t>(F(L::kRelation));
  l->page = r.NullableInt<int32_t>(F(L::kPage));
  l->tuple = r.NullableInt<int32_t>(F(L::kTuple));
  l->virtualxid = r.NullableText(F(L::kVirtualxid));
  l->transactionid = r.NullableInt<uint32_t>(F(L::kTransactionid));
  l->classid = r.NullableInt<uint32_t>(F(L::kClassid));
  l->objid = r.NullableInt<uint32_t>(F(L::kObjid));
  l->objsubid = r.NullableInt<int32_t>(F(L::kObjsubid));
  l->virtualtransaction = r.Text(F(L::kVirtualtransaction));
  l->pid = r.NullableInt<int32_t>(F(L::kPid));
  l->mode = r.RequiredMode(F(L::kMode));
  l->granted = r.RequiredBool(F(L::kGranted));
  l->fastpath = r.RequiredBool(F(L::kFastpath));
  l->waitstart = r.NullableInt<int64_t>(F(L::kWaitstart));
  if (l->waitstart.has_value() && version < 140000) r.Fail(F(L::kWaitstart), "set on a server before 14");
  r.ExpectUnusedNull(kLockFields.size());
  return r.status();
}

core::Status DecodePrepared(FieldReader& r, core::PreparedXact* p) {
  using P = PreparedField;
  p->transaction = r.RequiredInt<uint32_t>(F(P::kTransaction));
  p->gid = r.RequiredText(F(P::kGid));
  p->prepared = r.NullableInt<int64_t>(F(P::kPrepared));
  p->owner = r.Text(F(P::kOwner));
  p->database = r.Text(F(P::kDatabase));
  r.ExpectUnusedNull(kPreparedFields.size());
  return r.status();
}

core::Status DecodeSetting(FieldReader& r, core::Setting* s) {
  s->name = r.RequiredText(F(SettingField::kName));
  s->value = r.RequiredText(F(SettingField::kValue));
  r.ExpectUnusedNull(kSettingFields.size());
  return r.status();
}

core::Status DecodeMeta(FieldReader& r, core::Snapshot* snap, PollMeta* meta) {
  using M = MetaField;
  snap->server_version_num = r.RequiredInt<int32_t>(F(M::kServerVersionNum));
  snap->captured_at_us = r.RequiredInt<int64_t>(F(M::kNowUs));
  snap->own_pid = r.RequiredInt<int32_t>(F(M::kOwnPid));
  snap->current_database = r.RequiredText(F(M::kCurrentDatabase));
  meta->database_oid = r.RequiredInt<uint32_t>(F(M::kDatabaseOid));
  snap->locks_read = r.RequiredBool(F(M::kWaiting));
  meta->elapsed_us = r.RequiredInt<int64_t>(F(M::kElapsedUs));
  r.ExpectUnusedNull(kMetaFields.size());
  return r.status();
}

const std::string_view* FieldNames(char kind) {
  switch (kind) {
    case kKindActivity:
      return kActivityFields.data();
    case kKindLock:
      return kLockFields.data();
    case kKindPrepared:
      return kPreparedFields.data();
    case kKindSetting:
      return kSettingFields.data();
    case kKindMeta:
      return kMetaFields.data();
    default:
      return nullptr;
  }
}

core::Status CheckColumns(const RowSet& rows, const std::vector<std::string>& want) {
  if (rows.columns != want) {
    std::string got;
    for (const std::string& c : rows.columns) got += (got.empty() ? "" : ",") + Quote(c);
    return core::Status::Corrupt("result has columns [" + got + "], want " + std::to_string(want.size()) +
                                 " columns starting with " + Quote(want.empty() ? "" : want[0]));
  }
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    if (rows.rows[i].size() != want.size()) {
      return core::Status::Corrupt("row " + std::to_string(i) + " has " +
                                   std::to_string(rows.rows[i].size()) + " values, want " +
                                   std::to_string(want.size()));
    }
  }
  return core::Status::Ok();
}

std::vector<std::string> SnapshotColumns() {
  std::vector<std::string> cols{"kind"};
  for (std::size_t i = 1; i <= kPayloadColumns; ++i) cols.push_back("c" + std::to_string(i));
  return cols;
}

// The kind of a row, or 0 when the kind cell is not a single known letter.
char KindOf(const Row& row) {
  if (!row[0].has_value() || row[0]->size() != 1) return 0;
  const char k = (*row[0])[0];
  return FieldNames(k) != nullptr ? k : 0;
}

}  // namespace

core::Result<core::Snapshot> DecodeSnapshot(const RowSet& rows, int server_version_num, PollMeta* meta) {
  static const std::vector<std::string> kColumns = SnapshotColumns();
  if (core::Status st = CheckColumns(rows, kColumns); !st.ok()) return st;

  core::Snapshot snap;
  PollMeta local_meta;
  if (meta == nullptr) meta = &local_meta;

  // The meta row comes first: the other kinds are checked against its server version.
  std::optional<std::size_t> meta_row;
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    const Row& row = rows.rows[i];
    const char kind = KindOf(row);
    if (kind == 0) {
      return core::Status::Corrupt("snapshot row " + std::to_string(i) + ", column kind: unknown kind " +
                                   (row[0].has_value() ? Quote(*row[0]) : std::string("NULL")));
    }
    if (kind != kKindMeta) continue;
    if (meta_row.has_value()) {
      return core::Status::Corrupt("snapshot row " + std::to_string(i) +
                                   ", column kind: second meta row (first is row " +
                                   std::to_string(*meta_row) + ")");
    }
    meta_row = i;
    FieldReader r(row, i, kind, kMetaFields.data());
    if (core::Status st = DecodeMeta(r, &snap, meta); !st.ok()) return st;
    if (server_version_num != 0 && snap.server_version_num != server_version_num) {
      r.Fail(F(MetaField::kServerVersionNum), "server reports " + std::to_string(snap.server_version_num) +
                                                  ", the statement was built for " +
                                                  std::to_string(server_version_num));
      return r.status();
    }
  }
  if (!meta_row.has_value()) return core::Status::Corrupt("snapshot has no meta row (kind 'm')");

  const int version = snap.server_version_num;
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    const Row& row = rows.rows[i];
    const char kind = KindOf(row);
    FieldReader r(row, i, kind, FieldNames(kind));
    core::Status st;
    switch (kind) {
      case kKindActivity:
        st = DecodeActivity(r, version, &snap.sessions.emplace_back());
        break;
      case kKindLock:
        if (!snap.locks_read) {
          return core::Status::Corrupt(
              "snapshot row " + std::to_string(i) +
              " (kind 'l'): lock row although the meta row says pg_locks was not read");
        }
        st = DecodeLock(r, version, &snap.locks.emplace_back());
        break;
      case kKindPrepared:
        st = DecodePrepared(r, &snap.prepared.emplace_back());
        break;
      case kKindSetting:
        st = DecodeSetting(r, &snap.settings.emplace_back());
        break;
      default:
        break;  // the meta row, decoded above
    }
    if (!st.ok()) return st;
  }
  return snap;
}

core::Result<std::vector<std::pair<uint32_t, std::string>>> DecodeRelationNames(const RowSet& rows) {
  static const std::vector<std::string> kColumns{"oid", "name"};
  static constexpr std::string_view kNames[] = {"oid", "name"};
  // The names statement's columns are unnamed expressions; only the width is checked.
  if (rows.columns.size() != kColumns.size()) {
    return core::Status::Corrupt("relation names result has " + std::to_string(rows.columns.size()) +
                                 " columns, want 2 (oid, name)");
  }
  std::vector<std::pair<uint32_t, std::string>> out;
  out.reserve(rows.rows.size());
  for (std::size_t i = 0; i < rows.rows.size(); ++i) {
    const Row& row = rows.rows[i];
    if (row.size() != 2) {
      return core::Status::Corrupt("relation names row " + std::to_string(i) + " has " +
                                   std::to_string(row.size()) + " values, want 2");
    }
    const auto fail = [&](std::size_t col, const std::string& what) {
      return core::Status::Corrupt("relation names row " + std::to_string(i) + ", column " +
                                   std::string(kNames[col]) + ": " + what);
    };
    if (!row[0].has_value()) return fail(0, "unexpected NULL");
    if (!row[1].has_value()) return fail(1, "unexpected NULL");
    std::optional<uint32_t> oid = ParseInt<uint32_t>(*row[0]);
    if (!oid.has_value()) return fail(0, "bad unsigned integer (32 bit) " + Quote(*row[0]));
    out.emplace_back(*oid, *row[1]);
  }
  return out;
}

}  // namespace lockwatch::pg
