#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/snapshot.h"
#include "agent/core/status.h"
#include "agent/pg/row_set.h"

namespace lockwatch::pg {

// A relation as pg_locks names it: (database oid, relation oid); database 0 = shared catalog.
using RelationKey = std::pair<uint32_t, uint32_t>;

// Names of relations already resolved by one collector. Bounded: when an insert would exceed the
// capacity the whole cache is cleared first (names are cheap to fetch again; an LRU would cost more than
// it saves). A name can go stale after ALTER TABLE RENAME until the cache is cleared; this is accepted.
// Not thread-safe.
class RelationNameCache {
 public:
  static constexpr std::size_t kDefaultCapacity = 10000;
  explicit RelationNameCache(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The cached name, or nullptr.
  const std::string* Find(RelationKey key) const;
  void Insert(RelationKey key, std::string name);
  void Clear() { names_.clear(); }
  std::size_t size() const { return names_.size(); }

 private:
  std::size_t capacity_;
  std::map<RelationKey, std::string> names_;
};

// The relations of snapshot lock rows that a connection to database `database_oid` can name: those with
// database == database_oid or database == 0. Sorted, without duplicates.
std::vector<RelationKey> NameableRelations(const core::Snapshot& snapshot, uint32_t database_oid);

// Runs RelationNamesSql() for the given oids and returns its result.
using FetchRelationNamesFn = std::function<core::Result<RowSet>(const std::vector<uint32_t>& oids)>;

// Fills snapshot->relation_names for every nameable relation (see NameableRelations): from `cache`, and
// for the misses with one call of `fetch` (none when everything is cached), whose answers are cached.
// Best effort: when `fetch` fails or returns a malformed result, the names found so far are still filled
// in, the others stay unnamed (oids), and the error is returned for logging; the snapshot stays valid.
// `fetched` (may be null) is set to true when `fetch` was called.
core::Status ResolveRelationNames(uint32_t database_oid, const FetchRelationNamesFn& fetch,
                                  RelationNameCache* cache, core::Snapshot* snapshot,
                                  bool* fetched = nullptr);

// The oid[] literal for RelationNamesSql's parameter: "{1,2,3}".
std::string OidArrayLiteral(const std::vector<uint32_t>& oids);

}  // namespace lockwatch::pg
