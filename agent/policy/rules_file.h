#pragma once

#include <string>

#include "agent/core/policy.h"
#include "agent/core/status.h"

namespace lockwatch::policy {

// Reads and validates a remediation rules file (format: agent/docs/rules.md). Every error message starts
// with "file:line:column: " (1-based) and says what was expected; unknown keys, duplicate keys, duplicate
// rule names, bad durations, regular expressions and address ranges, and `cancel` on a rule that only
// matches idle-in-transaction sessions are errors. Errors of different rules are all reported, one per
// line of the message (the first error of each rule).
core::Result<core::Policy> LoadRules(const std::string& path);

// As LoadRules, from text; `file_name` is used in messages only.
core::Result<core::Policy> ParseRules(const std::string& text, const std::string& file_name);

// Parses one protected-client entry as the rules and the agent configuration write it: "local" (Unix
// sockets) or an address range. Errors describe the expected form.
core::Result<core::ClientMatcher> ParseClientMatcher(const std::string& text);

// The longest regular expression accepted in a `query` condition.
inline constexpr size_t kMaxQueryPatternLength = 1000;

}  // namespace lockwatch::policy
