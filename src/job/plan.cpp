// vmback plan: what `vmback run` would do. The checks, snapshots, mounts and
// drops are the run's own functions (CheckPlan, TakeSnapshot, Mount,
// Snapshot::Drop) run through a DryRunEnv, so the commands printed are the
// ones the run executes, argument for argument.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "inplace/target.h"
#include "job/base_snapshot.h"
#include "job/dry_run_env.h"
#include "job/excludes.h"
#include "job/job.h"
#include "job/libvirt_volume.h"
#include "job/mount.h"
#include "job/volumes.h"
#include "store/store.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// The run id a plan's snapshots are named with, shown as "<run id>". Of the
// form a run id has (a name LVM takes), so the same checks apply.
constexpr char kPlanRunId[] = "0000000000000";

class PlanWriter {
 public:
  explicit PlanWriter(DryRunEnv* dry) : dry_(dry) {}
  void Line(std::string text) {
    for (size_t at; (at = text.find(kPlanRunId)) != std::string::npos;)
      text.replace(at, sizeof kPlanRunId - 1, "<run id>");
    out_ += text + "\n";
  }
  // The steps the dry run wrote down since the last call, indented.
  void Steps() {
    for (const std::string& s : dry_->TakeSteps()) Line("     " + s);
  }
  const std::string& text() const { return out_; }

 private:
  DryRunEnv* dry_;
  std::string out_;
};

// A store in the clear with a copy in a bucket: whoever can read the
// bucket (the provider, a leaked key) reads every backup.
void WarnAboutPlainBucketCopies(Env* env, const StoreCopies& copies, Logger* log) {
  std::string buckets;
  for (const auto& c : copies.all)
    if (IsBucketUrl(c)) buckets += (buckets.empty() ? "" : ", ") + c;
  if (buckets.empty()) return;
  bool encrypted = false;
  try {
    auto config = nlohmann::json::parse(ReadFileToString(env, JoinPath(copies.primary, "config.json"),
                                                         kMaxSmallFileSize));
    encrypted = config.is_object() && config.contains("encryption");
  } catch (const std::exception&) {
    return;  // what is wrong with it, opening the store says
  }
  if (!encrypted)
    log->Warn("the store " + copies.primary + " is not encrypted and has a copy in a bucket (" + buckets +
              "): whoever can read the bucket reads the backups. For a copy off site, make an encrypted store "
              "(vmback store init --encrypt) and back up into it");
}

// The destination is looked at, not opened: a plan takes no lock.
void DescribeDestination(const Config& config, Env* env, Logger* log, PlanWriter* w) {
  if (config.target.type != TargetType::kStore) {
    auto target = OpenInplaceTarget(env, config.target, log);
    WarnAboutMountOptions(*target, log);
    w->Line(std::string("2. open the ") + TargetTypeName(config.target.type) + " target " +
            (config.target.type == TargetType::kZfs ? config.target.dataset : config.target.path) +
            " (changed blocks are written in place, then a point is taken)");
    return;
  }
  // A copy of the store must be there (as RunJob's Store::Open requires).
  StoreOptions store_options;
  store_options.mirrors = config.target.mirrors;
  StoreCopies copies = Store::Locate(env, config.target.path, store_options);
  for (const auto& c : copies.all)
    if (!env->Exists(JoinPath(c, "config.json")))
      log->Warn("copy " + c + " holds no store (" + (env->Exists(c) ? "no config.json" : "not there") +
                "): the run goes on without it");
  WarnAboutCopiesOnRootFileSystem(copies.all, log);
  WarnAboutPlainBucketCopies(env, copies, log);
  std::string line = "2. open the store " + copies.primary + " (exclusive)";
  if (copies.all.size() > 1) {
    line += ", with its copies";
    for (size_t i = 1; i < copies.all.size(); i++) line += " " + copies.all[i];
  }
  w->Line(line);
}

