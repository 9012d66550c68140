#include "agent/forensics/dump_reader.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <utility>

#include <zlib.h>

#include "agent/forensics/dump_records.h"

namespace lockwatch::forensics {
namespace {

struct Inflated {
  std::string text;
  bool ended = false;  // the gzip stream reached its end (trailer checked)
};

core::Result<Inflated> Inflate(std::string_view in, size_t limit) {
  Inflated out;
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK)
    return core::Status::Internal("cannot initialise gzip decompression");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));  // NOLINT: zlib's API is not const
  z.avail_in = static_cast<uInt>(in.size());
  char buf[64 * 1024];
  core::Status error;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.text.append(buf, sizeof buf - z.avail_out);
    if (out.text.size() > limit) {
      error =
          core::Status::InvalidArgument("dump decompresses to more than " + std::to_string(limit) + " bytes");
      break;
    }
    if (rc == Z_STREAM_END) {
      out.ended = true;
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) break;  // input exhausted before the end: truncated, keep what was decoded
    error = core::Status::Corrupt(std::string("corrupt gzip data") + (z.msg != nullptr ? ": " : "") +
                                  (z.msg != nullptr ? z.msg : ""));
    break;
  }
  inflateEnd(&z);
  if (!error.ok()) {
    // Name the line the corruption hit, so the reader knows how much was good.
    const size_t lines = static_cast<size_t>(std::count(out.text.begin(), out.text.end(), '\n'));
    return core::Status::Error(error.code(),
                               error.message() + " (in line " + std::to_string(lines + 1) + ")");
  }
  return out;
}

std::string Line(int n) { return "line " + std::to_string(n) + ": "; }

}  // namespace

core::Result<Dump> ReadDumpFromBytes(std::string_view compressed, const ReadDumpOptions& options) {
  if (compressed.empty()) return core::Status::InvalidArgument("empty file: not a lockwatch dump");
  if (compressed.size() < 2 || static_cast<unsigned char>(compressed[0]) != 0x1f ||
      static_cast<unsigned char>(compressed[1]) != 0x8b) {
    return core::Status::InvalidArgument("not a gzip file: not a lockwatch dump");
  }
  if (compressed.size() > UINT32_MAX) return core::Status::InvalidArgument("dump file too large");
  core::Result<Inflated> inflated = Inflate(compressed, options.max_decompressed_bytes);
  if (!inflated.ok()) return inflated.status();
  const std::string& text = inflated.value().text;

  Dump dump;
  size_t pos = 0;
  int line_no = 0;
  bool after_end = false;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    ++line_no;
    if (nl == std::string::npos) {
      dump.warnings.push_back(Line(line_no) + "incomplete last line dropped (" +
                              std::to_string(text.size() - pos) + " bytes)");
      break;
    }
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded()) return core::Status::Corrupt(Line(line_no) + "not valid JSON");
    if (!record.is_object()) return core::Status::Corrupt(Line(line_no) + "not a JSON object");

    if (line_no == 1) {
      auto format = record.find("format");
      if (format == record.end() || !format->is_string() || *format != kDumpFormatName) {
        return core::Status::InvalidArgument(Line(1) + "not a lockwatch dump header (\"format\" is not \"" +
                                             kDumpFormatName + "\")");
      }
      auto version = record.find("schema_version");
      if (version == record.end() || !version->is_number_integer()) {
        return core::Status::Corrupt(Line(1) + "header has no integer schema_version");
      }
      const auto v = version->get<int64_t>();
      if (v > kDumpSchemaVersion) {
        return core::Status::InvalidArgument("dump schema_version " + std::to_string(v) +
                                             " is newer than this lockwatch reads (" +
                                             std::to_string(kDumpSchemaVersion) + "); use a newer lockwatch");
      }
      if (v < 1) return core::Status::Corrupt(Line(1) + "invalid schema_version " + std::to_string(v));
      dump.schema_version = static_cast<int>(v);
      dump.header = std::move(record);
      continue;
    }

    auto type = record.find("type");
    if (type == record.end() || !type->is_string()) {
      return core::Status::Corrupt(Line(line_no) + "record has no string \"type\"");
    }
    if (after_end) {
      dump.warnings.push_back(Line(line_no) + "record after the end record");
    }
    DumpRecord r;
    r.line = line_no;
    r.type = type->get<std::string>();
    r.record = std::move(record);
    if (r.type == "end") {
      dump.complete = true;
      after_end = true;
    } else if (r.type != "snapshot" && r.type != "incident") {
      dump.warnings.push_back(Line(line_no) + "unknown record type \"" + r.type + "\" kept unread");
    }
    dump.records.push_back(std::move(r));
  }
  if (line_no == 0) return core::Status::Corrupt("no header line: the file holds no complete line");
  if (dump.header.is_null()) return core::Status::Corrupt(Line(1) + "incomplete header line");
  if (!dump.complete)
    dump.warnings.push_back("truncated: no end record");
  else if (!inflated.value().ended)
    dump.warnings.push_back("truncated: gzip stream has no trailer");
  return dump;
}

core::Result<Dump> ReadDump(const std::string& path, const ReadDumpOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::Status::InvalidArgument("cannot open " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return core::Status::Internal("cannot read " + path);
  core::Result<Dump> dump = ReadDumpFromBytes(bytes.str(), options);
  if (!dump.ok()) {
    return core::Status::Error(dump.status().code(), path + ": " + dump.status().message());
  }
  return dump;
}

}  // namespace lockwatch::forensics
