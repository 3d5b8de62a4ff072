#include "inplace/inplace_destination.h"

#include <sstream>

#include "destination/point_find.h"
#include "inplace/checked_read.h"
#include "inplace/point_info.h"
#include "inplace/target_reader.h"
#include "inplace/target_stats.h"
#include "inplace/target_ops.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

std::string VerifyText(const TargetVerifyReport& r) {
  std::ostringstream out;
  if (r.scrub.ran || !r.scrub.summary.empty()) out << r.scrub.summary << "\n";
  out << "checked " << r.points << " points, " << r.files << " files, " << r.blocks << " blocks ("
      << FormatBytes(r.bytes) << ") against their blockmaps: "
      << (r.problems.empty() ? "all good" : Counted(r.problems.size(), "problem")) << "\n";
  for (const auto& p : r.problems) out << "  " << EscapeForTerminal(p) << "\n";
  return out.str();
}

class InplaceDestination : public Destination {
 public:
  InplaceDestination(Env* env, const TargetConfig& config, Logger* log, BackupExcludes excludes)
      : target_(OpenInplaceTarget(env, config, log)),
        env_(env),
        excludes_(std::move(excludes)),
        label_(std::string(TargetTypeName(config.type)) + ":" +
               (config.type == TargetType::kZfs ? config.dataset : config.path)),
        zfs_dataset_(config.type == TargetType::kZfs ? config.dataset : "") {}

  std::string Describe() const override { return target_->describe(); }

  std::string MetricLabel() const override { return label_; }

  bool RestoreWarningsCount() const override { return true; }
  bool TakesTags() const override { return false; }

  BackupResult Backup(const std::vector<VolumeSpec>& volumes, const BackupOptions& options, Logger* log) override {
    return BackupToTarget(target_.get(), env_, volumes, options, log, excludes_);
  }

  std::vector<std::string> PointNames() override { return target_->ListPoints(); }

  PointList ListPoints() override {
    PointList list;
    list.where = target_->describe();
    for (const auto& t : ListTargetPoints(target_.get(), env_)) {
      PointSummary p;
      p.name = t.name;
      p.time = t.time_ns >= 0 ? FormatTimeUtc(t.time_ns) : "";
      p.time_ns = t.time_ns;
      p.volumes = t.volumes;
      list.points.push_back(std::move(p));
    }
    return list;
  }

  RestoreStats Restore(const std::string& point, const std::string& path, const std::string& to,
                       const RestoreOptions& options, Logger* log) override {
    return RestoreFromTarget(target_.get(), env_, point, path, to, options, log);
  }

  std::vector<PointEntry> ListEntries(const std::string& point, const std::string& path,
                                      bool recursive) override {
    return ListTargetEntries(target_.get(), env_, point, path, recursive);
  }

  PointDiff Diff(const std::string& from, const std::string& to, const std::string& path) override {
    return DiffTargetPoints(target_.get(), env_, from, to, path);
  }

  std::vector<PointEntry> FindEntries(const std::string& point, const std::string& pattern,
                                      std::string* resolved) override {
    return FindTargetEntries(
        target_.get(), env_, point, [&](const std::string& path) { return GlobMatch(pattern, path); }, resolved);
  }

  std::unique_ptr<PointReader> OpenPointReader(const std::string& point, uint64_t cache_bytes,
                                               Logger* log) override {
    return OpenTargetPointReader(target_.get(), env_, point, cache_bytes, log);
  }

  std::vector<VmRecord> PointVms(const std::string& point, std::string* resolved) override {
    const OpenedTargetPoint p = OpenTargetPoint(target_.get(), env_, point);
    *resolved = p.name;
    const PointInfoFile info = ReadPointInfo(env_, p.view->root());
    auto it = info.json.find("vms");
    return it == info.json.end() ? std::vector<VmRecord>{} : VmRecordsFromJson(*it, p.volumes, info.path);
  }

  uint64_t Dump(const std::string& point, const std::string& path, WritableFile* out, Logger* log) override {
    return DumpFromTarget(target_.get(), env_, point, path, out, log);
  }

  DestinationStats Stats(const std::vector<std::string>& points, Logger* log) override {
    return TargetStats(target_.get(), env_, zfs_dataset_, points, log);
  }

  VerifyOutcome Verify(const VerifyRequest& request, Logger* log) override {
    if (!request.read_data_subset.empty() || request.read_limit)
      ThrowConfig("--read-data-subset and --read-limit are for a store; an in-place target is checked by "
                  "its file system's scrub and its blockmaps");
    TargetVerifyReport r = VerifyTarget(target_.get(), env_, log);
    VerifyOutcome o;
    o.json = TargetVerifyToJson(r);
    o.text = VerifyText(r);
    o.errors = r.problems.size() + r.scrub.unrepaired;
    o.ok = r.ok();
    o.repaired = r.scrub.repaired;
    return o;
  }

  PruneSummary Prune(const RetentionPolicy& policy, const PruneRequest& request, Logger* log) override {
    TargetPruneResult r = PruneTarget(target_.get(), policy, request.dry_run, log);
    PruneSummary s;
    s.dry_run = request.dry_run;
    s.decisions = r.decisions;
    s.deleted = r.deleted;
    return s;
  }

  CopyHealth Health() const override { return {}; }

 private:
  std::unique_ptr<InplaceTarget> target_;
  Env* env_;
  BackupExcludes excludes_;  // what Backup leaves out of each volume
  std::string label_;
  std::string zfs_dataset_;  // "" unless a zfs target
};

}  // namespace

std::unique_ptr<Destination> OpenInplaceDestination(Env* env, const TargetConfig& config, Logger* log,
                                                    BackupExcludes excludes) {
  return std::make_unique<InplaceDestination>(env, config, log, std::move(excludes));
}

}  // namespace vmback
