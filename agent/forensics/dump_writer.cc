#include "agent/forensics/dump_writer.h"

#include <utility>

#include <zlib.h>

namespace lockwatch::forensics {

struct DumpWriter::Deflater {
  z_stream stream{};
  bool initialised = false;
  ~Deflater() {
    if (initialised) deflateEnd(&stream);
  }
};

core::Result<std::unique_ptr<DumpWriter>> DumpWriter::Create(const std::string& path, DumpHeader header,
                                                             DumpWriterOptions options) {
  DumpFileSystem& fs = options.fs != nullptr ? *options.fs : PosixDumpFileSystem();
  core::Result<std::unique_ptr<WritableFile>> file = fs.CreateExclusive(path + ".partial");
  if (!file.ok()) return file.status();
  std::unique_ptr<DumpWriter> writer(new DumpWriter(path, std::move(options), std::move(file).value()));
  auto deflater = std::make_unique<Deflater>();
  // windowBits 15 + 16: a gzip wrapper, so the file is readable by zcat as well.
  if (deflateInit2(&deflater->stream, writer->options_.compression_level, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return core::Status::Internal("cannot initialise gzip compression");
  }
  deflater->initialised = true;
  writer->deflater_ = std::move(deflater);
  header.query_text = writer->options_.query_text;
  core::Status status = writer->WriteLine(HeaderJson(header), false);
  if (status.ok()) status = writer->Flush();
  if (!status.ok()) return status;
  return writer;
}

DumpWriter::DumpWriter(std::string path, DumpWriterOptions options, std::unique_ptr<WritableFile> file)
    : path_(std::move(path)), options_(std::move(options)), file_(std::move(file)) {
  last_flush_us_ = NowUs();
}

DumpWriter::~DumpWriter() {
  // Not closed: keep what can be kept (a last flush point), leave the .partial file for the reader.
  if (!closed_ && failed_.ok() && dirty_) Flush();
}

int64_t DumpWriter::NowUs() const {
  if (options_.monotonic_us) return options_.monotonic_us();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

core::Status DumpWriter::Fail(core::Status status) {
  if (failed_.ok()) failed_ = status;
  return status;
}

core::Status DumpWriter::Deflate(const char* data, size_t size, int flush_mode) {
  z_stream& z = deflater_->stream;
  // zlib's avail_in is 32-bit; records are far smaller, but feed in slices anyway.
  constexpr size_t kSlice = 1U << 30;
  char out[64 * 1024];
  do {
    const size_t slice = size < kSlice ? size : kSlice;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));  // NOLINT: zlib's API is not const
    z.avail_in = static_cast<uInt>(slice);
    const int mode = slice == size ? flush_mode : Z_NO_FLUSH;
    do {
      z.next_out = reinterpret_cast<Bytef*>(out);
      z.avail_out = sizeof out;
      const int rc = deflate(&z, mode);
      if (rc == Z_STREAM_ERROR) return Fail(core::Status::Internal("gzip compression failed"));
      const size_t produced = sizeof out - z.avail_out;
      if (produced > 0) {
        core::Status st = file_->Append(std::string_view(out, produced));
        if (!st.ok()) return Fail(std::move(st));
        compressed_bytes_ += produced;
      }
    } while (z.avail_out == 0);
    data += slice;
    size -= slice;
  } while (size > 0);
  return core::Status::Ok();
}

core::Status DumpWriter::WriteLine(const nlohmann::json& record, bool count) {
  if (!failed_.ok()) return failed_;
  if (closed_) return core::Status::Internal("dump " + path_ + " is already closed");
  // Server strings may be invalid UTF-8 (SQL_ASCII databases): replace rather than lose the record.
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  core::Status st = Deflate(line.data(), line.size(), Z_NO_FLUSH);
  if (!st.ok()) return st;
  uncompressed_bytes_ += line.size();
  if (count) ++records_;
  dirty_ = true;
  if (NowUs() - last_flush_us_ >= std::chrono::microseconds(options_.flush_interval).count()) return Flush();
  return core::Status::Ok();
}

core::Status DumpWriter::Flush() {
  if (!failed_.ok()) return failed_;
  if (closed_) return core::Status::Ok();
  core::Status st = Deflate(nullptr, 0, Z_SYNC_FLUSH);
  if (!st.ok()) return st;
  st = file_->SyncData();
  if (!st.ok()) return Fail(std::move(st));
  dirty_ = false;
  last_flush_us_ = NowUs();
  return core::Status::Ok();
}

core::Status DumpWriter::WriteSnapshot(const std::string& phase, const core::Snapshot& snapshot,
                                       const core::Report& report) {
  return WriteLine(SnapshotRecord(phase, snapshot, report, options_.query_text), true);
}

core::Status DumpWriter::WriteRecorded(const core::RecordedEntry& entry) {
  return WriteLine(RecordedEntryRecord(entry, options_.query_text), true);
}

core::Status DumpWriter::WriteIncident(const core::IncidentEvent& event, core::TimestampUs at) {
  return WriteLine(IncidentRecord(event, at, options_.query_text), true);
}

core::Status DumpWriter::WriteRecord(const nlohmann::json& record) { return WriteLine(record, true); }

core::Status DumpWriter::Close(core::TimestampUs at) {
  if (!failed_.ok()) return failed_;
  if (closed_) return core::Status::Ok();
  core::Status st = WriteLine(EndRecord(at, records_), false);
  if (!st.ok()) return st;
  st = Deflate(nullptr, 0, Z_FINISH);
  if (!st.ok()) return st;
  st = file_->Close();
  if (!st.ok()) return Fail(std::move(st));
  closed_ = true;
  DumpFileSystem& fs = options_.fs != nullptr ? *options_.fs : PosixDumpFileSystem();
  st = fs.Rename(partial_path(), path_);
  if (!st.ok()) return Fail(std::move(st));
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  st = fs.SyncDirectory(dir);
  if (!st.ok()) return Fail(std::move(st));
  return core::Status::Ok();
}

}  // namespace lockwatch::forensics
