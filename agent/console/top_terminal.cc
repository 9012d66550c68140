#include "agent/console/top_terminal.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

namespace lockwatch::console {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_resized{false};

void OnStop(int /*signal*/) { g_stop.store(true); }
void OnResize(int /*signal*/) { g_resized.store(true); }

void Install(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR and the loop sees the flag at once
  sigaction(signal, &action, nullptr);
}

// Alternate screen on, cursor hidden; and back.
constexpr const char* kEnter = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
constexpr const char* kLeave = "\x1b[0m\x1b[?25h\x1b[?1049l";

}  // namespace

void InstallTopSignalHandlers() {
  Install(SIGINT, OnStop);
  Install(SIGTERM, OnStop);
  Install(SIGHUP, OnStop);
  Install(SIGWINCH, OnResize);
}

bool TopStopRequested() { return g_stop.load(); }

bool TakeTopResized() { return g_resized.exchange(false); }

struct TerminalScreen::Saved {
  struct termios termios {};
};

TerminalScreen::TerminalScreen(int in_fd, int out_fd)
    : in_fd_(in_fd), out_fd_(out_fd), saved_(std::make_unique<Saved>()) {}

core::Result<std::unique_ptr<TerminalScreen>> TerminalScreen::Open(int in_fd, int out_fd) {
  if (isatty(in_fd) == 0 || isatty(out_fd) == 0) {
    return core::Status::Internal("standard input and output must be a terminal");
  }
  std::unique_ptr<TerminalScreen> screen(new TerminalScreen(in_fd, out_fd));
  if (tcgetattr(in_fd, &screen->saved_->termios) != 0) {
    return core::Status::Internal("cannot read the terminal settings");
  }
  struct termios raw = screen->saved_->termios;
  // Byte-at-a-time input without echo; ISIG stays so Ctrl-C is SIGINT and ends the view cleanly.
  raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | IEXTEN);
  raw.c_iflag &= ~static_cast<tcflag_t>(IXON | ICRNL);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(in_fd, TCSANOW, &raw) != 0) {
    return core::Status::Internal("cannot set the terminal to raw mode");
  }
  screen->active_ = true;
  screen->Write(kEnter);
  return screen;
}

TerminalScreen::~TerminalScreen() { Restore(); }

void TerminalScreen::Restore() {
  if (!active_) return;
  active_ = false;
  Write(kLeave);
  tcsetattr(in_fd_, TCSANOW, &saved_->termios);
}

std::vector<Key> TerminalScreen::ReadKeys(std::chrono::milliseconds timeout) {
  struct pollfd fd {};
  fd.fd = in_fd_;
  fd.events = POLLIN;
  const int ready = poll(&fd, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return {};
  std::string bytes;
  char buf[256];
  // Read what is there now; an escape sequence arrives in one write from the terminal.
  for (;;) {
    const ssize_t n = read(in_fd_, buf, sizeof buf);
    if (n <= 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  return DecodeKeys(bytes);
}

int TerminalScreen::columns() const {
  struct winsize ws {};
  if (ioctl(out_fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

int TerminalScreen::rows() const {
  struct winsize ws {};
  if (ioctl(out_fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) return ws.ws_row;
  return 24;
}

void TerminalScreen::Draw(const std::vector<std::string>& lines) {
  std::string out = "\x1b[H";
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i];
    out += "\x1b[K";
    if (i + 1 < lines.size()) out += "\r\n";
  }
  out += "\x1b[J";
  Write(out);
}

void TerminalScreen::Write(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(out_fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the terminal went away: nothing sensible to do
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace lockwatch::console
