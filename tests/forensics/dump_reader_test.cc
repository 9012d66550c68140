#include "agent/forensics/dump_reader.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/analysis.h"
#include "agent/forensics/dump_writer.h"

#include "tests/forensics/dump_test_util.h"

namespace lockwatch::forensics {
namespace {

using test::Gzip;

const char kHeader[] = R"({"format":"lockwatch-dump","schema_version":1,"target":"db1"})";

struct BadInput {
  const char* name;
  std::string bytes;
  core::Status::Code code;
  const char* message_part;
};

class ReadDumpErrorTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(ReadDumpErrorTest, FailsWithClearMessage) {
  const core::Result<Dump> d = ReadDumpFromBytes(GetParam().bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), GetParam().code) << d.status().message();
  EXPECT_NE(d.status().message().find(GetParam().message_part), std::string::npos) << d.status().message();
}

// A valid complete dump with one record, and the same bytes with the middle of the deflate data flipped.
std::string ValidDump() {
  return Gzip(std::string(kHeader) + "\n" + R"({"type":"snapshot","phase":"manual","pad":")" +
              std::string(2000, 'z') + "\"}\n" + R"({"type":"end","records":1})" + "\n");
}
std::string CorruptedDump() {
  std::string bytes = ValidDump();
  for (size_t i = 12; i < 20 && i < bytes.size(); ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  return bytes;
}

using Code = core::Status::Code;

INSTANTIATE_TEST_SUITE_P(
    Cases, ReadDumpErrorTest,
    ::testing::Values(
        BadInput{"Empty", "", Code::kInvalidArgument, "empty file"},
        BadInput{"NotGzip", "{\"format\":\"lockwatch-dump\"}\n", Code::kInvalidArgument, "not a gzip file"},
        BadInput{"OnlyGzipMagic", "\x1f\x8b", Code::kCorrupt, "no header line"},
        BadInput{"CorruptDeflateData", CorruptedDump(), Code::kCorrupt, "corrupt gzip data"},
        BadInput{"HeaderNotJson", Gzip("lockwatch\n"), Code::kCorrupt, "line 1: not valid JSON"},
        BadInput{"HeaderNotObject", Gzip("[1,2]\n"), Code::kCorrupt, "line 1: not a JSON object"},
        BadInput{"WrongFormat", Gzip("{\"format\":\"other\",\"schema_version\":1}\n"), Code::kInvalidArgument,
                 "not a lockwatch dump header"},
        BadInput{"MissingVersion", Gzip("{\"format\":\"lockwatch-dump\"}\n"), Code::kCorrupt,
                 "no integer schema_version"},
        BadInput{"FutureVersion", Gzip("{\"format\":\"lockwatch-dump\",\"schema_version\":2}\n"),
                 Code::kInvalidArgument, "schema_version 2 is newer than this lockwatch reads (1)"},
        BadInput{"ZeroVersion", Gzip("{\"format\":\"lockwatch-dump\",\"schema_version\":0}\n"),
                 Code::kCorrupt, "invalid schema_version 0"},
        BadInput{"RecordNotJson", Gzip(std::string(kHeader) + "\n{\"type\":\"end\"}x\n"), Code::kCorrupt,
                 "line 2: not valid JSON"},
        BadInput{"RecordWithoutType", Gzip(std::string(kHeader) + "\n{}\n{}\n"), Code::kCorrupt,
                 "line 2: record has no string \"type\""},
        BadInput{"ThirdLineBroken",
                 Gzip(std::string(kHeader) + "\n{\"type\":\"snapshot\"}\n{\"type\":\n{\"type\":\"end\"}\n"),
                 Code::kCorrupt, "line 3: not valid JSON"},
        BadInput{"HeaderIncomplete", Gzip("{\"format\":\"lockwatch-dump\""), Code::kCorrupt,
                 "line 1: incomplete header line"}),
    [](const ::testing::TestParamInfo<BadInput>& p) { return std::string(p.param.name); });

TEST(ReadDumpTest, TruncatedCompressedTailKeepsCompleteLines) {
  const std::string text = std::string(kHeader) + "\n" + R"({"type":"snapshot","n":1})" + "\n" +
                           R"({"type":"snapshot","n":2})" + "\n" + R"({"type":"end","records":2})" + "\n";
  const std::string bytes = Gzip(text);
  const std::string_view view(bytes);
  // Every cut of the compressed stream reads without error, or fails only for lack of a header line.
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    const core::Result<Dump> d = ReadDumpFromBytes(view.substr(0, cut));
    if (!d.ok()) {
      EXPECT_TRUE(d.status().message().find("no header line") != std::string::npos ||
                  d.status().message().find("incomplete header line") != std::string::npos ||
                  d.status().message().find("empty file") != std::string::npos ||
                  d.status().message().find("not a gzip file") != std::string::npos)
          << "cut " << cut << ": " << d.status().message();
      continue;
    }
    for (const DumpRecord& r : d.value().records) EXPECT_FALSE(r.type.empty());
    if (cut < bytes.size()) {
      EXPECT_FALSE(d.value().warnings.empty()) << "cut " << cut;
    }
  }
  const core::Result<Dump> whole = ReadDumpFromBytes(bytes);
  ASSERT_TRUE(whole.ok());
  EXPECT_TRUE(whole.value().complete);
  EXPECT_TRUE(whole.value().warnings.empty());
}