void DescribeQuiesce(const Config& config, const std::vector<DomainInfo>& domains,
                     const std::vector<SourceReport>& sources, PlanWriter* w) {
  const std::vector<std::string> vm_order = QuiesceOrder(config, domains);
  w->Line("3. quiesce (libvirt " + config.libvirt_uri + "):" + (vm_order.empty() ? " no VMs" : ""));
  for (const auto& vm : vm_order) {
    QuiesceMethod m = MethodFor(config, vm);
    std::string line = "     " + vm + ": " + QuiesceMethodName(m);
    if (m == QuiesceMethod::kAuto) line += " (guest-agent fsfreeze, else Alt+SysRq+S then suspend)";
    std::vector<std::string> for_volumes;
    for (const auto& src : sources)
      if (Lists(src.vms, vm)) for_volumes.push_back(src.volume);
    w->Line(line + (for_volumes.size() == 1 ? ", for volume " : ", for volumes ") + JoinNames(for_volumes));
  }
}

// Step 6 for volume index: mount its snapshot when it is one, read it, drop it
// (or keep it as the next run's base).
void DescribeRead(const Config& config, size_t index, DryRunEnv* dry, Snapshot* snapshot, Logger* steps_log,
                  PlanWriter* w) {
  const VolumeConfig& v = config.volumes[index];
  std::string path = snapshot->path();
  std::unique_ptr<Mount> mount;
  if (MountsSnapshot(dry, v, path)) {
    mount = std::make_unique<Mount>(dry, nullptr, MountDirOf(config, v), steps_log);
    mount->Make(path, nullptr);
    path = mount->dir();
  }
  w->Steps();
  w->Line("     (read " + v.name + " from " + path + ")");
  for (const auto& line : DescribeConfigExcludes(config, index)) w->Line("       left out: " + line);
  if (mount) mount->Unmount();
  if (KeepsBase(v)) {
    w->Line("     (after the commit: kept as the next run's base, recorded in " +
            JoinPath(config.run.state_dir, "base-" + v.name + ".json") + "; the previous base is dropped)");
    snapshot->Keep();
    return;
  }
  snapshot->Drop();
  w->Steps();
}

// The run writes its report into [report] dir (made if missing, its parent
// must be there) and its metrics into [report] metrics_file at the end;
// either failing costs that file, not the backup: a problem, not one that
// fails the run.
void CheckReportPaths(const Config& config, Env* env, Problems* problems) {
  const ReportConfig& r = config.report;
  auto kind_of = [&](const std::string& path) {
    try {
      return env->StatusFollowingLinks(path).kind;
    } catch (const Error&) {
      return FileKind::kMissing;
    }
  };
  if (!r.dir.empty()) {
    const FileKind kind = kind_of(r.dir);
    if (kind != FileKind::kMissing && kind != FileKind::kDir)
      problems->Add(ErrorKind::kConfig, "[report] dir " + r.dir + " is not a directory; name a directory", false);
    else if (kind == FileKind::kMissing && kind_of(DirName(r.dir)) != FileKind::kDir)
      problems->Add(ErrorKind::kConfig,
                    "[report] dir " + r.dir + ": its parent " + DirName(r.dir) +
                        " does not exist, so no report would be written; make it (mkdir -p " + r.dir + ")",
                    false);
  }
  if (!r.metrics_file.empty()) {
    if (!EndsWith(r.metrics_file, ".prom"))
      problems->Add(ErrorKind::kConfig,
                    "[report] metrics_file " + r.metrics_file +
                        ": the name must end in .prom (node_exporter's textfile collector reads only those); "
                        "rename it, e.g. " + r.metrics_file + ".prom",
                    false);
    if (kind_of(DirName(r.metrics_file)) != FileKind::kDir)
      problems->Add(ErrorKind::kConfig,
                    "[report] metrics_file " + r.metrics_file + ": its directory " + DirName(r.metrics_file) +
                        " does not exist, so no metrics would be written; make it (mkdir -p " +
                        DirName(r.metrics_file) + ")",
                    false);
  }
}

}  // namespace

