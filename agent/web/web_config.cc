// LoadWebConfig: exporter-toolkit's --web.config.file, read with yaml-cpp. yaml-cpp exceptions and
// validation failures become one Status naming file:line:column.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "agent/web/basic_auth.h"
#include "agent/web/http_server.h"

namespace lockwatch::web {
namespace {

// Thrown inside this file only, caught in LoadWebConfig.
struct ConfigError {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void Fail(const YAML::Mark& mark, std::string message) {
  throw ConfigError{mark, std::move(message)};
}

[[noreturn]] void Fail(const YAML::Node& node, std::string message) { Fail(node.Mark(), std::move(message)); }

// `mark` when the setting was written in the file, else `fallback` (its enclosing mapping).
const YAML::Mark& Or(const YAML::Mark& mark, const YAML::Mark& fallback) {
  return mark.is_null() ? fallback : mark;
}

const char* KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

// Keys exporter-toolkit accepts that lockwatch does not implement: refusing them beats silently running
// with weaker settings than the operator asked for.
const std::set<std::string>& UnsupportedTlsKeys() {
  static const auto* keys = new std::set<std::string>{"cert",
                                                      "key",
                                                      "client_ca",
                                                      "cipher_suites",
                                                      "curve_preferences",
                                                      "prefer_server_cipher_suites",
                                                      "client_allowed_sans"};
  return *keys;
}

std::string Scalar(const YAML::Node& node, const std::string& what) {
  if (node.IsNull()) return "";
  if (!node.IsScalar()) Fail(node, "expected a string for " + what + ", got " + KindName(node));
  return node.Scalar();
}

// Iterates a mapping's entries, rejecting non-scalar and duplicate keys (yaml-cpp keeps duplicates).
template <typename Fn>
void ForEachEntry(const YAML::Node& map, const std::string& what, Fn&& fn) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) Fail(key, "expected a string key in " + what + ", got " + KindName(key));
    if (!seen.insert(key.Scalar()).second) Fail(key, "duplicate key \"" + key.Scalar() + "\" in " + what);
    fn(key, entry.second);
  }
}

std::string Resolve(const std::string& dir, const std::string& file) {
  if (file.empty() || file.front() == '/' || dir.empty()) return file;
  return dir + "/" + file;
}

void RequireReadableFile(const YAML::Mark& mark, const std::string& what, const std::string& resolved) {
  std::ifstream in(resolved, std::ios::binary);
  if (!in) {
    const int err = errno;
    Fail(mark, what + " \"" + resolved + "\" cannot be read: " + std::strerror(err));
  }
}

int TlsVersionRank(const std::string& v) {
  if (v == "TLS10") return 10;
  if (v == "TLS11") return 11;
  if (v == "TLS12") return 12;
  if (v == "TLS13") return 13;
  return 0;
}

bool IsClientAuthType(const std::string& v) {
  return v == "NoClientCert" || v == "RequestClientCert" || v == "RequireAnyClientCert" ||
         v == "VerifyClientCertIfGiven" || v == "RequireAndVerifyClientCert";
}

