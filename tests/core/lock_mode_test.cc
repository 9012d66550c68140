#include "agent/core/lock_mode.h"

#include <array>
#include <string>

#include <gtest/gtest.h>

namespace lockwatch::core {
namespace {

constexpr std::array<LockMode, 8> kAll = {
    LockMode::kAccessShare,  LockMode::kRowShare,
    LockMode::kRowExclusive, LockMode::kShareUpdateExclusive,
    LockMode::kShare,        LockMode::kShareRowExclusive,
    LockMode::kExclusive,    LockMode::kAccessExclusive,
};

// The conflict table of postgres-locks.md section 1, written out literally: row = requested mode, columns
// AS RS RX SUX S SRX X AX. 'X' = conflicts.
constexpr std::array<const char*, 8> kTable = {
    ".......X",  // AccessShare
    "......XX",  // RowShare
    "....XXXX",  // RowExclusive
    "...XXXXX",  // ShareUpdateExclusive
    "..XX.XXX",  // Share
    "..XXXXXX",  // ShareRowExclusive
    ".XXXXXXX",  // Exclusive
    "XXXXXXXX",  // AccessExclusive
};

TEST(LockModeTest, ConflictTableMatchesPostgresForAll64Pairs) {
  for (size_t r = 0; r < kAll.size(); ++r) {
    for (size_t c = 0; c < kAll.size(); ++c) {
      const bool expected = kTable[r][c] == 'X';
      EXPECT_EQ(Conflicts(kAll[r], kAll[c]), expected)
          << LockModeName(kAll[r]) << " vs " << LockModeName(kAll[c]);
    }
  }
}

TEST(LockModeTest, ConflictRelationIsSymmetric) {
  for (LockMode a : kAll) {
    for (LockMode b : kAll) {
      EXPECT_EQ(Conflicts(a, b), Conflicts(b, a)) << LockModeName(a) << " vs " << LockModeName(b);
    }
  }
}

TEST(LockModeTest, ConflictMasksAreLockConflictsOfLockC) {
  constexpr std::array<LockMask, 8> kMasks = {0x100, 0x180, 0x1E0, 0x1F0, 0x1D8, 0x1F8, 0x1FC, 0x1FE};
  for (size_t i = 0; i < kAll.size(); ++i) EXPECT_EQ(ConflictMask(kAll[i]), kMasks[i]) << i;
}

TEST(LockModeTest, NoneAndSIReadConflictWithNothing) {
  EXPECT_EQ(ConflictMask(LockMode::kNone), 0);
  EXPECT_EQ(ConflictMask(LockMode::kSIRead), 0);
  for (LockMode m : kAll) {
    EXPECT_FALSE(Conflicts(m, LockMode::kSIRead));
    EXPECT_FALSE(Conflicts(LockMode::kSIRead, m));
  }
}

TEST(LockModeTest, ParsesAndNamesEveryMode) {
  struct Case {
    const char* text;
    LockMode mode;
  };
  const Case cases[] = {
      {"AccessShareLock", LockMode::kAccessShare},
      {"RowShareLock", LockMode::kRowShare},
      {"RowExclusiveLock", LockMode::kRowExclusive},
      {"ShareUpdateExclusiveLock", LockMode::kShareUpdateExclusive},
      {"ShareLock", LockMode::kShare},
      {"ShareRowExclusiveLock", LockMode::kShareRowExclusive},
      {"ExclusiveLock", LockMode::kExclusive},
      {"AccessExclusiveLock", LockMode::kAccessExclusive},
      {"SIReadLock", LockMode::kSIRead},
  };
  for (const Case& c : cases) {
    auto parsed = ParseLockMode(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text;
    EXPECT_EQ(*parsed, c.mode);
    EXPECT_EQ(LockModeName(c.mode), c.text);
  }
}

TEST(LockModeTest, RejectsUnknownModeText) {
  EXPECT_FALSE(ParseLockMode("").has_value());
  EXPECT_FALSE(ParseLockMode("accesssharelock").has_value());
  EXPECT_FALSE(ParseLockMode("AccessShare").has_value());
  EXPECT_EQ(LockModeName(LockMode::kNone), "");
}

TEST(LockModeTest, MaskNamesJoinsModesInOrder) {
  EXPECT_EQ(MaskNames(0), "");
  EXPECT_EQ(MaskNames(Bit(LockMode::kAccessShare)), "AccessShareLock");
  EXPECT_EQ(MaskNames(Bit(LockMode::kRowExclusive) | Bit(LockMode::kAccessShare)),
            "AccessShareLock+RowExclusiveLock");
  EXPECT_EQ(MaskNames(0x1FE),
            "AccessShareLock+RowShareLock+RowExclusiveLock+ShareUpdateExclusiveLock+ShareLock+"
            "ShareRowExclusiveLock+ExclusiveLock+AccessExclusiveLock");
}

}  // namespace
}  // namespace lockwatch::core
