#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/action.h"
#include "agent/core/analysis.h"
#include "agent/core/arrivals.h"
#include "agent/core/explain.h"
#include "agent/core/snapshot.h"

namespace lockwatch::console {

// The pure part of `lockwatch top`: what one refresh shows (TopFrame), what the operator has chosen
// (TopState), the rows and lines drawn from both (BuildRows, RenderTop) and key handling (HandleKey). No I/O,
// no clock: the terminal layer (top_terminal.h) and the command (top_command.h) do that.

// Everything one refresh shows. Borrowed pointers stay valid while the frame is used.
struct TopFrame {
  const core::Snapshot* snapshot = nullptr;
  const core::Report* report = nullptr;
  const std::vector<core::Explanation>* explanations = nullptr;
  const core::ArrivalStats* arrivals = nullptr;  // may be null
  // blocked_sessions of each root at the previous refresh (absent: the root is new).
  std::map<core::NodeRef, int> previous_blocked;
  bool has_previous = false;  // false on the first refresh: no deltas shown
  std::string target;         // the redacted DSN, for the header
  double interval_seconds = 1;
};

// One key press, decoded.
struct Key {
  enum class Code {
    kChar,
    kUp,
    kDown,
    kLeft,
    kRight,
    kEnter,
    kEscape,
    kBackspace,
    kPageUp,
    kPageDown,
    kHome,
    kEnd
  };
  Code code = Code::kChar;
  char ch = 0;  // for kChar

  static Key Char(char c) { return Key{Code::kChar, c}; }
  static Key Of(Code c) { return Key{c, 0}; }
};

// Decodes raw terminal input (VT100/xterm sequences) into keys. Unknown sequences are dropped.
std::vector<Key> DecodeKeys(std::string_view bytes);

struct TopFilter {
  std::string database;
  std::string user;
  std::string application;
  bool empty() const { return database.empty() && user.empty() && application.empty(); }
};

enum class TopMode {
  kList,     // the forest
  kDetail,   // the selected session's full query, locks and explanation
  kFilter,   // typing a filter value
  kConfirm,  // confirming a cancel or terminate
  kHelp,
};

// A signal the operator asked for and confirmed.
struct SignalEffect {
  core::ActionKind action = core::ActionKind::kCancel;  // kCancel or kTerminate
  core::VictimIdentity victim;
  std::string description;  // what the confirmation said, for the status line
};

struct TopState {
  TopMode mode = TopMode::kList;
  std::optional<core::NodeRef> selected;  // follows the session across refreshes
  int scroll = 0;                         // first row shown
  std::set<core::NodeRef> expanded;       // roots (and waiters) whose waiters are shown
  TopFilter filter;
  char filter_field = 0;                // 'd', 'u' or 'a' while mode == kFilter
  std::string input;                    // text typed so far while mode == kFilter
  std::optional<SignalEffect> pending;  // while mode == kConfirm
  std::string confirm_text;             // the confirmation question
  std::string message;                  // status line: last action, refusal, dump path
  int32_t own_pid = 0;
  bool allow_superuser = false;
};

// What the command must do after a key.
struct TopEffect {
  bool quit = false;
  bool dump = false;
  std::optional<SignalEffect> signal;
};

// One visible row of the forest.
struct TopRow {
  core::NodeRef node;
  int depth = 0;  // 0 = root
  bool is_root = false;
  bool expandable = false;  // has waiters under it
  bool expanded = false;
};

// The rows of the forest the state shows: roots in report order (filtered), waiters of expanded nodes
// under them (each waiter once). Cycles appear as roots of their smallest member.
std::vector<TopRow> BuildRows(const TopFrame& frame, const TopState& state);

// The screen: header, rows, status line; exactly `height` lines (or fewer when `height` <= 0: everything,
// for plain-text output), each at most `width` columns. `color` adds ANSI attributes.
std::vector<std::string> RenderTop(const TopFrame& frame, const TopState& state, int width, int height,
                                   bool color);

// Applies one key. Movement, expansion, filters and mode changes happen in `state`; quitting, dumping and
// confirmed signals are returned. `page` is the number of rows one page scrolls.
TopEffect HandleKey(TopState& state, const Key& key, const TopFrame& frame, int page);

// Why a session may not be signalled from top (empty when it may): a prepared transaction, lockwatch's own
// session, a superuser (unless allowed), a background process, an unknown session.
std::string RefusalReason(const TopState& state, const TopFrame& frame, const core::NodeRef& node);

// The confirmation question for signalling `node`, spelling out the function, the session and the
// identity that must still match, e.g. "pg_terminate_backend(4242) on pid 4242 (alice, app billing, idle in
// transaction 12m05s), only if backend_start is still 2026-...Z and xact_start is still ...; y/N".
SignalEffect PlanSignal(const TopFrame& frame, const core::NodeRef& node, core::ActionKind action);

}  // namespace lockwatch::console
