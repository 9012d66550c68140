// Fuzzes the two YAML configuration parsers: the agent config (config::ParseAgentConfig, from text) and the
// exporter-toolkit web config (web::LoadWebConfig, which only reads files, so each input is written to a
// per-process temporary file first).
//
// Input: byte 0 selects the parser (even: agent config, odd: web config); the rest is the YAML text.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "agent/config/config.h"
#include "agent/web/http_server.h"

namespace {

const std::string& WebConfigPath() {
  static const std::string path = "/tmp/lockwatch-fuzz-web-" + std::to_string(getpid()) + ".yml";
  return path;
}

bool WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1U) == 0) {
    (void)lockwatch::config::ParseAgentConfig(text, "fuzz.yml");
    return 0;
  }
  if (!WriteFile(WebConfigPath(), text)) return 0;
  (void)lockwatch::web::LoadWebConfig(WebConfigPath());
  std::remove(WebConfigPath().c_str());
  return 0;
}
