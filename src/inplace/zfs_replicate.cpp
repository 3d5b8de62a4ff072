#include "inplace/zfs_replicate.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include "inplace/backends.h"
#include "os/subprocess.h"
#include "retention/policy.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/sha256.h"

namespace vmback {

using inplace_internal::CheckOwnPoint;
using inplace_internal::Lines;
using inplace_internal::OwnPoints;
using inplace_internal::Trim;
using inplace_internal::ZfsSnapshotsOf;
using inplace_internal::Words;

namespace {

// How often a rename that zfs-fuse calls busy (the dataset just unmounted)
// is tried.
constexpr int kRenameTries = 10;

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// One replica's receiving side, here or over ssh: each command's argv.
class Receiver {
 public:
  Receiver(Env* env, const ReplicaConfig& replica, std::string prefix)
      : env_(env), replica_(replica), prefix_(std::move(prefix)) {}

  // argv as run on the receiving host. Names are plain (config checks
  // IsPlainZfsDatasetName and IsPlainSshHost), so the remote shell that
  // ssh hands the words to takes them as they are.
  std::vector<std::string> Command(std::vector<std::string> argv) const {
    if (replica_.host.empty()) return argv;
    std::vector<std::string> ssh = {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
                                    "-o", "ServerAliveInterval=30", "--", replica_.host};
    ssh.insert(ssh.end(), argv.begin(), argv.end());
    return ssh;
  }

  RunResult Run(const std::vector<std::string>& argv) const {
    const std::vector<std::string> cmd = Command(argv);
    try {
      return env_->Run(cmd);
    } catch (const Error& e) {
      throw Error(ErrorKind::kOther, "replica " + replica_.where() + ": cannot run " + CommandLine(cmd) + ": " +
                                         e.what());
    }
  }

  RunResult Checked(const std::vector<std::string>& argv, const std::string& what) const {
    RunResult r = Run(argv);
    if (r.exit_code != 0)
      throw Error(ErrorKind::kOther, "replica " + replica_.where() + ": " + what + ": " +
                                         DescribeFailure(Command(argv), r));
    return r;
  }

  // Every snapshot of the receiving dataset, oldest first by creation;
  // nullopt when the dataset does not exist (one command for both).
  std::optional<std::vector<std::string>> Snapshots() const {
    const std::vector<std::string> argv = {"zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "creation",
                                           "-r", replica_.dataset};
    RunResult r = Run(argv);
    if (r.exit_code != 0 && r.err.find("does not exist") != std::string::npos) return std::nullopt;
    if (r.exit_code != 0)
      throw Error(ErrorKind::kOther, "replica " + replica_.where() + ": listing its snapshots: " +
                                         DescribeFailure(Command(argv), r));
    return ZfsSnapshotsOf(r.out, replica_.dataset);
  }

  // vmback's points of the receiving dataset, oldest first.
  std::vector<std::string> Points() const {
    return OwnPoints(Snapshots().value_or(std::vector<std::string>{}), prefix_);
  }

  // Renames the receiving dataset aside (unmounted first: zfs-fuse renames
  // no mounted dataset); returns the new name.
  std::string SetAside(int64_t now_ns) const {
    const std::string aside = replica_.dataset + "-vmback-aside-" + FormatPointStamp(now_ns);
    Run({"zfs", "umount", replica_.dataset});  // not mounted is fine
    RunResult r;
    for (int i = 0; i < kRenameTries; i++) {
      r = Run({"zfs", "rename", replica_.dataset, aside});
      if (r.exit_code == 0) return aside;
      if (r.err.find("busy") == std::string::npos) break;
      env_->clock()->SleepFor(std::chrono::milliseconds(300));
    }
    throw Error(ErrorKind::kOther, "replica " + replica_.where() + ": the chain is broken and the dataset cannot be "
                                       "set aside: " + DescribeFailure(Command({"zfs", "rename", replica_.dataset,
                                                                                aside}), r) +
                                       "; rename or destroy it by hand, and the next run sends a full stream");
  }

  const ReplicaConfig& config() const { return replica_; }

