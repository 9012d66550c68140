#pragma once

// Helpers shared by the forensics tests: temporary directories, raw gzip, file reads, a fixture pile-up.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <zlib.h>

#include "agent/core/snapshot.h"

#include "tests/testing/snapshot_builder.h"
#include "tests/testing/temp_dir.h"

namespace lockwatch::forensics::test {

using TempDir = lockwatch::testing::TempDir;

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline bool Exists(const std::string& path) { return std::filesystem::exists(path); }

// `text` as one complete gzip member.
inline std::string Gzip(const std::string& text) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib");
  std::string out(deflateBound(&z, static_cast<uLong>(text.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));  // NOLINT: zlib's API is not const
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A pile-up: root 100 (idle in transaction) holds a row lock; `waiters` sessions queue behind it; `idle`
// sessions do nothing. Query texts carry a literal so privacy modes are observable.
inline core::Snapshot PileUp(core::TimestampUs now, int waiters, int idle) {
  using testing::Sec;
  testing::SnapshotBuilder b;
  b.Now(now).Session(100).State("idle in transaction").Query("update accounts set balance = 0 where id = 42");
  for (int i = 0; i < waiters; ++i) {
    b.Session(200 + i).State("active").Query("update accounts set balance = balance + 1 where id = 42");
  }
  for (int i = 0; i < idle; ++i) b.Session(5000 + i).State("idle").Query("select 'idle secret'");
  b.Lock(100).TransactionId(731).Mode("ExclusiveLock").Granted();
  for (int i = 0; i < waiters; ++i) {
    b.Lock(200 + i).TransactionId(731).Mode("ShareLock").Waiting(now - Sec(10 + i));
    b.Lock(200 + i).TransactionId(static_cast<uint32_t>(800 + i)).Mode("ExclusiveLock").Granted();
  }
  core::Snapshot s = b.Build();
  s.current_database = "app";
  s.settings.push_back(core::Setting{"deadlock_timeout", "1s"});
  for (core::Session& session : s.sessions) {
    session.usename = "app_user";
    session.application_name = "billing-api";
    session.client_addr = "10.20.30." + std::to_string(session.pid % 250);
    session.datname = "app";
    session.xact_start = now - Sec(60);
    session.query_start = now - Sec(30);
    session.state_change = now - Sec(30);
    session.backend_start = now - Sec(3600);
  }
  return s;
}

}  // namespace lockwatch::forensics::test
