#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/status.h"

namespace lockwatch::forensics {

struct DumpRecord {
  int line = 0;           // 1-based line number in the decompressed file (the header is line 1)
  std::string type;       // "snapshot", "incident", "end", or a type added by a later writer
  nlohmann::json record;  // the whole line
};

struct Dump {
  nlohmann::json header;
  int schema_version = 0;
  std::vector<DumpRecord> records;  // every complete record line after the header, the end record included
  bool complete = false;            // an end record was read
  // Conditions that do not prevent reading, e.g. "truncated: no end record" for a .partial file left by a
  // killed agent, or a dropped incomplete last line.
  std::vector<std::string> warnings;
};

struct ReadDumpOptions {
  // Refuse files that decompress to more than this (a guard against decompression bombs).
  size_t max_decompressed_bytes = size_t{1} << 30;
};

// Parses a dump from its compressed bytes. Never throws and never crashes on any input: errors are
// kCorrupt with a message naming the line ("line 3: not valid JSON: ..."), kInvalidArgument for a file
// that is not a lockwatch dump, and an error naming both versions for a schema_version newer than
// kDumpSchemaVersion. A stream that simply ends early (crash, copy of a file being written) is not an
// error: the complete lines are returned, the incomplete tail is dropped and flagged in `warnings`.
core::Result<Dump> ReadDumpFromBytes(std::string_view compressed, const ReadDumpOptions& options = {});

// Reads a dump file (final or .partial).
core::Result<Dump> ReadDump(const std::string& path, const ReadDumpOptions& options = {});

}  // namespace lockwatch::forensics
