#include "agent/hooks/exec_hook.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lockwatch::hooks {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// How often the wait loop looks at the child and the interrupt when its pipes are quiet.
constexpr milliseconds kSlice{25};
// How long output is still read after the program exited (a background child may hold the pipes).
constexpr milliseconds kFlushAfterExit{200};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

bool MakePipe(Pipe& p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  p.read.Reset(fds[0]);
  p.write.Reset(fds[1]);
  return true;
}

void SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Reads what is available; closes `fd` at EOF or on error.
void Drain(Fd& fd, std::string& into, bool& truncated, size_t max) {
  char buf[8192];
  while (fd.open()) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n > 0) {
      const size_t room = max > into.size() ? max - into.size() : 0;
      const size_t take = std::min(room, static_cast<size_t>(n));
      into.append(buf, take);
      if (take < static_cast<size_t>(n)) truncated = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fd.Close();
  }
}

// Whether the child has exited, without reaping it (so its pid, and with it the process group id, cannot be
// reused while we may still signal the group).
bool HasExited(pid_t pid) {
  siginfo_t info{};
  while (true) {
    const int r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0) return info.si_pid == pid;
    if (errno != EINTR) return true;  // ECHILD: nothing to wait for
  }
}

void Reap(pid_t pid, ExecResult& result) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r != pid) return;
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
}

class SpawnAttr {
 public:
  SpawnAttr() { ok_ = posix_spawnattr_init(&attr_) == 0; }
  ~SpawnAttr() {
    if (ok_) posix_spawnattr_destroy(&attr_);
  }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  posix_spawnattr_t* get() { return &attr_; }
  bool ok() const { return ok_; }

 private:
  posix_spawnattr_t attr_{};
  bool ok_ = false;
};

class FileActions {
 public:
  FileActions() { ok_ = posix_spawn_file_actions_init(&actions_) == 0; }
  ~FileActions() {
    if (ok_) posix_spawn_file_actions_destroy(&actions_);
  }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }
  bool ok() const { return ok_; }

 private:
  posix_spawn_file_actions_t actions_{};
  bool ok_ = false;
};

int Spawn(const ExecSpec& spec, int in_fd, int out_fd, int err_fd, pid_t* pid) {
  SpawnAttr attr;
  FileActions actions;
  if (!attr.ok() || !actions.ok()) return ENOMEM;
  // A new process group so a timeout reaches everything the hook started; default signal handling and an
  // empty mask whatever the agent's threads have blocked or ignored.
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM})
    sigaddset(&defaults, sig);
  posix_spawnattr_setpgroup(attr.get(), 0);
  posix_spawnattr_setsigmask(attr.get(), &empty);
  posix_spawnattr_setsigdefault(attr.get(), &defaults);
  posix_spawnattr_setflags(attr.get(),
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_adddup2(actions.get(), in_fd, 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_fd, 1);
  posix_spawn_file_actions_adddup2(actions.get(), err_fd, 2);
  // Descriptors other threads opened without O_CLOEXEC must not reach the hook either.
  posix_spawn_file_actions_addclosefrom_np(actions.get(), 3);

  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  env_strings.reserve(spec.env.size());
  for (const auto& [k, v] : spec.env) env_strings.push_back(std::string(k).append("=").append(v));
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  return posix_spawn(pid, argv[0], actions.get(), attr.get(), argv.data(), envp.data());
}

}  // namespace

