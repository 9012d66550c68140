#include "agent/agent/agent.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "agent/agent/incident_pipeline.h"
#include "agent/agent/log.h"
#include "agent/pg/dsn.h"
#include "agent/web/http_server.h"

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;

double WallNowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Records a target's polls into the shared metrics. Disable() (under the same mutex as the recording) makes
// a retired poller's late results disappear instead of resurrecting a removed target's series.
class MetricsSink : public PollSink {
 public:
  MetricsSink(std::shared_ptr<metrics::AgentMetrics> metrics, std::string target,
              IncidentPipelineOptions pipeline)
      : metrics_(std::move(metrics)),
        target_(std::move(target)),
        pipeline_(std::make_unique<IncidentPipeline>(target_, std::move(pipeline), metrics_)) {}

  void Disable() {
    std::lock_guard<std::mutex> lock(mu_);
    enabled_ = false;
  }

  void OnPoll(const core::Snapshot& snapshot, const core::Report& report, const pg::PollStats& stats,
              double now_s) override {
    metrics::PollCost cost;
    cost.client_seconds = stats.client_seconds;
    cost.server_seconds = stats.server_seconds;
    cost.bytes_received = stats.bytes_received;
    cost.locks_read = stats.locks_read;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!enabled_) return;
      metrics_->RecordPoll(target_, snapshot, report, cost, now_s);
    }
    // Only the poll thread gets here; the pipeline copies what its dump writer needs and returns.
    pipeline_->OnPoll(snapshot, report);
  }
  void OnPollError(const std::string& stage, double now_s) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (enabled_) metrics_->RecordPollError(target_, stage, now_s);
  }
  void OnUp(bool up) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (enabled_) metrics_->SetUp(target_, up);
  }

 private:
  std::shared_ptr<metrics::AgentMetrics> metrics_;
  std::string target_;
  std::unique_ptr<IncidentPipeline> pipeline_;
  std::mutex mu_;
  bool enabled_ = true;
};

class CollectorSource : public PollSource {
 public:
  CollectorSource(std::string dsn, pg::SessionOptions options)
      : collector_(std::move(dsn), std::move(options)) {}
  core::Status Connect() override { return collector_.Connect(); }
  bool connected() const override { return collector_.connected(); }
  core::Result<core::Snapshot> Poll(pg::PollStats* stats) override { return collector_.Poll(stats); }

 private:
  pg::Collector collector_;
};

// libpq conninfo value quoting: single quotes, with backslash before ' and \.
std::string QuoteConnValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

bool SameTarget(const config::TargetConfig& a, const config::TargetConfig& b) {
  return a.name == b.name && a.dsn == b.dsn && a.password_file == b.password_file;
}

// Settings whose change restarts every poller.
bool SamePollSettings(const config::AgentConfig& a, const config::AgentConfig& b) {
  return a.interval == b.interval && a.max_backoff == b.max_backoff &&
         a.session.statement_timeout == b.session.statement_timeout &&
         a.session.lock_timeout == b.session.lock_timeout &&
         a.session.connect_timeout == b.session.connect_timeout &&
         a.incidents.max_wait == b.incidents.max_wait &&
         a.incidents.blocked_sessions == b.incidents.blocked_sessions &&
         a.incidents.max_depth == b.incidents.max_depth &&
         a.incidents.resolve_after == b.incidents.resolve_after &&
         a.recorder.duration == b.recorder.duration && a.recorder.max_bytes == b.recorder.max_bytes &&
         a.dumps.enabled == b.dumps.enabled && a.dumps.dir == b.dumps.dir &&
         a.dumps.query_text == b.dumps.query_text && a.dumps.flush_interval == b.dumps.flush_interval &&
         a.dumps.max_count == b.dumps.max_count && a.dumps.max_age == b.dumps.max_age &&
         a.dumps.max_total_bytes == b.dumps.max_total_bytes;
}

}  // namespace

core::Result<std::string> DsnWithPassword(const std::string& dsn, const std::string& password) {
  core::Result<pg::ConnParams> parsed = pg::ParseDsn(dsn);
  if (!parsed.ok()) return parsed.status();
  std::string out;
  for (const auto& [key, value] : parsed.value().values) {
    if (key == "password") continue;
    out += key + "=" + QuoteConnValue(value) + " ";
  }
  out += "password=" + QuoteConnValue(password);
  return out;
}

