// Fuzzes the dump reader (forensics::ReadDumpFromBytes) and the decoding of every snapshot record it
// returns (forensics::DecodeSnapshot), then analyses each decoded snapshot.
//
// Input: a gzip file (starts with 1f 8b) is read as is, which exercises the inflate path and truncated or
// corrupt streams. Anything else is taken as the decompressed JSON lines and gzip-compressed first, so the
// fuzzer can mutate the records themselves (seeds in corpus/dump_reader_fuzz/ include both forms).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <zlib.h>

#include "agent/core/analysis.h"
#include "agent/forensics/dump_reader.h"
#include "agent/forensics/dump_records.h"

namespace {

std::string Gzip(std::string_view text) {
  z_stream zs{};
  // windowBits 15 + 16: gzip wrapper.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string bytes = is_gzip ? std::string(input) : Gzip(input);

  lockwatch::forensics::ReadDumpOptions options;
  options.max_decompressed_bytes = size_t{64} << 20;
  lockwatch::core::Result<lockwatch::forensics::Dump> dump =
      lockwatch::forensics::ReadDumpFromBytes(bytes, options);
  if (!dump.ok()) return 0;
  for (const lockwatch::forensics::DumpRecord& record : dump.value().records) {
    if (record.type != "snapshot" || !record.record.is_object()) continue;
    auto it = record.record.find("snapshot");
    if (it == record.record.end()) continue;
    lockwatch::core::Result<lockwatch::core::Snapshot> snapshot = lockwatch::forensics::DecodeSnapshot(*it);
    if (snapshot.ok()) (void)lockwatch::core::Analyze(snapshot.value());
  }
  return 0;
}