 private:
  Env* env_;
  const ReplicaConfig& replica_;
  std::string prefix_;
};

}  // namespace

std::set<std::string> ZfsHeldPoints(Env* env, const std::string& dataset) {
  std::set<std::string> held;
  RunResult r = env->Run({"zfs", "get", "-H", "-o", "name,value", "-r", "userrefs", dataset});
  if (r.exit_code != 0) return held;
  const std::string own = dataset + "@";
  for (const auto& line : Lines(r.out)) {
    const auto w = Words(line);
    if (w.size() == 2 && w[0].compare(0, own.size(), own) == 0 && w[1] != "0" && w[1] != "-")
      held.insert(w[0].substr(own.size()));
  }
  return held;
}

namespace {

// Holds latest on the source for this replica and releases the replica's
// holds on every other point.
void MoveHold(Env* env, const std::string& dataset, const std::string& tag, const std::string& latest,
              ReplicaReport* report) {
  RunResult r = env->Run({"zfs", "hold", tag, dataset + "@" + latest});
  if (r.exit_code != 0 && r.err.find("already exists") == std::string::npos)
    report->warnings.push_back("replica " + report->where + ": cannot hold " + dataset + "@" + latest +
                               " as the next send's base (" + Trim(r.err) +
                               "); if prune destroys it, the next send is a full one");
  for (const auto& p : ZfsHeldPoints(env, dataset))
    if (p != latest) env->Run({"zfs", "release", tag, dataset + "@" + p});  // not ours: refused, fine
}

// The receiver's retention: destroys the points it does not keep, never its
// newest (the next send's base).
void PruneReceiver(const Receiver& rx, const std::string& prefix, const RetentionPolicy& policy,
                   ReplicaReport* report) {
  if (policy.empty()) return;
  const std::vector<std::string> points = rx.Points();
  std::vector<PointInfo> infos;
  for (const auto& p : points) infos.push_back({p, ParsePointStamp(p.substr(prefix.size()))});
  for (const auto& d : ApplyRetention(infos, policy)) {
    if (d.keep || points.empty() || d.name == points.back()) continue;
    CheckOwnPoint(prefix, d.name, rx.config().where());
    rx.Checked({"zfs", "destroy", rx.config().dataset + "@" + d.name}, "destroying " + d.name);
    report->pruned.push_back(d.name);
  }
}

void ReplicateOne(InplaceTarget* target, Env* env, const TargetConfig& config, const ReplicaConfig& replica,
                  const RetentionPolicy& fallback, const PipeLimits& limits, bool dry_run, Logger* log,
                  ReplicaReport* report) {
  const std::string& prefix = config.snapshot_prefix;
  const std::string& source = config.dataset;
  Receiver rx(env, replica, prefix);
  const std::vector<std::string> ours = target->ListPoints();
  const std::optional<std::vector<std::string>> listed = rx.Snapshots();
  const bool exists = listed.has_value();
  const std::vector<std::string> all = listed.value_or(std::vector<std::string>{});
  const ReplicaPlan plan = PlanReplica(ours, exists, OwnPoints(all, prefix), all);
  if (plan.kind == ReplicaPlan::Kind::kNothing) {
    report->mode = "nothing to send";
    return;
  }
  std::vector<std::string> producer = {"zfs", "send"};
  std::vector<std::string> consumer = {"zfs", "recv"};
  switch (plan.kind) {
    case ReplicaPlan::Kind::kBlocked:
      report->base = plan.base;
      throw Error(ErrorKind::kOther, "replica " + replica.where() + ": " + plan.why);
    case ReplicaPlan::Kind::kUpToDate:
      report->mode = "up to date";
      break;
    case ReplicaPlan::Kind::kIncremental:
      report->mode = "incremental";
      report->base = plan.base;
      producer.insert(producer.end(), {"-I", source + "@" + plan.base});
      consumer.push_back("-F");
      for (auto it = std::find(ours.begin(), ours.end(), plan.base) + 1; it != ours.end(); ++it)
        report->sent.push_back(*it);
      break;
    case ReplicaPlan::Kind::kSetAside:
      report->chain_broken = plan.why;
      if (dry_run) {
        report->mode = "full (chain broken; the dataset would be renamed aside)";
        report->sent.push_back(plan.latest);
        report->dry_run = true;
        return;
      }
      report->set_aside = rx.SetAside(env->NowNanos());
      log->Warn("replica " + replica.where() + ": " + plan.why + "; set it aside as " + report->set_aside +
                " (nothing on it destroyed) and sending a full stream");
      report->mode = "full (chain broken)";
      report->sent.push_back(plan.latest);
      break;
    default:
      report->mode = "full";
      report->sent.push_back(plan.latest);
      break;
  }
  if (dry_run) {
    report->dry_run = true;
    return;
  }
  if (plan.kind != ReplicaPlan::Kind::kUpToDate) {
    producer.push_back(source + "@" + plan.latest);
    consumer.push_back(replica.dataset);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<std::string> recv = rx.Command(consumer);
    PipeResult r = env->RunPipe(producer, recv, limits);
    report->bytes = r.bytes;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r.producer.exit_code != 0 || r.consumer.exit_code != 0) {
      report->sent.clear();
      std::string said = Trim(r.consumer.err);
      if (said.empty()) said = Trim(r.producer.err);
      throw Error(ErrorKind::kOther, "replica " + replica.where() + ": " + CommandLine(producer) + " | " +
                                         CommandLine(recv) + " failed" + (said.empty() ? "" : ": " + said));
    }
    if (plan.kind != ReplicaPlan::Kind::kIncremental) {
      // The received copy is not for writing: a change on it would
      // only be rolled back by the next receive.
      RunResult ro = rx.Run({"zfs", "set", "readonly=on", replica.dataset});
      if (ro.exit_code != 0)
        report->warnings.push_back("replica " + replica.where() + ": cannot set readonly=on: " + Trim(ro.err));
    }
  }
  MoveHold(env, source, ReplicaHoldTag(replica), plan.latest, report);
  PruneReceiver(rx, prefix, replica.retention_given ? replica.retention : fallback, report);
}

}  // namespace