void ParseTls(const YAML::Node& tls, const std::string& dir, WebConfig& config) {
  if (tls.IsNull()) return;
  if (!tls.IsMap()) Fail(tls, std::string("expected a mapping for tls_server_config, got ") + KindName(tls));
  // Where each setting was written, for messages; null marks for settings left at their defaults.
  YAML::Mark cert_mark = YAML::Mark::null_mark();
  YAML::Mark key_mark = YAML::Mark::null_mark();
  YAML::Mark ca_mark = YAML::Mark::null_mark();
  YAML::Mark auth_mark = YAML::Mark::null_mark();
  YAML::Mark min_mark = YAML::Mark::null_mark();
  YAML::Mark max_mark = YAML::Mark::null_mark();
  const YAML::Mark& tls_mark = tls.Mark();
  ForEachEntry(tls, "tls_server_config", [&](const YAML::Node& key, const YAML::Node& value) {
    const std::string& name = key.Scalar();
    const std::string what = "tls_server_config." + name;
    if (name == "cert_file") {
      config.cert_file = Scalar(value, what);
      cert_mark = value.Mark();
    } else if (name == "key_file") {
      config.key_file = Scalar(value, what);
      key_mark = value.Mark();
    } else if (name == "client_ca_file") {
      config.client_ca_file = Scalar(value, what);
      ca_mark = value.Mark();
    } else if (name == "client_auth_type") {
      config.client_auth_type = Scalar(value, what);
      auth_mark = value.Mark();
    } else if (name == "min_version") {
      config.min_version = Scalar(value, what);
      min_mark = value.Mark();
    } else if (name == "max_version") {
      config.max_version = Scalar(value, what);
      max_mark = value.Mark();
    } else if (UnsupportedTlsKeys().count(name) != 0) {
      Fail(key, what + " is an exporter-toolkit setting lockwatch does not support");
    } else {
      Fail(key, "unknown key \"" + name +
                    "\" in tls_server_config; expected cert_file, key_file, client_ca_file, "
                    "client_auth_type, min_version or max_version");
    }
  });

  if (config.client_auth_type.empty()) config.client_auth_type = "NoClientCert";
  if (config.min_version.empty()) config.min_version = "TLS12";
  if (config.max_version.empty()) config.max_version = "TLS13";

  if (!IsClientAuthType(config.client_auth_type)) {
    Fail(Or(auth_mark, tls_mark), "invalid client_auth_type \"" + config.client_auth_type +
                                      "\"; expected NoClientCert, RequestClientCert, RequireAnyClientCert, "
                                      "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
  }
  for (const auto& [mark, value] :
       {std::pair{min_mark, config.min_version}, {max_mark, config.max_version}}) {
    if (TlsVersionRank(value) == 0) {
      Fail(Or(mark, tls_mark),
           "invalid TLS version \"" + value + "\"; expected TLS10, TLS11, TLS12 or TLS13");
    }
  }
  if (TlsVersionRank(config.min_version) > TlsVersionRank(config.max_version)) {
    Fail(Or(max_mark, Or(min_mark, tls_mark)),
         "max_version " + config.max_version + " is below min_version " + config.min_version);
  }

  const bool any_tls_setting = tls.size() > 0;
  if (any_tls_setting && config.cert_file.empty()) {
    Fail(Or(cert_mark, tls_mark), "tls_server_config needs cert_file (a PEM certificate)");
  }
  if (any_tls_setting && config.key_file.empty()) {
    Fail(Or(key_mark, tls_mark), "tls_server_config needs key_file (a PEM private key)");
  }
  const bool verifies = config.client_auth_type == "RequireAndVerifyClientCert" ||
                        config.client_auth_type == "VerifyClientCertIfGiven";
  if (verifies && config.client_ca_file.empty()) {
    Fail(Or(auth_mark, tls_mark), "client_auth_type " + config.client_auth_type +
                                      " needs client_ca_file (the CA that signs client certificates)");
  }
  if (!config.client_ca_file.empty() && config.client_auth_type == "NoClientCert") {
    Fail(Or(ca_mark, tls_mark),
         "client_ca_file is set but client_auth_type is NoClientCert, so client certificates would not be "
         "checked; set client_auth_type: RequireAndVerifyClientCert");
  }

  if (!config.cert_file.empty()) {
    config.cert_file = Resolve(dir, config.cert_file);
    RequireReadableFile(Or(cert_mark, tls_mark), "cert_file", config.cert_file);
  }
  if (!config.key_file.empty()) {
    config.key_file = Resolve(dir, config.key_file);
    RequireReadableFile(Or(key_mark, tls_mark), "key_file", config.key_file);
  }
  if (!config.client_ca_file.empty()) {
    config.client_ca_file = Resolve(dir, config.client_ca_file);
    RequireReadableFile(Or(ca_mark, tls_mark), "client_ca_file", config.client_ca_file);
  }
}

void ParseUsers(const YAML::Node& users, WebConfig& config) {
  if (users.IsNull()) return;
  if (!users.IsMap()) {
    Fail(users,
         std::string("expected a mapping of user: bcrypt-hash for basic_auth_users, got ") + KindName(users));
  }
  ForEachEntry(users, "basic_auth_users", [&](const YAML::Node& key, const YAML::Node& value) {
    const std::string& user = key.Scalar();
    if (user.empty()) Fail(key, "empty user name in basic_auth_users");
    if (user.find(':') != std::string::npos) Fail(key, "user name \"" + user + "\" contains ':'");
    if (!value.IsScalar()) {
      Fail(value, "expected a bcrypt hash for basic_auth_users." + user + ", got " + KindName(value));
    }
    // The hash is not printed: it is password-equivalent material for offline guessing.
    if (!IsBcryptHash(value.Scalar())) {
      Fail(value, "basic_auth_users." + user +
                      " is not a bcrypt hash; expected $2a$, $2b$ or $2y$, a cost 04..31 and 53 characters "
                      "(generate one with htpasswd -nBC 10 \"\" | tr -d ':\\n')");
    }
    config.basic_auth_users[user] = value.Scalar();
  });
}

std::string DirectoryOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Located(const std::string& path, const YAML::Mark& mark, const std::string& message) {
  if (mark.is_null()) return path + ": " + message;
  return path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": " + message;
}

}  // namespace

core::Result<WebConfig> LoadWebConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return core::Status::InvalidArgument(path + ": cannot read web config: " + std::strerror(err));
  }
  std::stringstream text;
  text << in.rdbuf();

  WebConfig config;
  try {
    const YAML::Node root = YAML::Load(text.str());
    if (root.IsNull()) return config;
    if (!root.IsMap()) {
      Fail(root, std::string("expected a mapping with tls_server_config and/or basic_auth_users, got ") +
                     KindName(root));
    }
    const std::string dir = DirectoryOf(path);
    ForEachEntry(root, "the web config", [&](const YAML::Node& key, const YAML::Node& value) {
      const std::string& name = key.Scalar();
      if (name == "tls_server_config") {
        ParseTls(value, dir, config);
      } else if (name == "basic_auth_users") {
        ParseUsers(value, config);
      } else if (name == "http_server_config") {
        Fail(key, "http_server_config is an exporter-toolkit setting lockwatch does not support");
      } else {
        Fail(key, "unknown key \"" + name + "\"; expected tls_server_config or basic_auth_users");
      }
    });
  } catch (const ConfigError& e) {
    return core::Status::InvalidArgument(Located(path, e.mark, e.message));
  } catch (const YAML::Exception& e) {
    return core::Status::InvalidArgument(Located(path, e.mark, "invalid YAML: " + e.msg));
  }
  return config;
}

}  // namespace lockwatch::web
