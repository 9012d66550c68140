#include <string>

#include "agent/core/analysis.h"
#include "agent/core/wait_graph.h"

namespace lockwatch::core {
namespace internal {
namespace {

uint64_t NameKey(uint32_t database, uint32_t relation) {
  return (static_cast<uint64_t>(database) << 32) | relation;
}

template <typename T>
std::string Num(const std::optional<T>& value) {
  return value ? std::to_string(*value) : std::string("?");
}

}  // namespace

RelationNameIndex::RelationNameIndex(const Snapshot& snapshot) {
  names_.reserve(snapshot.relation_names.size());
  for (const RelationName& name : snapshot.relation_names) {
    // First entry wins so that a duplicate from the adapter cannot change an earlier answer.
    names_.emplace(NameKey(name.database, name.relation), &name.name);
  }
}

const std::string* RelationNameIndex::Find(std::optional<uint32_t> database,
                                           std::optional<uint32_t> relation) const {
  if (!database || !relation) return nullptr;
  auto it = names_.find(NameKey(*database, *relation));
  return it == names_.end() ? nullptr : it->second;
}

LockTarget DescribeTargetIndexed(const LockRow& row, const Snapshot& snapshot,
                                 const RelationNameIndex& names) {
  LockTarget target;
  target.locktype = row.locktype;
  const std::string& type = row.locktype;

  if (type == "relation" || type == "extend" || type == "page" || type == "tuple") {
    target.database = row.database;
    const std::string* name = names.Find(row.database, row.relation);
    // Unresolved relations (another database, dropped meanwhile) are shown by oid.
    std::string shown = name ? *name : "relation " + Num(row.relation);
    target.relation = name ? *name : "oid " + Num(row.relation);
    if (type == "relation") {
      target.text = name ? "relation " + *name : shown;
    } else if (type == "extend") {
      target.text = "extension of " + shown;
    } else if (type == "page") {
      target.text = "page " + Num(row.page) + " of " + shown;
    } else {
      target.text = "row (" + Num(row.page) + "," + Num(row.tuple) + ") of " + shown;
    }
  } else if (type == "transactionid") {
    target.text = "transaction " + Num(row.transactionid);
  } else if (type == "virtualxid") {
    target.text = "virtual transaction " + row.virtualxid.value_or("?");
  } else if (type == "advisory") {
    target.database = row.database;
    if (row.objsubid == 1 && row.classid && row.objid) {
      // pg_advisory_lock(bigint): classid = high half, objid = low half.
      const auto key = static_cast<int64_t>((static_cast<uint64_t>(*row.classid) << 32) | *row.objid);
      target.text = "advisory key " + std::to_string(key);
    } else if (row.objsubid == 2 && row.classid && row.objid) {
      // pg_advisory_lock(int, int): both keys stored as oids, shown as the signed ints the user passed.
      target.text = "advisory key (" + std::to_string(static_cast<int32_t>(*row.classid)) + "," +
                    std::to_string(static_cast<int32_t>(*row.objid)) + ")";
    } else {
      target.text = "advisory lock " + Num(row.classid) + "/" + Num(row.objid) + "/" + Num(row.objsubid);
    }
  } else if (type == "object") {
    target.database = row.database;
    target.text = "object " + Num(row.classid) + "/" + Num(row.objid) + "/" + Num(row.objsubid) +
                  " in database " + Num(row.database);
  } else if (type == "frozenid") {
    target.database = row.database;
    target.text = "frozen xid of database " + Num(row.database);
  } else if (type == "spectoken" || type == "speculative token") {
    if (snapshot.server_version_num >= 160000) {
      target.text =
          "speculative insertion token " + Num(row.objid) + " of transaction " + Num(row.transactionid);
    } else {
      // Before 16 pg_locks shows the tag in the generic layout: database = xid, classid = token.
      target.text =
          "speculative insertion token " + Num(row.classid) + " of transaction " + Num(row.database);
    }
  } else if (type == "applytransaction") {
    target.database = row.database;
    target.text = "remote transaction " + Num(row.transactionid) + " of subscription " + Num(row.objid);
  } else {
    target.text = type + " lock";
  }
  return target;
}

}  // namespace internal

LockTarget DescribeTarget(const LockRow& row, const Snapshot& snapshot) {
  return internal::DescribeTargetIndexed(row, snapshot, internal::RelationNameIndex(snapshot));
}

}  // namespace lockwatch::core
