#include "util/log.h"

#include <cstdio>
#include <cstdlib>

#include "util/encoding.h"
#include "util/progress.h"

namespace vmback {

void Logger::Write(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> l(mu_);
  static const char* kPrefix[] = {"error: ", "warning: ", "", ""};
  if (level <= LogLevel::kWarning) {
    problems_.push_back(kPrefix[static_cast<int>(level)] + message);
    if (level == LogLevel::kWarning) warnings_++;
  }
  if (to_stderr_ && level <= level_) {
    ProgressDisplay::ClearLine();
    // Under systemd (stderr is a journal stream) a "<N>" prefix gives each
    // line its syslog priority: err, warning, info, debug.
    static const bool journal = [] {
      const char* s = std::getenv("JOURNAL_STREAM");
      return s != nullptr && *s != '\0';
    }();
    static const char* kPriority[] = {"<3>", "<4>", "<6>", "<7>"};
    // Messages name files, volumes and points read from disks others
    // handled: their control characters are escaped, so that a name cannot
    // forge a line of the log or drive the terminal.
    std::fprintf(stderr, "%svmback: %s%s\n", journal ? kPriority[static_cast<int>(level)] : "",
                 kPrefix[static_cast<int>(level)], EscapeForTerminal(message).c_str());
  }
}

}  // namespace vmback