ReplicaPlan PlanReplica(const std::vector<std::string>& source, bool receiver_exists,
                        const std::vector<std::string>& receiver,
                        const std::vector<std::string>& receiver_snapshots) {
  ReplicaPlan plan;
  if (source.empty()) return plan;
  plan.latest = source.back();
  if (!receiver_exists) {
    plan.kind = ReplicaPlan::Kind::kFull;
    return plan;
  }
  if (receiver.empty()) {
    plan.kind = ReplicaPlan::Kind::kSetAside;
    plan.why = "the dataset exists but holds no point of vmback";
    return plan;
  }
  const std::string& newest = receiver.back();
  if (!Contains(source, newest)) {
    plan.kind = ReplicaPlan::Kind::kSetAside;
    std::string common;
    for (const auto& p : receiver)
      if (Contains(source, p)) common = p;
    plan.why = "its newest point " + newest + " is not on the source" +
               (common.empty() ? " (no point in common)" : " (the newest in common is " + common + ")");
    return plan;
  }
  plan.base = newest;
  plan.kind = newest == plan.latest ? ReplicaPlan::Kind::kUpToDate : ReplicaPlan::Kind::kIncremental;
  if (plan.kind == ReplicaPlan::Kind::kUpToDate) return plan;
  // `zfs recv -F` of an incremental rolls the receiver back to the base,
  // destroying every snapshot made after it: refuse rather than lose them.
  auto at = std::find(receiver_snapshots.begin(), receiver_snapshots.end(), newest);
  std::vector<std::string> later(at == receiver_snapshots.end() ? at : at + 1, receiver_snapshots.end());
  if (!later.empty()) {
    plan.kind = ReplicaPlan::Kind::kBlocked;
    std::string names;
    // Names from the receiving host: escaped, and at most 10 of them.
    constexpr size_t kNamed = 10;
    for (size_t i = 0; i < later.size() && i < kNamed; i++)
      names += (names.empty() ? "" : ", ") + EscapeForTerminal(later[i]);
    if (later.size() > kNamed) names += " and " + std::to_string(later.size() - kNamed) + " more";
    plan.why = "snapshots were made on it after its newest point " + newest + " (" + names +
               "), and a receive would destroy them; nothing is sent until they are gone: keep what you need "
               "of them (zfs clone or zfs send) and zfs destroy them (the source holds the base meanwhile)";
  }
  return plan;
}

