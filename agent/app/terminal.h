#pragma once

#include <optional>

#include "agent/app/cli_context.h"

namespace lockwatch::app {

// Width used when stdout is not a terminal and $COLUMNS is unset.
inline constexpr int kDefaultWidth = 120;

// Reads $COLUMNS, $NO_COLOR, isatty(stdout) and ioctl(TIOCGWINSZ).
TerminalInfo DetectTerminal();

// The output width: --width, else $COLUMNS, else the terminal's width, else kDefaultWidth.
int ResolveWidth(const std::optional<int>& flag_width, const TerminalInfo& terminal);

// Colour only on a terminal, without $NO_COLOR and without --no-color.
bool ResolveColor(bool no_color_flag, const TerminalInfo& terminal);

}  // namespace lockwatch::app
