#include "agent/agent/agent.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "agent/agent/incident_pipeline.h"
#include "agent/agent/log.h"
#include "agent/core/explain.h"
#include "agent/hooks/dispatcher.h"
#include "agent/hooks/payloads.h"
#include "agent/pg/dsn.h"
#include "agent/policy/rules_command.h"
#include "agent/policy/rules_file.h"
#include "agent/remediation/audit_log.h"
#include "agent/remediation/remediator.h"
#include "agent/web/http_server.h"

namespace lockwatch::agent {
namespace {

using Clock = std::chrono::steady_clock;

double WallNowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

core::ActionKind ActionKindFromName(const std::string& name) {
  if (name == "cancel") return core::ActionKind::kCancel;
  if (name == "terminate") return core::ActionKind::kTerminate;
  if (name == "cancel_then_terminate") return core::ActionKind::kCancelThenTerminate;
  return core::ActionKind::kLog;
}

// Routes every remediation decision to the metrics, the open incident dump and the hooks. Called on the
// poll thread (Remediator::Evaluate), so the pipeline may be used.
class RemediationRouter : public remediation::RemediationObserver {
 public:
  RemediationRouter(std::string target, std::shared_ptr<metrics::AgentMetrics> metrics,
                    IncidentPipeline* pipeline, std::shared_ptr<hooks::HookDispatcher> hooks)
      : target_(std::move(target)),
        metrics_(std::move(metrics)),
        pipeline_(pipeline),
        hooks_(std::move(hooks)) {}

  void OnDecision(const remediation::AuditEntry& entry) override {
    if (entry.repeat) return;  // a skip already audited within the repeat period
    metrics_->RecordRemediation(target_, entry.decision, entry.action, entry.mode(), entry.reason);
    pipeline_->AddRecord(remediation::AuditRecord(entry));
    if (!hooks_) return;
    std::optional<hooks::EventKind> kind;
    if (entry.decision == "planned") kind = hooks::EventKind::kActionPlanned;
    if (entry.decision == "executed") kind = hooks::EventKind::kActionExecuted;
    if (entry.decision == "failed") kind = hooks::EventKind::kActionFailed;
    if (!kind) return;
    core::PlannedAction action;
    action.target = target_;
    action.rule = entry.rule;
    action.action = ActionKindFromName(entry.plan);
    action.victim.pid = entry.pid;
    action.victim.backend_start = entry.backend_start;
    action.role = entry.role;
    action.blocked_direct = entry.blocked_direct;
    action.blocked_total = entry.blocked_total;
    action.reason = entry.reason;
    action.decided_at = entry.at;
    std::optional<hooks::ActionOutcome> outcome;
    if (*kind != hooks::EventKind::kActionPlanned) {
      hooks::ActionOutcome o;
      o.result = entry.result;
      o.message = entry.message;
      if (entry.result == "exited") o.exited = true;
      if (entry.result == "still_running") o.exited = false;
      outcome = o;
    }
    hooks_->Submit(hooks::MakeActionEvent(*kind, action, entry.dry_run, outcome, entry.at));
  }

 private:
  std::string target_;
  std::shared_ptr<metrics::AgentMetrics> metrics_;
  IncidentPipeline* pipeline_;
  std::shared_ptr<hooks::HookDispatcher> hooks_;
};

// Records a target's polls into the shared metrics. Disable() (under the same mutex as the recording) makes
// a retired poller's late results disappear instead of resurrecting a removed target's series.
class MetricsSink : public PollSink {
 public:
  MetricsSink(std::shared_ptr<metrics::AgentMetrics> metrics, std::string target,
              IncidentPipelineOptions pipeline, std::shared_ptr<hooks::HookDispatcher> hooks,
              forensics::QueryTextMode hook_query_text)
      : metrics_(std::move(metrics)),
        target_(std::move(target)),
        pipeline_(std::make_unique<IncidentPipeline>(target_, std::move(pipeline), metrics_)),
        hooks_(std::move(hooks)),
        hook_query_text_(hook_query_text) {}

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
    arrivals_.Observe(snapshot);
    metrics_->RecordArrivals(target_, arrivals_.Stats());
    // Only the poll thread gets here; the pipeline copies what its dump writer needs and returns, and
    // hook delivery is queued (never waited for).
    const std::vector<core::IncidentEvent> events = pipeline_->OnPoll(snapshot, report);
    if (hooks_ && !events.empty()) {
      // Explained only when an event goes out: the findings travel with it, so a chat message or a pager
      // says what kind of pile-up it is and the usual remedy.
      const std::vector<core::Explanation> explanations = core::Explain(snapshot, report);
      for (const core::IncidentEvent& event : events) {
        hooks_->Submit(
            hooks::MakeIncidentEvent(event, snapshot.captured_at_us, hook_query_text_, explanations));
      }
    }
    if (remediator_) {
      // Decisions are data; the remediator's gate picks at most one to act on and signals on its own
      // thread, so this returns without waiting for the database.
      std::vector<core::PolicyDecision> decisions =
          core::Evaluate(*policy_, protection_, snapshot, report, snapshot.captured_at_us, normalizer_);
      for (core::PolicyDecision& d : decisions) d.planned.target = target_;
      remediator_->Evaluate(snapshot, report, decisions);
    }
  }

