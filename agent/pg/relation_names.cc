#include "agent/pg/relation_names.h"

#include <algorithm>

#include "agent/pg/decode.h"

namespace lockwatch::pg {

const std::string* RelationNameCache::Find(RelationKey key) const {
  auto it = names_.find(key);
  return it == names_.end() ? nullptr : &it->second;
}

void RelationNameCache::Insert(RelationKey key, std::string name) {
  if (names_.size() >= capacity_ && names_.find(key) == names_.end()) names_.clear();
  names_[key] = std::move(name);
}

std::vector<RelationKey> NameableRelations(const core::Snapshot& snapshot, uint32_t database_oid) {
  std::vector<RelationKey> keys;
  for (const core::LockRow& l : snapshot.locks) {
    if (!l.relation.has_value() || !l.database.has_value()) continue;
    if (*l.database != database_oid && *l.database != 0) continue;
    keys.emplace_back(*l.database, *l.relation);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

core::Status ResolveRelationNames(uint32_t database_oid, const FetchRelationNamesFn& fetch,
                                  RelationNameCache* cache, core::Snapshot* snapshot, bool* fetched) {
  if (fetched != nullptr) *fetched = false;
  const std::vector<RelationKey> wanted = NameableRelations(*snapshot, database_oid);
  std::vector<uint32_t> missing;
  for (const RelationKey& key : wanted) {
    if (cache->Find(key) == nullptr) missing.push_back(key.second);
  }

  core::Status status;
  std::map<RelationKey, std::string> found;  // this call's answers, kept apart in case the cache is cleared
  if (!missing.empty()) {
    if (fetched != nullptr) *fetched = true;
    core::Result<RowSet> rows = fetch(missing);
    if (!rows.ok()) {
      status = rows.status();
    } else {
      auto names = DecodeRelationNames(rows.value());
      if (!names.ok()) {
        status = names.status();
      } else {
        // An oid is unique among the relations visible from this database (local and shared share one
        // pg_class), so the oid alone tells which wanted key a name belongs to.
        for (auto& [oid, name] : names.value()) {
          for (const RelationKey& key : wanted) {
            if (key.second == oid) found[key] = name;
          }
        }
      }
    }
  }

  snapshot->relation_names.clear();
  for (const RelationKey& key : wanted) {
    if (const std::string* name = cache->Find(key)) {
      snapshot->relation_names.push_back(core::RelationName{key.first, key.second, *name});
    } else if (auto it = found.find(key); it != found.end()) {
      snapshot->relation_names.push_back(core::RelationName{key.first, key.second, it->second});
    }
  }
  for (auto& [key, name] : found) cache->Insert(key, std::move(name));
  return status;
}

std::string OidArrayLiteral(const std::vector<uint32_t>& oids) {
  std::string out = "{";
  for (std::size_t i = 0; i < oids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(oids[i]);
  }
  out += '}';
  return out;
}

}  // namespace lockwatch::pg