core::Result<std::unique_ptr<PollSource>> MakeCollectorSource(const config::TargetConfig& target,
                                                              const config::SessionConfig& session) {
  pg::SessionOptions options;
  options.statement_timeout = session.statement_timeout;
  options.lock_timeout = session.lock_timeout;
  // libpq's connect_timeout has whole seconds (and treats 1 as 2 in some versions); round up, at least 1 s.
  const auto secs = (session.connect_timeout.count() + 999) / 1000;
  options.connect_timeout = std::chrono::seconds(secs < 1 ? 1 : secs);
  std::string dsn = target.dsn;
  if (!target.password_file.empty()) {
    std::ifstream in(target.password_file, std::ios::binary);
    if (!in) {
      return core::Status::PermissionDenied("cannot read password_file " + target.password_file + ": " +
                                            std::strerror(errno));
    }
    std::string password;
    std::getline(in, password);  // first line; a trailing newline (echo > file) is not part of it
    if (!password.empty() && password.back() == '\r') password.pop_back();
    core::Result<std::string> with = DsnWithPassword(dsn, password);
    if (!with.ok()) return with.status();
    dsn = std::move(with).value();
  }
  return std::unique_ptr<PollSource>(std::make_unique<CollectorSource>(std::move(dsn), options));
}

struct Agent::Target {
  config::TargetConfig config;
  std::shared_ptr<MetricsSink> sink;
  std::unique_ptr<TargetPoller> poller;
};

Agent::Agent(config::AgentConfig config, std::string config_path, config::ConfigOverrides overrides,
             metrics::BuildInfo build)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      overrides_(std::move(overrides)),
      metrics_(std::make_shared<metrics::AgentMetrics>(std::move(build))) {}

Agent::~Agent() {
  StopAll();
  for (std::unique_ptr<Target>& t : abandoned_) {
    // Still running a poll that uses this state: leak it, the process exits right after.
    (void)t->poller.release();
    (void)t.release();
  }
}

bool Agent::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, target] : targets_) {
    if (!target->poller->attempted()) return false;
  }
  return !targets_.empty();
}

void Agent::StartTarget(const config::TargetConfig& target) {
  metrics_->AddTarget(target.name, config_.interval);
  auto t = std::make_unique<Target>();
  t->config = target;
  t->sink = std::make_shared<MetricsSink>(metrics_, target.name, PipelineOptionsFromConfig(config_));
  PollerOptions options;
  options.name = target.name;
  options.redacted_dsn = pg::RedactDsn(target.dsn);
  options.interval = config_.interval;
  options.max_backoff = config_.max_backoff;
  options.initial_backoff = std::min(std::chrono::milliseconds(500), config_.max_backoff);
  const config::SessionConfig session = config_.session;
  PollSourceFactory factory = [target, session]() { return MakeCollectorSource(target, session); };
  t->poller =
      std::make_unique<TargetPoller>(std::move(options), std::move(factory), t->sink, MakeRandomSource());
  t->poller->Start();
  Log(spdlog::level::info, "target started",
      {{"target", target.name},
       {"dsn", pg::RedactDsn(target.dsn)},
       {"interval_ms", static_cast<int64_t>(config_.interval.count())}});
  std::lock_guard<std::mutex> lock(mu_);
  targets_[target.name] = std::move(t);
}

void Agent::RetireTarget(const std::string& name) {
  std::unique_ptr<Target> t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = targets_.find(name);
    if (it == targets_.end()) return;
    t = std::move(it->second);
    targets_.erase(it);
  }
  t->sink->Disable();
  t->poller->RequestStop();
  metrics_->RemoveTarget(name);
  Log(spdlog::level::info, "target stopped", {{"target", name}});
  retired_.push_back(std::move(t));
}

void Agent::ReapRetired() {
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->poller->JoinUntil(Clock::now())) {
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
}

void Agent::StopAll() {
  std::vector<std::unique_ptr<Target>> stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, t] : targets_) stopping.push_back(std::move(t));
    targets_.clear();
  }
  for (auto& t : retired_) stopping.push_back(std::move(t));
  retired_.clear();
  for (auto& t : stopping) t->poller->RequestStop();
  const Clock::time_point deadline = Clock::now() + kShutdownGrace;
  for (auto& t : stopping) {
    if (!t->poller->JoinUntil(deadline)) {
      Log(spdlog::level::warn, "poll still in progress at shutdown; exiting without waiting for it",
          {{"target", t->config.name}});
      abandoned_.push_back(std::move(t));
    }
  }
}