std::string ReplicaHoldTag(const ReplicaConfig& replica) {
  return "vmback-replica-" + Sha256(replica.where()).Hex().substr(0, 12);
}

std::vector<ReplicaReport> ReplicateZfs(InplaceTarget* target, Env* env, const TargetConfig& config,
                                        const std::vector<ReplicaConfig>& replicas, const RetentionPolicy& fallback,
                                        const PipeLimits& limits, bool dry_run, Logger* log) {
  std::vector<ReplicaReport> reports;
  for (const auto& replica : replicas) {
    ReplicaReport report;
    report.where = replica.where();
    try {
      ReplicateOne(target, env, config, replica, fallback, limits, dry_run, log, &report);
      log->Info(ReplicaReportLines({report}).front());
    } catch (const Error& e) {
      report.error = e.what();
      // A warning (exit 5): the point itself is made and sound.
      log->Warn(report.error + "; the point on the target stands, and the next run sends what is missing");
    }
    for (const auto& w : report.warnings) log->Warn(w);
    reports.push_back(std::move(report));
  }
  return reports;
}

std::vector<ReplicaReport> ReplicateConfigured(Env* env, const Config& config, const std::atomic<bool>* cancel,
                                               bool dry_run, Logger* log) {
  if (config.replicas.empty()) return {};
  if (config.target.type != TargetType::kZfs)
    ThrowConfig("[[replicate]] needs a zfs target");  // config rejects it already
  auto target = OpenInplaceTarget(env, config.target, log);
  PipeLimits limits;
  limits.cancel = cancel;
  // Test seam (tests/security/replica_forged.sh): a shorter stall bound.
  const std::string stall_ms = EnvironmentValue("VMBACK_TEST_PIPE_STALL_MS");
  if (!stall_ms.empty() && stall_ms.size() < 9 && stall_ms.find_first_not_of("0123456789") == std::string::npos)
    limits.stall = std::chrono::milliseconds(std::stoll(stall_ms));
  return ReplicateZfs(target.get(), env, config.target, config.replicas, config.retention, limits, dry_run, log);
}

nlohmann::json ReplicaReportsToJson(const std::vector<ReplicaReport>& reports) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json j = {{"where", r.where}, {"mode", r.mode}, {"dry_run", r.dry_run}, {"sent", r.sent},
                        {"bytes", r.bytes},
                        {"seconds", r.seconds}, {"pruned", r.pruned}, {"ok", r.error.empty()}};
    if (!r.base.empty()) j["base"] = r.base;
    if (!r.set_aside.empty()) j["set_aside"] = r.set_aside;
    if (!r.chain_broken.empty()) j["chain_broken"] = r.chain_broken;
    if (!r.error.empty()) j["error"] = r.error;
    if (!r.warnings.empty()) j["warnings"] = r.warnings;
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<std::string> ReplicaReportLines(const std::vector<ReplicaReport>& reports) {
  std::vector<std::string> lines;
  for (const auto& r : reports) {
    if (!r.error.empty()) {
      lines.push_back("FAILED: " + r.error);  // it names the replica
      continue;
    }
    std::string line = "replica " + r.where + ": ";
    if (r.dry_run && !r.sent.empty())
      line += "would send " + Counted(r.sent.size(), "point") + " (" + r.mode +
              (r.base.empty() ? "" : " from " + r.base) + ")";
    else line += r.mode;
    if (!r.dry_run && !r.sent.empty())
      line += ", sent " + Counted(r.sent.size(), "point") + " (" + FormatBytes(r.bytes) + ")";
    if (!r.chain_broken.empty()) line += "; chain broken: " + r.chain_broken;
    if (!r.set_aside.empty()) line += "; the old copy is kept as " + r.set_aside;
    if (!r.pruned.empty()) line += ", pruned " + Counted(r.pruned.size(), "point");
    lines.push_back(line);
  }
  return lines;
}

}  // namespace vmback