  // Enables remediation on this target (before the poller starts).
  void EnableRemediation(std::shared_ptr<const core::Policy> policy, core::Protection protection,
                         remediation::RemediatorOptions options,
                         std::unique_ptr<remediation::SignalSender> sender,
                         std::shared_ptr<remediation::AuditLog> audit_log) {
    policy_ = std::move(policy);
    protection_ = std::move(protection);
    normalizer_ = policy::MakeQueryNormalizer();
    auto router = std::make_shared<RemediationRouter>(target_, metrics_, pipeline_.get(), hooks_);
    remediator_ = std::make_unique<remediation::Remediator>(std::move(options), std::move(sender),
                                                            std::move(audit_log), std::move(router));
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
  core::ArrivalTracker arrivals_;                 // poll thread only
  std::shared_ptr<hooks::HookDispatcher> hooks_;  // null without hooks
  forensics::QueryTextMode hook_query_text_;
  std::shared_ptr<const core::Policy> policy_;  // null without remediation
  core::Protection protection_;
  core::QueryNormalizer normalizer_;
  std::unique_ptr<remediation::Remediator> remediator_;  // declared last: stopped before the pipeline goes
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
  t->sink = std::make_shared<MetricsSink>(metrics_, target.name, PipelineOptionsFromConfig(config_), hooks_,
                                          config_.hooks.query_text);
  if (policy_) {
    const config::RemediationConfig& rc = config_.remediation;
    remediation::RemediatorOptions ro;
    ro.target = target.name;
    ro.gate.enforce = rc.enforce;
    ro.gate.settle_after_action_seconds = std::chrono::duration<double>(rc.settle_after_action).count();
    ro.gate.global_max_per_minute = rc.global_max_per_minute;
    ro.gate.rule_max_per_minute = rc.rule_max_per_minute;
    ro.gate.session_cooldown_seconds = std::chrono::duration<double>(rc.session_cooldown).count();
    ro.gate.breaker_failures = rc.breaker_failures;
    ro.gate.breaker_open_seconds = std::chrono::duration<double>(rc.breaker_open_for).count();
    ro.kill_switch_file = rc.kill_switch_file;
    ro.terminate_wait = rc.terminate_wait;
    ro.idle_disconnect = rc.idle_disconnect;
    pg::SessionOptions so;
    so.lock_timeout = config_.session.lock_timeout;
    so.statement_timeout = config_.session.statement_timeout;
    // The actuator connects only when there is a signal to send; the password file is read now.
    std::string dsn = target.dsn;
    if (!target.password_file.empty()) {
      std::ifstream in(target.password_file, std::ios::binary);
      std::string password;
      std::getline(in, password);
      core::Result<std::string> with = DsnWithPassword(target.dsn, password);
      if (with.ok()) dsn = with.value();
    }
    core::Protection protection = rc.protect;
    protection.own_applications.emplace_back("lockwatch-actuator");
    t->sink->EnableRemediation(policy_, std::move(protection), std::move(ro),
                               remediation::MakeActuatorSender(dsn, so), audit_log_);
  }
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
  if (audit_log_) audit_log_->Reopen();  // log rotation: the next line goes to a fresh file
  if (!next.hooks.hooks.empty() || !config_.hooks.hooks.empty()) {
    Log(spdlog::level::info, "hooks are read at startup; changes to hooks take effect at the next restart");
  }
  next.hooks = config_.hooks;
  if (next.remediation.rules_file != config_.remediation.rules_file ||
      next.remediation.enforce != config_.remediation.enforce) {
    Log(spdlog::level::warn, "remediation settings take effect at the next restart");
  }
  next.remediation = config_.remediation;
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
  if (!config_.remediation.rules_file.empty()) {
    core::Result<core::Policy> rules = policy::LoadRules(config_.remediation.rules_file);
    if (!rules.ok()) {
      Log(spdlog::level::err, "cannot use remediation rules", {{"error", rules.status().message()}});
      return 1;
    }
    policy_ = std::make_shared<const core::Policy>(std::move(rules).value());
    remediation::AuditLogOptions ao;
    ao.path = config_.remediation.audit_log;
    ao.sync_each_line = config_.remediation.audit_sync;
    audit_log_ = std::make_shared<remediation::AuditLog>(ao);
    core::Status opened = audit_log_->Open();
    if (!opened.ok()) {
      Log(spdlog::level::err, "cannot open the remediation audit log", {{"error", opened.message()}});
      return 1;
    }
    Log(config_.remediation.enforce ? spdlog::level::warn : spdlog::level::info, "remediation ready",
        {{"rules_file", config_.remediation.rules_file},
         {"rules", static_cast<int64_t>(policy_->rules.size())},
         {"mode", config_.remediation.enforce ? "enforce" : "dry_run"},
         {"audit_log", config_.remediation.audit_log},
         {"kill_switch_file", config_.remediation.kill_switch_file}});
  }
  if (!config_.hooks.hooks.empty()) {
    hooks_ = std::make_shared<hooks::HookDispatcher>(config_.hooks);
    std::weak_ptr<hooks::HookDispatcher> weak = hooks_;
    metrics_->SetHookStatsSource([weak]() {
      std::vector<metrics::HookCounters> out;
      if (auto dispatcher = weak.lock()) {
        for (const hooks::HookStats& h : dispatcher->Stats()) {
          out.push_back(metrics::HookCounters{h.name, h.runs, h.failures, h.drops});
        }
      }
      return out;
    });
    Log(spdlog::level::info, "hooks ready", {{"hooks", static_cast<int64_t>(config_.hooks.hooks.size())}});
  }
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
  if (hooks_) hooks_->Stop(std::chrono::milliseconds(1000));  // events of the last polls get a second
  Log(spdlog::level::info, "stopped");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace lockwatch::agent
