// Writes the committed dump fixtures of tests/forensics/fixtures/ with the current writer:
//   lockwatch_forensics_make_fixtures <dir>
// Run it only when adding the fixture of a new schema version; the files of earlier versions are kept as
// they are, so the compatibility tests keep proving old dumps read.

#include <cstdio>
#include <exception>
#include <string>

#include "tests/forensics/incident_scenarios.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fixtures dir>\n", argv[0]);
    return 2;
  }
  namespace t = lockwatch::forensics::test;
  try {
    // v1-incident: a pile-up behind one idle-in-transaction root, a surge of mobile-api sessions from
    // 10.1.2.0/24, a lockwatch action terminating the root, the root gone at 14:00:20.
    std::vector<t::PollSpec> polls = t::PileUpPolls(t::RootState::kGone);
    for (t::PollSpec& p : polls) {
      if (p.at == t::kT0 + lockwatch::testing::Sec(10)) p.surge = 150;
      if (p.at == t::kT0 + lockwatch::testing::Sec(15)) p.surge = 300;
    }
    t::ScenarioOptions options;
    options.extra_records = {{6, nlohmann::json{{"type", "action"},
                                                {"at", "2026-11-25T14:00:18.000000Z"},
                                                {"rule", "idle-tx-root"},
                                                {"action", "terminate"},
                                                {"pid", 100},
                                                {"result", "ok"},
                                                {"dry_run", false}}}};
    const std::string path = std::string(argv[1]) + "/v1-incident.dump.gz";
    t::WriteIncidentDump(path, {t::RootSpec{}}, polls, options);
    std::printf("%s\n", path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
