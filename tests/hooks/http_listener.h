#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace lockwatch::testing {

// A real HTTP server on 127.0.0.1 (ephemeral port) that records every POST and answers with scripted
// statuses. Handlers can be made to hang until `delay` passes or the listener is destroyed. With a
// certificate and key it serves HTTPS.
class HttpListener {
 public:
  struct Request {
    std::string path;
    std::string body;
    httplib::Headers headers;
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
  };

  HttpListener() : HttpListener(std::make_unique<httplib::Server>()) {}
  HttpListener(const std::string& cert_file, const std::string& key_file)
      : HttpListener(std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str())) {}

  explicit HttpListener(std::unique_ptr<httplib::Server> server) : server_(std::move(server)) {
    server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      int status = 200;
      std::chrono::milliseconds delay{0};
      {
        std::unique_lock<std::mutex> lock(mu_);
        requests_.push_back(Request{req.path, req.body, req.headers});
        if (!statuses_.empty()) {
          status = statuses_.front();
          statuses_.pop_front();
        }
        delay = delay_;
        if (delay.count() > 0) released_.wait_for(lock, delay, [this] { return closing_; });
      }
      res.status = status;
      res.set_content(status >= 400 ? "{\"error\":\"scripted failure\"}" : "ok", "text/plain");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    for (int i = 0; i < 200 && !server_->is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  ~HttpListener() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    released_.notify_all();
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Answers the next requests with these statuses, then 200.
  void Script(std::vector<int> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_.assign(statuses.begin(), statuses.end());
  }
  // Every handler waits this long before answering (or until the listener is destroyed).
  void Delay(std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = delay;
  }

  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  // Waits until at least `n` requests arrived or `timeout` passed.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (requests().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return requests().size() >= n;
  }

 private:
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable released_;
  bool closing_ = false;
  std::deque<int> statuses_;
  std::chrono::milliseconds delay_{0};
  std::vector<Request> requests_;
};

}  // namespace lockwatch::testing
