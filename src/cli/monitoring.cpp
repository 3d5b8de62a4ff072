#include "cli/monitoring.h"

#include <optional>

#include "cli/common.h"
#include "report/report.h"
#include "store/store.h"
#include "inplace/target.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// The points in the configured target now (for vmback_points); nothing when
// it cannot be read.
std::optional<uint64_t> CountPoints(const Config& c) {
  try {
    Logger quiet(LogLevel::kError, false);
    if (IsInplace(c)) return OpenInplaceTarget(Env::Default(), c.target, &quiet)->ListPoints().size();
    StoreOptions o;
    o.mirrors = c.target.mirrors;
    return Store::Open(Env::Default(), c.target.path, LockMode::kShared, &quiet, o)->ListPoints().size();
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

// The target as the vmback_points sample names it.
std::string TargetLabel(const Config& c) {
  if (!IsInplace(c)) return c.target.path;
  return c.target.type + ":" + (c.target.type == "zfs" ? c.target.dataset : c.target.path);
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
    if (auto n = CountPoints(r->config)) m.points = {{TargetLabel(r->config), *n}};
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

std::vector<VolumeBytes> VolumeBytesOf(const BackupResult& r, const std::vector<InplaceStats>* inplace) {
  std::vector<VolumeBytes> out;
  for (size_t i = 0; i < r.volumes.size(); i++) {
    uint64_t written = inplace && i < inplace->size() ? (*inplace)[i].bytes_written : 0;
    out.push_back({r.volumes[i].name, r.volumes[i].bytes_read, written});
  }
  if (!inplace && out.size() == 1) out[0].written = r.store.stored_bytes_written;
  return out;
}

}  // namespace vmback
