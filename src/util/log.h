// Where messages for the user go. Passed down explicitly (no globals); the
// CLI makes one for stderr, tests make one that records.
#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace vmback {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo, bool to_stderr = true)
      : level_(level), to_stderr_(to_stderr) {}
  void Error(const std::string& m) { Write(LogLevel::kError, m); }
  void Warn(const std::string& m) { Write(LogLevel::kWarning, m); }
  void Info(const std::string& m) { Write(LogLevel::kInfo, m); }
  void Debug(const std::string& m) { Write(LogLevel::kDebug, m); }
  int warnings() const { return warnings_; }
  // Every message at or above kWarning, kept for reports and tests.
  std::vector<std::string> problems() const {
    std::lock_guard<std::mutex> l(mu_);
    return problems_;
  }
  // Thread-safe.
  void Write(LogLevel level, const std::string& message);

 private:
  LogLevel level_;
  bool to_stderr_;
  mutable std::mutex mu_;
  int warnings_ = 0;
  std::vector<std::string> problems_;
};

}  // namespace vmback
