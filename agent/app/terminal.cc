#include "agent/app/terminal.h"

#include <cstdlib>
#include <string>

#include <sys/ioctl.h>
#include <unistd.h>

namespace lockwatch::app {
namespace {

std::optional<int> PositiveInt(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value <= 0 || value > 100000) return std::nullopt;
  return static_cast<int>(value);
}

}  // namespace

TerminalInfo DetectTerminal() {
  TerminalInfo info;
  info.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  info.env_columns = PositiveInt(std::getenv("COLUMNS"));
  const char* no_color = std::getenv("NO_COLOR");
  info.no_color_env = no_color != nullptr && *no_color != '\0';
  if (info.stdout_is_tty) {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) info.tty_columns = ws.ws_col;
  }
  return info;
}

int ResolveWidth(const std::optional<int>& flag_width, const TerminalInfo& terminal) {
  if (flag_width) return *flag_width;
  if (terminal.env_columns) return *terminal.env_columns;
  if (terminal.stdout_is_tty && terminal.tty_columns) return *terminal.tty_columns;
  return kDefaultWidth;
}

bool ResolveColor(bool no_color_flag, const TerminalInfo& terminal) {
  return !no_color_flag && terminal.stdout_is_tty && !terminal.no_color_env;
}

}  // namespace lockwatch::app