ExecResult RunExec(const ExecSpec& spec, const Interrupt& interrupt) {
  ExecResult result;
  const Clock::time_point start = Clock::now();
  if (spec.argv.empty()) {
    result.error = "empty argv";
    return result;
  }
  ScopedSigpipeBlock no_sigpipe;
  Pipe in;
  Pipe out;
  Pipe err;
  if (!MakePipe(in) || !MakePipe(out) || !MakePipe(err)) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  pid_t pid = 0;
  const int rc = Spawn(spec, in.read.get(), out.write.get(), err.write.get(), &pid);
  in.read.Close();
  out.write.Close();
  err.write.Close();
  if (rc != 0) {
    result.error = std::strerror(rc);
    return result;
  }
  result.started = true;
  result.pid = pid;
  SetNonBlocking(in.write.get());
  SetNonBlocking(out.read.get());
  SetNonBlocking(err.read.get());
  if (spec.input.empty()) in.write.Close();

  const Clock::time_point deadline = start + spec.timeout;
  size_t written = 0;
  bool exited = false;
  Clock::time_point exited_at;
  // Feeds stdin, collects output and watches the child until it exits or time is up.
  while (true) {
    if (!exited && HasExited(pid)) {
      exited = true;
      exited_at = Clock::now();
      in.write.Close();
    }
    const Clock::time_point now = Clock::now();
    if (exited && ((!out.read.open() && !err.read.open()) || now - exited_at >= kFlushAfterExit)) break;
    if (!exited && interrupt.triggered()) {
      result.interrupted = true;
      break;
    }
    if (!exited && now >= deadline) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (in.write.open()) fds[n++] = pollfd{in.write.get(), POLLOUT, 0};
    if (out.read.open()) fds[n++] = pollfd{out.read.get(), POLLIN, 0};
    if (err.read.open()) fds[n++] = pollfd{err.read.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
    const int wait_ms =
        static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left.count(), kSlice.count())));
    if (::poll(fds, n, wait_ms) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in.write.get()) {
        while (written < spec.input.size()) {
          const ssize_t w = ::write(in.write.get(), spec.input.data() + written, spec.input.size() - written);
          if (w > 0) {
            written += static_cast<size_t>(w);
          } else if (w < 0 && errno == EINTR) {
            continue;
          } else {
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) in.write.Close();  // EPIPE: not reading
            break;
          }
        }
        if (written >= spec.input.size()) in.write.Close();
      } else if (fds[i].fd == out.read.get()) {
        Drain(out.read, result.out, result.out_truncated, spec.max_output);
      } else if (fds[i].fd == err.read.get()) {
        Drain(err.read, result.err, result.err_truncated, spec.max_output);
      }
    }
  }

  if (!exited) {
    ::kill(-pid, SIGTERM);
    const Clock::time_point kill_at = Clock::now() + spec.kill_grace;
    while (!HasExited(pid) && Clock::now() < kill_at) {
      Drain(out.read, result.out, result.out_truncated, spec.max_output);
      Drain(err.read, result.err, result.err_truncated, spec.max_output);
      ::poll(nullptr, 0, static_cast<int>(kSlice.count()));
    }
    // The leader is not reaped yet, so the group id still names this hook's processes only.
    ::kill(-pid, SIGKILL);
  }
  Reap(pid, result);
  Drain(out.read, result.out, result.out_truncated, spec.max_output);
  Drain(err.read, result.err, result.err_truncated, spec.max_output);
  result.duration = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return result;
}

std::map<std::string, std::string> ExecEnvironment(const ExecHookConfig& config, const Event& event) {
  std::map<std::string, std::string> env;
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): read-only after startup
  env["PATH"] = path != nullptr && *path != '\0' ? path : kDefaultPath;
  for (const auto& [k, v] : config.env) env[k] = v;
  for (auto& [k, v] : EventEnvironment(event)) env[k] = std::move(v);
  return env;
}

ExecHook::ExecHook(HookConfig config, HookLogger logger)
    : config_(std::move(config)), logger_(std::move(logger)) {}

DeliveryResult ExecHook::Deliver(const Event& event, const Interrupt& interrupt) {
  ExecSpec spec;
  spec.argv = config_.exec.argv;
  spec.env = ExecEnvironment(config_.exec, event);
  spec.input = Serialize(event.payload) + "\n";
  spec.timeout = config_.timeout;
  spec.kill_grace = config_.exec.kill_grace;
  const ExecResult r = RunExec(spec, interrupt);

  DeliveryResult out;
  out.attempts = r.started ? 1 : 0;
  if (!r.started) {
    out.detail = "could not start " + config_.exec.argv.front() + ": " + r.error;
  } else if (r.timed_out) {
    out.detail = "timed out after " + std::to_string(config_.timeout.count()) + " ms, killed";
  } else if (r.interrupted) {
    out.detail = "stopped at shutdown";
  } else if (r.exited) {
    out.ok = r.exit_code == 0;
    out.detail = "exit " + std::to_string(r.exit_code);
  } else {
    out.detail = "killed by signal " + std::to_string(r.term_signal);
  }
  if (logger_) {
    LogFields fields{{"hook", config_.name},
                     {"event", EventKindName(event.kind)},
                     {"target", event.target},
                     {"result", out.detail},
                     {"duration_ms", std::to_string(r.duration.count())}};
    if (!r.out.empty()) fields.emplace_back("stdout", r.out + (r.out_truncated ? "...(truncated)" : ""));
    if (!r.err.empty()) fields.emplace_back("stderr", r.err + (r.err_truncated ? "...(truncated)" : ""));
    logger_(out.ok ? spdlog::level::info : spdlog::level::warn, out.ok ? "exec hook ran" : "exec hook failed",
            fields);
  }
  return out;
}

}  // namespace lockwatch::hooks
