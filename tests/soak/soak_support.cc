#include "tests/soak/soak_support.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lockwatch::soak {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Numeric entries of /proc.
std::vector<int> AllPids() {
  std::vector<int> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      out.push_back(std::atoi(name.c_str()));
    }
  }
  return out;
}

// The fields of /proc/<pid>/stat after "pid (comm)": state, ppid, ... (comm may hold spaces and parens).
std::vector<std::string> StatFields(int pid) {
  const std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  std::vector<std::string> out;
  if (close == std::string::npos) return out;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  while (in >> field) out.push_back(field);
  return out;
}

}  // namespace

PgConn::PgConn(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    broken_ = true;
    error_ = PQerrorMessage(conn_);
  }
}

PgConn::~PgConn() { PQfinish(conn_); }

bool PgConn::ok() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }

std::string PgConn::error() const { return error_; }

bool PgConn::Send(const std::string& sql) {
  if (!ok()) return false;
  if (PQsendQuery(conn_, sql.c_str()) != 1) {
    error_ = PQerrorMessage(conn_);
    broken_ = true;
    return false;
  }
  return true;
}

bool PgConn::Wait(Clock::time_point deadline, std::string* first_value) {
  if (broken_) return false;
  bool ok = true;
  bool have_value = false;
  for (;;) {
    if (PQconsumeInput(conn_) == 0) {
      error_ = PQerrorMessage(conn_);
      broken_ = true;
      return false;
    }
    if (PQisBusy(conn_) != 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        error_ = "timed out waiting for the server";
        broken_ = true;
        return false;
      }
      pollfd p{PQsocket(conn_), POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
      continue;
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
      if (!have_value && first_value != nullptr) *first_value = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
      have_value = true;
    } else if (st != PGRES_COMMAND_OK) {
      ok = false;
      error_ = PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  if (PQstatus(conn_) != CONNECTION_OK) broken_ = true;
  return ok;
}

std::optional<std::string> PgConn::Exec(const std::string& sql, std::chrono::milliseconds limit) {
  if (!Send(sql)) return std::nullopt;
  std::string value;
  if (!Wait(Clock::now() + limit, &value)) return std::nullopt;
  return value;
}

BackgroundLoop::BackgroundLoop(std::function<void(const std::atomic<bool>& stop)> body)
    : thread_([this, body = std::move(body)] { body(stop_); }) {}

BackgroundLoop::~BackgroundLoop() { Stop(); }

void BackgroundLoop::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

bool SleepUnless(const std::atomic<bool>& stop, Clock::time_point until) {
  while (!stop.load()) {
    const Clock::time_point now = Clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
  return false;
}

bool Until(const std::function<bool()>& pred, std::chrono::milliseconds limit,
           std::chrono::milliseconds period) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(period);
  }
  return pred();
}

std::optional<long> ResidentKib(int pid) {
  std::istringstream in(Slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return std::nullopt;
}

int OpenFds(int pid) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

std::vector<int> ChildrenOf(int ppid) {
  std::vector<int> out;
  for (int pid : AllPids()) {
    const std::vector<std::string> f = StatFields(pid);
    if (f.size() > 1 && std::atoi(f[1].c_str()) == ppid) out.push_back(pid);
  }
  return out;
}

std::vector<int> ProcessesWithCmdline(const std::string& cmdline) {
  std::vector<int> out;
  for (int pid : AllPids()) {
    std::string args = Slurp("/proc/" + std::to_string(pid) + "/cmdline");
    if (args.empty()) continue;
    if (args.back() == '\0') args.pop_back();
    std::replace(args.begin(), args.end(), '\0', ' ');
    if (args == cmdline) out.push_back(pid);
  }
  return out;
}

char ProcessState(int pid) {
  const std::vector<std::string> f = StatFields(pid);
  return f.empty() || f[0].empty() ? '\0' : f[0][0];
}

int PostmasterPid(const std::string& data_dir) {
  std::istringstream in(Slurp(data_dir + "/postmaster.pid"));
  std::string first;
  std::getline(in, first);
  const int pid = std::atoi(first.c_str());
  if (pid <= 0 || kill(pid, 0) != 0) return 0;
  return pid;
}

int PgCtl(const std::string& data_dir, const std::string& args) {
  const std::string owner = geteuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string dir = std::filesystem::path(data_dir).parent_path().string();
  const std::string command = owner + "/usr/lib/postgresql/15/bin/pg_ctl -D " + data_dir + " -l " + dir +
                              "/postgres.log " + args + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ServerPause::ServerPause(int postmaster_pid) : postmaster_pid_(postmaster_pid) { Sweep(); }

ServerPause::~ServerPause() {
  for (int pid : stopped_) kill(pid, SIGCONT);
  if (postmaster_pid_ > 0) {
    for (int pid : ChildrenOf(postmaster_pid_)) kill(pid, SIGCONT);
  }
}

void ServerPause::Sweep() {
  if (postmaster_pid_ <= 0) return;
  for (int pid : ChildrenOf(postmaster_pid_)) {
    if (kill(pid, SIGSTOP) == 0) stopped_.insert(pid);
  }
}

long long FillUntilFull(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  long long written = 0;
  std::vector<char> chunk(65536, 'x');
  for (size_t size : {size_t{65536}, size_t{4096}, size_t{512}, size_t{1}}) {
    for (;;) {
      const ssize_t n = write(fd, chunk.data(), size);
      if (n > 0) {
        written += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;  // ENOSPC (or a short write at the end): try smaller writes
    }
  }
  close(fd);
  return written;
}

long long AvailableBytes(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.f_bavail) * static_cast<long long>(st.f_frsize);
}

SilentListener::SilentListener() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 64) != 0) {
    return;
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] {
    std::vector<int> held;
    while (!stop_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      accepted_.fetch_add(1);
      held.push_back(fd);
      // The sender gives up long before this many pile up; keep the newest ones open.
      if (held.size() > 256) {
        close(held.front());
        held.erase(held.begin());
      }
    }
    for (int fd : held) close(fd);
  });
}

SilentListener::~SilentListener() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

Exposition::Exposition(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    const std::string name = line.substr(0, pos);
    std::map<std::string, std::string> labels;
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        const size_t eq = line.find('=', pos);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') break;
        const std::string label = line.substr(pos, eq - pos);
        std::string value;
        size_t i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) ++i;
          value += line[i];
        }
        labels[label] = value;
        pos = i + 1;
        if (pos < line.size() && line[pos] == ',') ++pos;
      }
      ++pos;  // '}'
    }
    if (pos >= line.size()) continue;
    values_[Key(name, labels)] = std::strtod(line.c_str() + pos, nullptr);
  }
}

std::string Exposition::Key(const std::string& name, const std::map<std::string, std::string>& labels) {
  std::string key = name + "{";
  for (const auto& [k, v] : labels) {
    key += k;
    key += "=\"";
    key += v;
    key += "\",";
  }
  key += '}';
  return key;
}

std::optional<double> Exposition::Get(const std::string& name,
                                      const std::map<std::string, std::string>& labels) const {
  const auto it = values_.find(Key(name, labels));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

double Exposition::Or(const std::string& name, const std::map<std::string, std::string>& labels,
                      double fallback) const {
  return Get(name, labels).value_or(fallback);
}

}  // namespace lockwatch::soak
