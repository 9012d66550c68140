// Fuzzes reading a dump back for people: forensics::ReadDumpFromBytes, then BuildTimeline (decoding,
// re-analysis, root end causes, surge), then every renderer: the `lockwatch analyze` text and JSON and the
// `lockwatch report` HTML.
//
// Input: a gzip file (starts with 1f 8b) is read as is; anything else is taken as the decompressed JSON
// lines and gzip-compressed first, so the fuzzer can mutate the records themselves. The seeds of
// corpus/dump_reader_fuzz/ suit this target too.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <zlib.h>

#include "agent/forensics/dump_reader.h"
#include "agent/forensics/incident_timeline.h"
#include "agent/forensics/report_html.h"
#include "agent/forensics/timeline_render.h"

namespace {

std::string Gzip(std::string_view text) {
  z_stream zs{};
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
  lockwatch::core::Result<lockwatch::forensics::Timeline> timeline =
      lockwatch::forensics::BuildTimeline(dump.value());
  if (!timeline.ok()) return 0;
  (void)lockwatch::forensics::RenderTimelineText(timeline.value(), "fuzz.dump.gz");
  (void)lockwatch::forensics::TimelineJson(timeline.value(), "fuzz.dump.gz")
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)lockwatch::forensics::RenderReportHtml(timeline.value(), "fuzz.dump.gz");
  return 0;
}
