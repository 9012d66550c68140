// libFuzzer target: the remediation rules parser must never crash, hang or leak on any input; every
// failure is an InvalidArgument naming file:line:column.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/policy/rules_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const lockwatch::core::Result<lockwatch::core::Policy> parsed =
      lockwatch::policy::ParseRules(text, "fuzz.yaml");
  if (!parsed.ok()) {
    if (parsed.status().code() != lockwatch::core::Status::Code::kInvalidArgument) std::abort();
    if (parsed.status().message().rfind("fuzz.yaml:", 0) != 0) std::abort();
  }
  return 0;
}
