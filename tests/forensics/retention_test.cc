#include "agent/forensics/retention.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "tests/forensics/dump_test_util.h"

namespace lockwatch::forensics {
namespace {

using testing::Sec;

struct PlanCase {
  const char* name;
  RetentionPolicy policy;
  std::vector<std::string> want;  // deleted, oldest first
};

// Five dumps, one per minute from t=0, sizes 100..500; "now" is t=300 s.
std::vector<DumpFileInfo> Files() {
  return {{"e", Sec(240), 500},
          {"a", Sec(0), 100},
          {"c", Sec(120), 300},
          {"b", Sec(60), 200},
          {"d", Sec(180), 400}};
}

class PlanRetentionTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanRetentionTest, DeletesOldestBeyondLimits) {
  EXPECT_EQ(PlanRetention(Files(), GetParam().policy, Sec(300)), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PlanRetentionTest,
    ::testing::Values(PlanCase{"NoLimits", {}, {}}, PlanCase{"MaxCount", {3, 0, 0}, {"a", "b"}},
                      PlanCase{"MaxCountAboveTotal", {10, 0, 0}, {}},
                      PlanCase{"MaxAge", {0, Sec(150), 0}, {"a", "b", "c"}},
                      PlanCase{"MaxAgeBoundaryKept", {0, Sec(180), 0}, {"a", "b"}},
                      PlanCase{"MaxTotalBytes", {0, 0, 1000}, {"a", "b", "c"}},
                      PlanCase{"MaxTotalBytesExact", {0, 0, 1500}, {}},
                      PlanCase{"CombinedStrictestWins", {4, Sec(250), 900}, {"a", "b", "c"}}),
    [](const ::testing::TestParamInfo<PlanCase>& p) { return std::string(p.param.name); });

void Touch(const std::string& path, size_t bytes, int64_t mtime_s) {
  std::ofstream(path) << std::string(bytes, 'x');
  const struct timeval times[2] = {{mtime_s, 0}, {mtime_s, 0}};
  ASSERT_EQ(::utimes(path.c_str(), times), 0);
}

TEST(ApplyRetentionTest, DeletesOnlyDumpsAndStalePartials) {
  test::TempDir dir;
  Touch(dir.File("lockwatch-a-1.dump.gz"), 10, 1000);
  Touch(dir.File("lockwatch-a-2.dump.gz"), 10, 2000);
  Touch(dir.File("lockwatch-a-3.dump.gz"), 10, 3000);
  Touch(dir.File("old.dump.gz.partial"), 10, 500);
  Touch(dir.File("live.dump.gz.partial"), 10, 3500);
  Touch(dir.File("notes.txt"), 10, 1);
  RetentionPolicy policy;
  policy.max_count = 2;
  policy.max_age_us = Sec(2000);
  core::Result<std::vector<std::string>> deleted = ApplyRetention(dir.path(), policy, Sec(3600));
  ASSERT_TRUE(deleted.ok()) << deleted.status().message();
  std::vector<std::string> got = deleted.value();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got,
            (std::vector<std::string>{dir.File("lockwatch-a-1.dump.gz"), dir.File("old.dump.gz.partial")}));
  EXPECT_TRUE(test::Exists(dir.File("lockwatch-a-2.dump.gz")));
  EXPECT_TRUE(test::Exists(dir.File("live.dump.gz.partial")));
  EXPECT_TRUE(test::Exists(dir.File("notes.txt")));
}

TEST(ApplyRetentionTest, MissingDirectoryIsAnError) {
  const core::Result<std::vector<std::string>> r = ApplyRetention("/nonexistent/dumps", RetentionPolicy{}, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/dumps"), std::string::npos);
}

}  // namespace
}  // namespace lockwatch::forensics
