#include "cli/monitoring.h"

#include <optional>

#include "cli/command.h"
#include "cli/common.h"
#include "report/report.h"
#include "run/store_destination.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// The points in the configured target now (for vmback_points); nothing when
// it cannot be read.
// *label: the destination as the vmback_points sample names it.
std::optional<uint64_t> CountPoints(const Config& c, std::string* label) {
  try {
    Logger quiet(LogLevel::kError, false);
    auto dest = OpenDestination(CliEnv(), c.target, DestinationAccess::kRead, 0, &quiet);
    *label = dest->MetricLabel();
    return dest->PointNames().size();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A metrics file per command, so that run, backup and verify do not
// overwrite each other's samples: [report] metrics_file for run, and
// "<stem>-<kind>.prom" beside it for the others.
std::string MetricsFileFor(const std::string& configured, const std::string& kind) {
  if (kind == "run") return configured;
  std::string stem = EndsWith(configured, ".prom") ? configured.substr(0, configured.size() - 5) : configured;
  return stem + "-" + kind + ".prom";
}

void WriteJsonReport(const ReportData& r, int64_t now, Logger* log) {
  try {
    std::string path = WriteReport(Env::Default(), r.config.report.dir, r.kind, now, r.body,
                                   static_cast<size_t>(r.config.report.keep));
    log->Debug("report written to " + path);
  } catch (const std::exception& e) {
    log->Warn(std::string("cannot write the report: ") + e.what());
  }
}

void WriteMetrics(ReportData* r, int rc, int64_t now, Logger* log) {
  Env* env = Env::Default();
  try {
    std::string path = MetricsFileFor(r->config.report.metrics_file, r->kind);
    Labels common = {{"command", r->kind}};
    RunMetrics& m = r->metrics;
    m.started_ns = r->started_ns;
    m.finished_ns = now;
    m.exit_code = rc;
    try {
      m.previous_success_seconds = PreviousLastSuccess(env, path, common);
    } catch (const std::exception& e) {
      log->Warn(std::string(e.what()) + " (the previous metrics; starting afresh)");
    }
    std::string label;
    if (auto n = CountPoints(r->config, &label)) m.points = {{label, *n}};
    WriteTextfile(env, path, BuildRunMetrics(m, common));
  } catch (const std::exception& e) {
    log->Warn(std::string("cannot write the metrics file: ") + e.what());
  }
}

}  // namespace

void LeaveReport(ReportData* r, int rc, const std::string& error, Logger* log) {
  if (r->kind.empty()) return;
  const ReportConfig& cfg = r->config.report;
  if (cfg.dir.empty() && cfg.metrics_file.empty()) return;
  const int64_t now = Env::Default()->NowNanos();
  r->body["command"] = r->kind;
  r->body["exit_code"] = rc;
  r->body["started"] = FormatTimeUtc(r->started_ns);
  r->body["finished"] = FormatTimeUtc(now);
  if (!error.empty()) r->body["error"] = error;
  r->body["problems"] = log->problems();
  if (!cfg.dir.empty()) WriteJsonReport(*r, now, log);
  if (!cfg.metrics_file.empty()) WriteMetrics(r, rc, now, log);
}

std::vector<VolumeBytes> VolumeBytesOf(const BackupResult& r) {
  std::vector<VolumeBytes> out;
  for (const auto& v : r.volumes) out.push_back({v.name, v.bytes_read, v.bytes_written});
  return out;
}

}  // namespace vmback
