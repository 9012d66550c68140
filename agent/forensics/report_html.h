#pragma once

#include <string>
#include <string_view>

#include "agent/forensics/incident_timeline.h"

namespace lockwatch::forensics {

struct ReportHtmlOptions {
  // The Content-Security-Policy nonce of the page's one inline script ([A-Za-z0-9+/=] only). Callers pass
  // a fresh random value per report; with it, a script that slipped into the page some other way would
  // not run.
  std::string nonce = "lockwatch";
  int max_session_rows = 2000;  // rows of the session table (roots and waiters first)
};

// `lockwatch report`: one self-contained HTML page (inline CSS, inline SVG chart, one small inline script;
// a Content-Security-Policy forbids every fetch) with the summary, the story, a chart of blocked sessions
// per root over time, the root blockers, the connection surge, the blocking tree at the peak and the
// session table at the peak. Every string from the dump is HTML-escaped. When the page's script runs to
// its end it sets data-rendered="ok" on <body> (a check for headless renderers). Pure.
std::string RenderReportHtml(const Timeline& timeline, const std::string& file,
                             const ReportHtmlOptions& options = {});

// `s` with &, <, >, " and ' as character references and control characters other than newline and tab
// replaced by '?'.
std::string HtmlEscape(std::string_view s);

}  // namespace lockwatch::forensics