bool Agent::Reload() {
  if (config_path_.empty()) {
    Log(spdlog::level::info, "reload requested but the agent runs without a config file; nothing to reload");
    return true;
  }
  core::Result<config::AgentConfig> loaded = config::LoadAgentConfig(config_path_);
  core::Status status = loaded.status();
  if (loaded.ok()) status = config::ApplyOverrides(overrides_, &loaded.value());
  if (!status.ok()) {
    Log(spdlog::level::err, "config reload rejected; the running config stays in effect",
        {{"file", config_path_}, {"error", status.message()}});
    return false;
  }
  config::AgentConfig next = std::move(loaded).value();
  if (next.listen != config_.listen || next.web_config_file != config_.web_config_file) {
    Log(spdlog::level::warn, "listen and web_config_file changes take effect at the next restart",
        {{"listen", config_.listen}});
    next.listen = config_.listen;
    next.web_config_file = config_.web_config_file;
  }
  SetupLogging(next.log);
  const bool restart_all = !SamePollSettings(config_, next);
  std::map<std::string, config::TargetConfig> wanted;
  for (const config::TargetConfig& t : next.targets) wanted[t.name] = t;
  std::vector<std::string> to_retire;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, t] : targets_) {
      auto it = wanted.find(name);
      if (restart_all || it == wanted.end() || !SameTarget(it->second, t->config)) to_retire.push_back(name);
    }
  }
  for (const std::string& name : to_retire) RetireTarget(name);
  config_ = std::move(next);
  int started = 0;
  for (const config::TargetConfig& t : config_.targets) {
    bool running = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      running = targets_.count(t.name) > 0;
    }
    if (!running) {
      StartTarget(t);
      ++started;
    }
  }
  Log(spdlog::level::info, "config reloaded",
      {{"file", config_path_},
       {"targets", static_cast<int64_t>(config_.targets.size())},
       {"stopped", static_cast<int64_t>(to_retire.size())},
       {"started", started}});
  return true;
}

int Agent::Run(SignalWaiter* signals) {
  web::WebConfig web_config;
  if (!config_.web_config_file.empty()) {
    core::Result<web::WebConfig> loaded = web::LoadWebConfig(config_.web_config_file);
    if (!loaded.ok()) {
      Log(spdlog::level::err, "cannot use web config", {{"error", loaded.status().message()}});
      return 1;
    }
    web_config = std::move(loaded).value();
  }
  std::shared_ptr<metrics::AgentMetrics> metrics = metrics_;
  web::Handlers handlers;
  handlers.metrics = [metrics]() { return metrics->Render(WallNowSeconds()); };
  handlers.ready = [this]() { return Ready(); };
  // Short socket timeouts: a scraper that keeps an idle keep-alive connection or stalls in a TLS handshake
  // holds a worker thread until they expire, and shutdown waits for the workers (SIGTERM must exit within
  // 2 s). A scrape is a few kilobytes; one second per read or write is ample on any working network.
  web::ServerOptions server_options;
  server_options.read_timeout_ms = 1000;
  server_options.write_timeout_ms = 1000;
  server_options.keep_alive_timeout_s = 1;
  web::HttpServer server(web_config, handlers, server_options);
  core::Status started = server.Start(config_.listen);
  if (!started.ok()) {
    Log(spdlog::level::err, "cannot serve metrics",
        {{"listen", config_.listen}, {"error", started.message()}});
    return 1;
  }
  Log(spdlog::level::info, "serving metrics",
      {{"listen", config_.listen},
       {"port", server.port()},
       {"tls", web_config.tls_enabled() ? "on" : "off"},
       {"targets", static_cast<int64_t>(config_.targets.size())}});
  for (const config::TargetConfig& t : config_.targets) StartTarget(t);

  while (true) {
    std::optional<SignalWaiter::Event> event = signals->Wait(std::chrono::milliseconds(500));
    ReapRetired();
    if (!event) continue;
    if (*event == SignalWaiter::Event::kStop) break;
    Log(spdlog::level::info, "SIGHUP received; reloading config", {{"file", config_path_}});
    Reload();
  }
  Log(spdlog::level::info, "stopping");
  // The endpoint and the pollers stop in parallel, so the two bounded waits do not add up.
  std::thread server_stopper([&server]() { server.Stop(); });
  StopAll();
  server_stopper.join();
  Log(spdlog::level::info, "stopped");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace lockwatch::agent
