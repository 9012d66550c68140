#include "agent/core/lock_mode.h"

#include <array>

namespace lockwatch::core {
namespace {

struct ModeInfo {
  LockMode mode;
  std::string_view name;
};

constexpr std::array<ModeInfo, 9> kModes = {{
    {LockMode::kAccessShare, "AccessShareLock"},
    {LockMode::kRowShare, "RowShareLock"},
    {LockMode::kRowExclusive, "RowExclusiveLock"},
    {LockMode::kShareUpdateExclusive, "ShareUpdateExclusiveLock"},
    {LockMode::kShare, "ShareLock"},
    {LockMode::kShareRowExclusive, "ShareRowExclusiveLock"},
    {LockMode::kExclusive, "ExclusiveLock"},
    {LockMode::kAccessExclusive, "AccessExclusiveLock"},
    {LockMode::kSIRead, "SIReadLock"},
}};

// LockConflicts[] of lock.c, indexed by LOCKMODE. Index 0 (NoLock) and 9 (SIRead, not a heavyweight mode)
// conflict with nothing.
constexpr std::array<LockMask, 10> kConflicts = {
    0x000, 0x100, 0x180, 0x1E0, 0x1F0, 0x1D8, 0x1F8, 0x1FC, 0x1FE, 0x000,
};

}  // namespace

std::optional<LockMode> ParseLockMode(std::string_view text) {
  for (const ModeInfo& info : kModes) {
    if (info.name == text) return info.mode;
  }
  return std::nullopt;
}

std::string_view LockModeName(LockMode mode) {
  for (const ModeInfo& info : kModes) {
    if (info.mode == mode) return info.name;
  }
  return "";
}

LockMask ConflictMask(LockMode requested) {
  const auto index = static_cast<size_t>(requested);
  return index < kConflicts.size() ? kConflicts[index] : LockMask{0};
}

bool Conflicts(LockMode requested, LockMode other) { return (ConflictMask(requested) & Bit(other)) != 0; }

std::string MaskNames(LockMask mask) {
  std::string out;
  for (const ModeInfo& info : kModes) {
    if ((mask & Bit(info.mode)) == 0) continue;
    if (!out.empty()) out += '+';
    out += info.name;
  }
  return out;
}

}  // namespace lockwatch::core