TEST(ReadDumpTest, IncompleteLastLineIsDroppedAndFlagged) {
  const core::Result<Dump> d =
      ReadDumpFromBytes(Gzip(std::string(kHeader) + "\n{\"type\":\"snapshot\"}\n{\"type\":\"snap"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d.value().records.size(), 1U);
  ASSERT_EQ(d.value().warnings.size(), 2U);
  EXPECT_EQ(d.value().warnings[0], "line 3: incomplete last line dropped (13 bytes)");
  EXPECT_EQ(d.value().warnings[1], "truncated: no end record");
}

TEST(ReadDumpTest, UnknownRecordTypesAreKeptWithAWarning) {
  const core::Result<Dump> d = ReadDumpFromBytes(
      Gzip(std::string(kHeader) + "\n{\"type\":\"annotation\",\"text\":\"x\"}\n{\"type\":\"end\"}\n"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d.value().records.size(), 2U);
  EXPECT_EQ(d.value().records[0].type, "annotation");
  ASSERT_EQ(d.value().warnings.size(), 1U);
  EXPECT_NE(d.value().warnings[0].find("unknown record type \"annotation\""), std::string::npos);
  EXPECT_TRUE(d.value().complete);
}

TEST(ReadDumpTest, DecompressionLimitIsEnforced) {
  ReadDumpOptions options;
  options.max_decompressed_bytes = 1000;
  const core::Result<Dump> d = ReadDumpFromBytes(
      Gzip(std::string(kHeader) + "\n" + "{\"type\":\"x\",\"p\":\"" + std::string(100000, 'a') + "\"}\n"),
      options);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("decompresses to more than 1000 bytes"), std::string::npos);
}

TEST(ReadDumpTest, MissingFileNamesThePath) {
  const core::Result<Dump> d = ReadDump("/nonexistent/dir/x.dump.gz");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("/nonexistent/dir/x.dump.gz"), std::string::npos);
}

TEST(ReadDumpTest, ErrorsFromFileNameThePath) {
  test::TempDir dir;
  const std::string path = dir.File("bad.dump.gz");
  {
    std::ofstream out(path, std::ios::binary);
    out << Gzip("[]\n");
  }
  const core::Result<Dump> d = ReadDump(path);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), path + ": line 1: not a JSON object");
}

TEST(DecodeSnapshotTest, RejectsWrongTypesWithoutThrowing) {
  const struct {
    const char* json;
    const char* part;
  } cases[] = {
      {R"({"sessions":[{"pid":"x"}]})", "snapshot:"},
      {R"({"sessions":{}})", "\"sessions\" is not an array"},
      {R"({"locks":[{"mode":"NoSuchLock"}]})", "unknown lock mode"},
      {R"({"captured_at":"yesterday"})", "bad timestamp"},
      {R"([])", "not an object"},
  };
  for (const auto& c : cases) {
    const core::Result<core::Snapshot> s = DecodeSnapshot(nlohmann::json::parse(c.json));
    ASSERT_FALSE(s.ok()) << c.json;
    EXPECT_EQ(s.status().code(), core::Status::Code::kCorrupt);
    EXPECT_NE(s.status().message().find(c.part), std::string::npos) << s.status().message();
  }
}

}  // namespace
}  // namespace lockwatch::forensics
