// What a command leaves for monitoring ([report]): a JSON report per run in
// [report] dir and Prometheus metrics in [report] metrics_file. The commands
// that report (run, backup, verify, prune) fill a ReportData as they go;
// RunCli writes it at the end, whatever the exit status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "report/metrics.h"
#include "destination/backup_types.h"
#include "util/log.h"

namespace vmback {

struct ReportData {
  std::string kind;  // "run", "backup", "verify", "prune"; empty: nothing to report
  Config config;
  int64_t started_ns = 0;
  nlohmann::json body = nlohmann::json::object();
  RunMetrics metrics;

  // The command reports as `kind` on the target of config.
  void Start(const std::string& report_kind, const Config& c) {
    kind = report_kind;
    config = c;
  }
};

// Writes the JSON report and the metrics file of r (nothing when r.kind is
// empty or [report] asks for neither), with the exit status rc and the
// error that ended the command, if any. A failure here is a warning: it
// must not turn a good backup into a failed one.
void LeaveReport(ReportData* r, int rc, const std::string& error, Logger* log);

// The bytes read and written per volume, for the metrics.
std::vector<VolumeBytes> VolumeBytesOf(const BackupResult& r);

}  // namespace vmback
