#include "agent/core/action.h"

namespace lockwatch::core {

const char* ActionKindName(ActionKind kind) {
  switch (kind) {
    case ActionKind::kLog:
      return "log";
    case ActionKind::kCancel:
      return "cancel";
    case ActionKind::kTerminate:
      return "terminate";
    case ActionKind::kCancelThenTerminate:
      return "cancel_then_terminate";
  }
  return "unknown";
}

}  // namespace lockwatch::core
