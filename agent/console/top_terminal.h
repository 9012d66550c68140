#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/console/top_model.h"
#include "agent/core/status.h"

namespace lockwatch::console {

// Installs handlers for SIGINT, SIGTERM, SIGHUP (stop) and SIGWINCH (resize). The handlers only set flags;
// they are installed without SA_RESTART so a wait for input returns at once. Idempotent.
void InstallTopSignalHandlers();
// True once SIGINT, SIGTERM or SIGHUP arrived.
bool TopStopRequested();
// True once per SIGWINCH.
bool TakeTopResized();

// The interactive terminal for the life of the view: raw input mode (no echo, byte at a time; Ctrl-C still
// signals), the alternate screen, a hidden cursor. Restore() (also run by the destructor, so an exception
// unwinding through the owner restores it too) puts back the saved termios settings and the normal
// screen. Non-copyable.
class TerminalScreen {
 public:
  // Fails (kInternal) when `in_fd` or `out_fd` is not a terminal.
  static core::Result<std::unique_ptr<TerminalScreen>> Open(int in_fd, int out_fd);
  ~TerminalScreen();
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;

  // Idempotent.
  void Restore();

  // Waits up to `timeout` for input and returns the keys read (empty on timeout or when a signal
  // interrupted the wait).
  std::vector<Key> ReadKeys(std::chrono::milliseconds timeout);

  // Columns and rows (80x24 when the size cannot be read).
  int columns() const;
  int rows() const;

  // Replaces the screen with `lines` (each already fitted to the width).
  void Draw(const std::vector<std::string>& lines);

 private:
  TerminalScreen(int in_fd, int out_fd);
  void Write(const std::string& bytes);

  struct Saved;
  int in_fd_;
  int out_fd_;
  std::unique_ptr<Saved> saved_;
  bool active_ = false;
};

}  // namespace lockwatch::console
