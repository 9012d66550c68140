#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lockwatch::core {

// PostgreSQL heavyweight lock modes, numbered as LOCKMODE in lockdefs.h (1..8). kNone is "no lock".
// SIReadLock (predicate lock) is not part of the conflict table; it is recognised so it can be dropped.
enum class LockMode : uint8_t {
  kNone = 0,
  kAccessShare = 1,
  kRowShare = 2,
  kRowExclusive = 3,
  kShareUpdateExclusive = 4,
  kShare = 5,
  kShareRowExclusive = 6,
  kExclusive = 7,
  kAccessExclusive = 8,
  kSIRead = 9,
};

// A set of modes as PostgreSQL's LOCKMASK: bit (1 << mode).
using LockMask = uint16_t;

constexpr LockMask Bit(LockMode m) { return static_cast<LockMask>(1u << static_cast<unsigned>(m)); }

// Parses pg_locks.mode text ("AccessShareLock" ... "AccessExclusiveLock", "SIReadLock").
std::optional<LockMode> ParseLockMode(std::string_view text);

// The pg_locks.mode text of a mode ("AccessShareLock"); "" for kNone.
std::string_view LockModeName(LockMode mode);

// The LockConflicts[] mask of a requested mode (lock.c): the modes it conflicts with. 0 for kNone/kSIRead.
LockMask ConflictMask(LockMode requested);

// True when `requested` conflicts with `other` (the relation is symmetric).
bool Conflicts(LockMode requested, LockMode other);

// Names of every mode in a mask, joined by "+", e.g. "AccessShareLock+RowExclusiveLock".
std::string MaskNames(LockMask mask);

}  // namespace lockwatch::core
