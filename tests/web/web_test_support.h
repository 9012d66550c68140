#pragma once

// Helpers for the web tests: temporary directories, running the real `curl` and `openssl` binaries, a test
// PKI and bcrypt hashes. Everything stays on this machine.

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <crypt.h>
#include <sys/wait.h>

#include "tests/testing/temp_dir.h"

namespace lockwatch::web::testing {

using TempDir = lockwatch::testing::TempDir;

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Single-quotes `arg` for /bin/sh.
inline std::string ShellQuote(const std::string& arg) {
  std::string out = "'";
  for (const char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` with /bin/sh; output is its stdout, plus stderr when `merge_stderr`.
inline CommandResult RunCommand(const std::string& command, bool merge_stderr = true) {
  CommandResult result;
  FILE* pipe = popen((merge_stderr ? command + " 2>&1" : command).c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

struct CurlResult {
  int exit_code = -1;  // curl's: 0 ok, 7 connection refused, 35/56 TLS failures, 60 certificate untrusted
  int http_status = 0;
  std::string body;
  std::string headers;  // raw response header block
  std::string error;    // curl's stderr
};

// Runs `curl -sS --max-time 5 <extra_args...> <url>` and captures exit code, status, headers and body.
inline CurlResult Curl(const std::string& url, const std::vector<std::string>& extra_args = {}) {
  TempDir dir;
  const std::string body_path = dir.File("body");
  const std::string header_path = dir.File("headers");
  std::string command = "curl -sS --max-time 5 -o " + ShellQuote(body_path) + " -D " +
                        ShellQuote(header_path) + " -w '%{http_code}'";
  for (const auto& arg : extra_args) command += " " + ShellQuote(arg);
  command += " " + ShellQuote(url);
  const std::string error_path = dir.File("stderr");
  const CommandResult run = RunCommand(command + " 2>" + ShellQuote(error_path), /*merge_stderr=*/false);
  CurlResult result;
  result.exit_code = run.exit_code;
  result.error = ReadFile(error_path);
  result.http_status = run.output.empty() ? 0 : std::atoi(run.output.c_str());
  result.body = ReadFile(body_path);
  result.headers = ReadFile(header_path);
  return result;
}

// A throwaway PKI made with the openssl CLI: a CA, a server certificate for localhost/127.0.0.1/::1 and a
// client certificate signed by it, and a second CA with its own client certificate. EC keys, valid 1 day.
struct TestPki {
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string other_ca_cert;
  std::string other_client_cert;
  std::string other_client_key;
};

inline void MustRun(const std::string& command) {
  const CommandResult r = RunCommand(command);
  if (r.exit_code != 0) throw std::runtime_error("command failed: " + command + "\n" + r.output);
}

inline void MakeCa(const std::string& dir, const std::string& name) {
  MustRun(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=" + name +
      " -keyout " + ShellQuote(dir + "/" + name + ".key") + " -out " + ShellQuote(dir + "/" + name + ".crt"));
}

inline void MakeLeaf(const std::string& dir, const std::string& ca, const std::string& name,
                     const std::string& extensions) {
  const std::string base = dir + "/" + name;
  WriteFile(base + ".ext", extensions);
  MustRun("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + name +
          " -keyout " + ShellQuote(base + ".key") + " -out " + ShellQuote(base + ".csr"));
  MustRun("openssl x509 -req -days 1 -in " + ShellQuote(base + ".csr") + " -CA " +
          ShellQuote(dir + "/" + ca + ".crt") + " -CAkey " + ShellQuote(dir + "/" + ca + ".key") +
          " -CAcreateserial -extfile " + ShellQuote(base + ".ext") + " -out " + ShellQuote(base + ".crt"));
}

inline TestPki MakeTestPki(const std::string& dir) {
  MakeCa(dir, "ca");
  MakeCa(dir, "otherca");
  MakeLeaf(dir, "ca", "server",
           "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n");
  MakeLeaf(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
  MakeLeaf(dir, "otherca", "otherclient", "extendedKeyUsage=clientAuth\n");
  TestPki pki;
  pki.ca_cert = dir + "/ca.crt";
  pki.server_cert = dir + "/server.crt";
  pki.server_key = dir + "/server.key";
  pki.client_cert = dir + "/client.crt";
  pki.client_key = dir + "/client.key";
  pki.other_ca_cert = dir + "/otherca.crt";
  pki.other_client_cert = dir + "/otherclient.crt";
  pki.other_client_key = dir + "/otherclient.key";
  return pki;
}

// A bcrypt hash of `password` made with libcrypt (cost 5 keeps tests fast) and a random salt.
inline std::string BcryptHash(const std::string& password,
                              unsigned long cost = 5) {  // NOLINT(google-runtime-int)
  std::random_device random;
  std::array<char, 16> salt_bytes{};
  for (auto& b : salt_bytes) b = static_cast<char>(random() & 0xFFU);
  std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> setting{};
  if (crypt_gensalt_rn("$2b$", cost, salt_bytes.data(), static_cast<int>(salt_bytes.size()), setting.data(),
                       static_cast<int>(setting.size())) == nullptr) {
    throw std::runtime_error("crypt_gensalt_rn failed");
  }
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), setting.data(), &data);
  if (hash == nullptr || hash[0] == '*') throw std::runtime_error("crypt_r failed");
  return hash;
}

}  // namespace lockwatch::web::testing
