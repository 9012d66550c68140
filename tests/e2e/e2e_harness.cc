#include "tests/e2e/e2e_harness.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace lockwatch::e2e {

Process::Process(const std::string& binary, const std::vector<std::string>& args, const std::string& log_path)
    : log_path_(log_path) {
  std::vector<std::string> argv_storage;
  argv_storage.push_back(binary);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    execv(binary.c_str(), argv.data());
    std::perror("execv");
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

bool Process::Alive() {
  if (status_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

void Process::Signal(int sig) const {
  if (pid_ > 0 && !status_) kill(pid_, sig);
}

std::optional<int> Process::WaitExit(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Alive()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

std::string Process::Log() const { return ReadFile(log_path_); }

void WriteFile(const std::string& path, const std::string& text) {
  // Write then rename, so a reloading agent never reads a half-written file.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

std::string LockwatchBinary() {
  const char* env = std::getenv("LOCKWATCH_BIN");
  if (env != nullptr && *env != '\0') return env;
  return LOCKWATCH_DEFAULT_BIN;
}

std::string TestDsn() {
  const char* env = std::getenv("LOCKWATCH_TEST_DSN");
  if (env == nullptr || *env == '\0') {
    ADD_FAILURE()
        << "LOCKWATCH_TEST_DSN is not set: run the end-to-end tests through tests/run.sh, or start a "
           "throwaway PostgreSQL 15 with `eval \"$(bash tests/pg_cluster.sh start)\"` first";
    return "";
  }
  return env;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

long HttpGet(const std::string& url, std::string* body) {
  body->clear();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return 0;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  long code = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  return code;
}

std::optional<double> SeriesValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

Agent::Agent(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "run");
  // Incident dumps stay in the test's directory unless the test chooses where.
  if (std::find(args.begin(), args.end(), "--dump-dir") == args.end()) {
    args.emplace_back("--dump-dir");
    args.push_back(dir + "/dumps");
  }
  const std::string log = dir + "/agent.log";
  process_ = std::make_unique<Process>(LockwatchBinary(), args, log);
  // Text ("port=123") or JSON ("\"port\":123") log line.
  const std::regex port_re("serving metrics.*port\"?[=:]([0-9]+)");
  Eventually(
      [&] {
        std::smatch m;
        const std::string text = ReadFile(log);
        if (std::regex_search(text, m, port_re)) port_ = std::stoi(m[1]);
        return port_ != 0 || !process_->Alive();
      },
      std::chrono::milliseconds(10000));
}

std::string Agent::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::string Agent::Metrics() const {
  std::string body;
  if (HttpGet(Url("/metrics"), &body) != 200) return "";
  return body;
}

Prometheus::Prometheus(const std::string& dir, int agent_port) {
  port_ = FreePort();
  const std::string config = dir + "/prometheus.yml";
  WriteFile(config,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: lockwatch\n    static_configs:\n      - targets: ['127.0.0.1:" +
                std::to_string(agent_port) + "']\n");
  process_ = std::make_unique<Process>(
      "/usr/bin/prometheus",
      std::vector<std::string>{"--config.file=" + config, "--storage.tsdb.path=" + dir + "/prometheus-data",
                               "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
      dir + "/prometheus.log");
  std::string body;
  ready_ = Eventually(
      [&] { return HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/-/ready", &body) == 200; },
      std::chrono::milliseconds(30000));
}

std::optional<double> Prometheus::Query(const std::string& promql) const {
  std::string body;
  const std::string url =
      "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/query?query=" + UrlEncode(promql);
  if (HttpGet(url, &body) != 200) return std::nullopt;
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || doc.value("status", "") != "success") return std::nullopt;
  const nlohmann::json& result = doc["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

namespace {

std::string RunShell(const std::string& command, int* rc) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[512];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string PgCtl(const std::string& dir, const std::string& action) {
  const std::string owner = geteuid() == 0 ? "runuser -u postgres -- " : "";
  return owner + "/usr/lib/postgresql/15/bin/pg_ctl -D " + dir + "/data -l " + dir +
         "/postgres.log -w -t 30 " + (action == "stop" ? "-m fast stop" : "start") + " >/dev/null 2>&1";
}

}  // namespace

OwnCluster::OwnCluster() {
  int rc = 0;
  const std::string out = RunShell(std::string("bash -c 'source ") + LOCKWATCH_SOURCE_DIR +
                                       "/tests/pg_cluster.sh && lw_pg_start >/dev/null 2>&1 && "
                                       "echo \"$LW_PG_DIR\" && echo \"$LOCKWATCH_TEST_DSN\"'",
                                   &rc);
  std::istringstream in(out);
  std::string dir;
  std::string dsn;
  std::getline(in, dir);
  std::getline(in, dsn);
  if (rc == 0 && !dir.empty() && !dsn.empty()) {
    dir_ = dir;
    dsn_ = dsn;
  }
}

OwnCluster::~OwnCluster() {
  if (dir_.empty()) return;
  int rc = 0;
  RunShell(std::string("bash ") + LOCKWATCH_SOURCE_DIR + "/tests/pg_cluster.sh stop " + dir_ + " 2>&1", &rc);
}

bool OwnCluster::Stop() { return std::system(PgCtl(dir_, "stop").c_str()) == 0; }
bool OwnCluster::Start() { return std::system(PgCtl(dir_, "start").c_str()) == 0; }

PgSession::PgSession(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {}
PgSession::~PgSession() { PQfinish(conn_); }
bool PgSession::ok() const { return PQstatus(conn_) == CONNECTION_OK; }
std::string PgSession::error() const { return PQerrorMessage(conn_); }

std::optional<std::string> PgSession::Exec(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  std::optional<std::string> out;
  if (st == PGRES_TUPLES_OK) {
    out = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  } else if (st == PGRES_COMMAND_OK) {
    out = "";
  }
  if (!out) ADD_FAILURE() << "SQL failed: " << sql << ": " << PQerrorMessage(conn_);
  PQclear(r);
  return out;
}

bool PgSession::Send(const std::string& sql) { return PQsendQuery(conn_, sql.c_str()) == 1; }

bool PgSession::Finish() {
  bool ok = true;
  while (PGresult* r = PQgetResult(conn_)) {
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) ok = false;
    PQclear(r);
  }
  return ok;
}

}  // namespace lockwatch::e2e
