#include "util/log.h"

#include <cstdio>

namespace vmback {

void Logger::Write(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> l(mu_);
  static const char* kPrefix[] = {"error: ", "warning: ", "", ""};
  if (level <= LogLevel::kWarning) {
    problems_.push_back(kPrefix[static_cast<int>(level)] + message);
    if (level == LogLevel::kWarning) warnings_++;
  }
  if (to_stderr_ && level <= level_) {
    std::fprintf(stderr, "vmback: %s%s\n", kPrefix[static_cast<int>(level)], message.c_str());
  }
}

}  // namespace vmback
