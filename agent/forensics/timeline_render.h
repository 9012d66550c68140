#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/forensics/incident_timeline.h"

namespace lockwatch::forensics {

// Version of the `lockwatch analyze --json` document (agent/docs/analyze.md). Fields are only ever added
// within one version.
inline constexpr int kAnalyzeSchemaVersion = 1;

struct TimelineTextOptions {
  int width = 100;           // every line fits (strings from the dump are shortened)
  int max_series_rows = 24;  // polls shown in the table (first, last and peak always among them)
  int max_tree_lines = 60;   // lines of the blocking tree at the peak
};

// The incident as text for a terminal: summary, root blockers, the story in time order, blocked sessions
// over time, the connection surge, the blocking tree at the peak and the sessions by state/application.
// Strings from the dump are made single-line and control characters replaced. Pure.
std::string RenderTimelineText(const Timeline& timeline, const std::string& file,
                               const TimelineTextOptions& options = {});

// The `lockwatch analyze --json` document. Pure.
nlohmann::json TimelineJson(const Timeline& timeline, const std::string& file);

// `s` on one line: whitespace runs become one space, control characters '?'. For text from the dump.
std::string OneLine(std::string_view s);

}  // namespace lockwatch::forensics
