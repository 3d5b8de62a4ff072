// One error convention for all of vmback: an exception that says what failed
// (file, command, point) and why (errno text, stderr of a command).
#pragma once

#include <stdexcept>
#include <string>

namespace vmback {

// What kind of failure; decides the exit status and whether a caller may
// retry or fall back. Corruption is never reported for a failed read.
enum class ErrorKind {
  kIo,          // a system call failed (EIO, EACCES, ...)
  kNoSpace,     // ENOSPC / EDQUOT
  kNotFound,    // a file, point or path does not exist
  kCorrupt,     // data read back does not match its hash or format
  kConfig,      // bad configuration or command line
  kLocked,      // another process holds the lock
  kCrash,       // injected by FaultEnv: simulates the process dying here
  kOther,
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// The one place that turns an errno into an Error: "context: strerror".
[[noreturn]] void ThrowIo(const std::string& context, int err);
[[noreturn]] void ThrowCorrupt(const std::string& context);
[[noreturn]] void ThrowConfig(const std::string& context);
[[noreturn]] void ThrowNotFound(const std::string& context);

}  // namespace vmback
