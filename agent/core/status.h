#pragma once

#include <optional>
#include <string>
#include <utility>

namespace lockwatch::core {

// Errors are values in lockwatch (exceptions stop at adapter edges). A Status is either OK or carries a
// category and a human-readable message. Messages never contain secrets: adapters must redact before
// building one.
class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,   // bad input from a user: DSN, config, flags, files
    kUnavailable,       // connection broken or refused: retry later
    kQueryFailed,       // SQL error (message carries SQLSTATE)
    kPermissionDenied,  // count and move on, never retry in a loop
    kTimeout,           // statement_timeout / lock_timeout / deadline hit
    kCorrupt,           // unreadable file or row
    kInternal,
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(Code code, std::string message) { return Status(code, std::move(message)); }
  static Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status QueryFailed(std::string m) { return Status(Code::kQueryFailed, std::move(m)); }
  static Status PermissionDenied(std::string m) { return Status(Code::kPermissionDenied, std::move(m)); }
  static Status Timeout(std::string m) { return Status(Code::kTimeout, std::move(m)); }
  static Status Corrupt(std::string m) { return Status(Code::kCorrupt, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error. Accessing value() of an error is a programming error (checked by assert in debug).
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor): implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace lockwatch::core
