#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

#include "agent/hooks/delivery.h"
#include "agent/hooks/hook_config.h"
#include "agent/hooks/payloads.h"

namespace lockwatch::hooks {

// Running a program without a shell, for exec hooks.

struct ExecSpec {
  std::vector<std::string> argv;           // argv[0]: absolute path of the program
  std::map<std::string, std::string> env;  // the child's complete environment
  std::string input;                       // written to its stdin, which is then closed
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds kill_grace{2000};  // between SIGTERM and SIGKILL
  size_t max_output = size_t{64} * 1024;       // per stream; the rest is read and discarded
};

struct ExecResult {
  bool started = false;
  std::string error;    // why it did not start (e.g. "No such file or directory")
  pid_t pid = 0;        // the child's pid (also its process group id); reaped when RunExec returns
  bool exited = false;  // exited normally; exit_code is valid
  int exit_code = -1;
  int term_signal = 0;       // the signal that ended it, when it did not exit normally
  bool timed_out = false;    // ran past the timeout and was killed
  bool interrupted = false;  // killed because the Interrupt was triggered
  std::string out;
  std::string err;
  bool out_truncated = false;
  bool err_truncated = false;
  std::chrono::milliseconds duration{0};
};

// Runs `spec` in a new process group with posix_spawn: stdin/stdout/stderr are pipes, no other descriptor
// is inherited, signal dispositions and mask are reset. Returns once the program has exited and been
// reaped. At the timeout (or when `interrupt` triggers) the whole process group gets SIGTERM, then SIGKILL
// after kill_grace. A program that exits while a child it started still holds its stdout gets 200 ms to
// flush; such leftovers are not killed. Never leaves a zombie or a descriptor behind.
ExecResult RunExec(const ExecSpec& spec, const Interrupt& interrupt);

// The environment of an exec hook: PATH (the agent's, or a standard one), the configured variables, then
// EventEnvironment(event).
std::map<std::string, std::string> ExecEnvironment(const ExecHookConfig& config, const Event& event);

// An exec hook: the event's JSON document on stdin, its key fields in LOCKWATCH_* variables. Exit status 0
// is success; anything else, a signal, a timeout or a failure to start is a failure. The program's output
// (bounded) is logged with the outcome.
class ExecHook : public HookRunner {
 public:
  ExecHook(HookConfig config, HookLogger logger);
  DeliveryResult Deliver(const Event& event, const Interrupt& interrupt) override;

 private:
  HookConfig config_;
  HookLogger logger_;
};

}  // namespace lockwatch::hooks
