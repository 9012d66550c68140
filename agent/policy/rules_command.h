#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "agent/app/cli_context.h"
#include "agent/core/policy.h"

namespace lockwatch::policy {

// The query normaliser the policy uses in production: forensics::ProcessQueryText in kNormalize mode
// (libpg_query, or literal redaction when the text does not parse).
core::QueryNormalizer MakeQueryNormalizer();

// `lockwatch rules check FILE...`: validates each rules file; prints "FILE: ok: N rules" per valid file and
// every error (file:line:column: ...) on context.err. Returns kExitOk when all are valid, kExitError
// otherwise.
int RunRulesCheck(const std::vector<std::string>& files, app::CliContext& context);

struct RulesTestOptions {
  std::string rules_file;
  std::vector<std::string> dumps;
  bool json = false;
  // Dumps written before the superuser status was recorded leave it unknown, and unknown is treated as a
  // superuser (never a victim). This treats unknown as "not a superuser" for the replay only.
  bool assume_non_superuser = false;
  core::Protection protection;
};

// `lockwatch rules test --rules FILE DUMP...`: replays the rules over the snapshot records of recorded
// dumps and prints what would have been done, when, to whom and why (each session once per rule and
// outcome, as the enforcer acts once and then waits), then a summary. Nothing is signalled. Returns
// kExitOk, or kExitError when the rules file is invalid or a dump cannot be read (the other dumps are
// still replayed).
int RunRulesTest(const RulesTestOptions& options, app::CliContext& context);

// Adds `rules check` and `rules test` to the CLI; the callbacks store the status in context.exit_code.
// `context` must outlive app.parse().
void AddRulesCommand(CLI::App& app, app::CliContext& context);

}  // namespace lockwatch::policy