PlanResult PlanJob(const Config& config, Env* env, Hypervisor* hv, Logger* log) {
  DryRunEnv dry(env);
  PlanWriter w(&dry);
  Problems problems;
  std::vector<DomainInfo> domains;
  CheckPlan(config, JobKind::kRun, &dry, hv, &domains, nullptr, &problems);
  const std::vector<SourceReport> sources = DescribeSources(config, domains, log);  // warns as run does
  CheckReportPaths(config, env, &problems);
  if (dry.HasSteps()) {
    w.Line("0. check, before anything is touched:");
    w.Steps();
  }
  w.Line("1. take the run lock " + JoinPath(config.run.state_dir, "run.lock") + "; recover from " +
         JoinPath(config.run.state_dir, "journal") + " if a run crashed");
  problems.Check([&] { DescribeDestination(config, env, log, &w); });
  DescribeQuiesce(config, domains, sources, &w);

  // The snapshot steps log what they did ("took ... snapshot"): not said in
  // a plan, but their warnings are.
  Logger steps_log(LogLevel::kError, false);
  DiskExportEnv exports(&dry);
  LibvirtBackups libvirt(config, &dry, hv, &exports, nullptr, &steps_log);
  w.Line("4. snapshot each volume:");
  // A volume whose snapshot cannot even be planned is left out of the
  // steps after (its problem is listed).
  std::vector<std::unique_ptr<Snapshot>> snapshots(config.volumes.size());
  for (size_t i = 0; i < config.volumes.size(); i++) {
    const auto& v = config.volumes[i];
    if (v.snapshot == SnapshotKind::kNone)
      w.Line("     " + v.name + ": no snapshot" + (v.snapshot_given ? " (snapshot = \"none\")" : " set") + ": " +
             v.source + " is read live" + (v.snapshot_given ? ", by choice" : ""));
    problems.Check([&] { snapshots[i] = TakeSnapshot(&dry, SnapshotSpecOf(v, kPlanRunId), &steps_log); });
    w.Steps();
    if (v.snapshot == SnapshotKind::kLibvirt) {
      w.Line("     " + v.name + ": no storage snapshot (snapshot = \"libvirt\"); the VMs' disks are read over NBD:");
      problems.Check([&] {
        for (const auto& line : libvirt.Preview(v, domains)) w.Line("       " + line);
      });
    }
  }
  w.Line("5. resume every VM (max_freeze " + std::to_string(config.run.max_freeze_seconds) + " s)");
  w.Line("6. for each volume, read it into the " +
         std::string(config.target.type == TargetType::kStore ? "store" : "target") + ", then drop its snapshot:");
  for (size_t i = 0; i < config.volumes.size(); i++) {
    const auto& v = config.volumes[i];
    if (!snapshots[i]) {
      w.Line("     (" + v.name + ": not planned further, see the problems)");
      continue;
    }
    problems.Check([&] { DescribeRead(config, i, &dry, snapshots[i].get(), &steps_log, &w); });
  }
  w.Line("7. commit the point");
  int n = 8;
  if (!config.replicas.empty()) {
    w.Line(std::to_string(n++) + ". send the new points to each [[replicate]] (zfs send -I BASE POINT | zfs recv -F; "
           "'vmback target replicate --dry-run' lists both sides):");
    for (const auto& r : config.replicas)
      w.Line("     " + r.where() + (r.host.empty() ? "" : " over ssh") + "; it keeps " +
             (r.retention_given ? "what its [replicate.retention] keeps"
              : config.retention.empty() ? "every point (no retention given)"
                                         : "what [retention] keeps") + ", and always its newest");
  }
  w.Line(std::to_string(n) + (config.retention.empty() ? ". no [retention]: nothing pruned" : ". prune by [retention]") +
         (config.replicas.empty() ? "" : ", keeping each replica's base (held)"));
  for (const auto& p : steps_log.problems()) log->Warn(p);
  return {w.text(), problems.all()};
}

}  // namespace vmback
