#include "job/job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "job/base_snapshot.h"
#include "job/excludes.h"
#include "job/journal.h"
#include "job/libvirt_volume.h"
#include "job/mount.h"
#include "job/volumes.h"
#include "run/store_destination.h"
#include "scan/file_scanner.h"
#include "source/snapshot.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

using Steady = std::chrono::steady_clock;

double Seconds(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct VolumeState {
  std::unique_ptr<Snapshot> snapshot;
  std::string record;
  // The journal record of a snapshot whose taking failed (its command may
  // have been killed after making it): dropped, if there, by the clean-up.
  std::string planned;
  std::unique_ptr<Mount> mount;
  bool left = false;  // its drop failed: the journal keeps its record
};

}  // namespace

JobReport RunJob(const Config& config, Env* env, Hypervisor* hv, const JobOptions& options, Logger* log) {
  JobReport report;
  auto step = [&](const std::string& name) {
    CheckCancel(options.cancel);
    if (options.hook) options.hook(name);
  };
  const bool quiesce = options.kind == JobKind::kRun;
  // What must be undone on a crash: VMs quiesced (run), snapshots and their
  // mounts. A backup of live volumes alone has nothing to journal.
  bool journaled = quiesce;
  for (const auto& v : config.volumes) journaled = journaled || v.snapshot != SnapshotKind::kNone;
  std::unique_ptr<FileLock> run_lock;
  const std::string journal_path = JoinPath(config.run.state_dir, "journal");
  if (journaled) {
    MakeStateDir(env, config.run.state_dir, log);
    run_lock = env->Lock(JoinPath(config.run.state_dir, "run.lock"), LockMode::kExclusive);
    if (env->Exists(journal_path)) {
      report.recovered =
          RecoverFromJournal(env, journal_path, HypervisorToRecover(env, journal_path, hv, options.connect), log,
                             config.run.nbd_dir);
    }
  }

  std::vector<DomainInfo> domains;
  Problems problems;
  CheckPlan(config, options.kind, env, hv, &domains, options.cancel, &problems);
  problems.ThrowIfRunFails();
  report.sources = DescribeSources(config, domains, log);
  // The destination is opened before any VM is touched: a locked or
  // missing store, or an unusable in-place target, fails the run while
  // everything still runs. A store is opened kAppend: list, restore and
  // verify's check go on beside the backup; the prune at the end upgrades.
  // The disks of running VMs on snapshot = "libvirt" volumes are read from
  // their backup jobs' exports, through this Env (the rest passes through).
  DiskExportEnv exports(env);
  std::unique_ptr<Destination> dest =
      OpenDestination(&exports, config.target, DestinationAccess::kBackup, config.target.lock_wait_seconds, log,
                      ExcludesOfConfig(config, options.exclude));
  CheckTags(*dest, options.tags);

  std::string run_id = options.run_id.empty() ? std::to_string(env->NowNanos() / 1000000) : options.run_id;
  std::unique_ptr<Journal> journal;
  if (journaled) journal = std::make_unique<Journal>(env, journal_path, run_id);
  auto record = [&](const nlohmann::json& r) {
    if (journal) journal->Record(r);
  };
  LibvirtBackups libvirt(config, env, hv, &exports, record, log);
  std::vector<VolumeState> states(config.volumes.size());
  std::vector<std::optional<BaseSnapshot>> bases(config.volumes.size());  // track_changes: the base used
  // A VM whose release failed: it stays in the journal (quiesced, not
  // released) for the next run to recover, so the journal must stay too.
  bool vm_left = false;
  // Drops the snapshot of volume i once; a failed drop keeps its journal
  // record (Snapshot::Drop is not retried, so it must not be recorded as
  // dropped later on).
  auto drop_snapshot = [&](size_t i) {
    if (!states[i].planned.empty()) {
      std::string planned = std::move(states[i].planned);
      states[i].planned.clear();
      try {
        DropLeftoverSnapshot(env, planned, run_id, log);
      } catch (...) {
        states[i].left = true;
        throw;
      }
      record({{"op", "dropped"}, {"record", planned}});
    }
    std::unique_ptr<Snapshot> snapshot = std::move(states[i].snapshot);
    if (!snapshot) return;
    try {
      snapshot->Drop();
    } catch (...) {
      states[i].left = true;
      throw;
    }
    record({{"op", "dropped"}, {"record", states[i].record}});
  };
  try {
    {
      // The freeze window: quiesce, snapshot, release. Guards undo on any path.
      std::vector<std::string> vm_order;
      if (quiesce) vm_order = QuiesceOrder(config, domains);
      std::vector<std::unique_ptr<QuiescedVm>> held;
      std::map<std::string, Steady::time_point> since;
      const auto window_start = Steady::now();
      const auto deadline = window_start + std::chrono::seconds(config.run.max_freeze_seconds);
      const auto timeout = std::chrono::milliseconds(config.run.call_timeout_seconds * 1000);
      // Each guard leaves `held` before its release: one that fails is not
      // released again (and not recorded as released) by the clean-up below.
      auto release_all = [&] {
        while (!held.empty()) {
          std::unique_ptr<QuiescedVm> q = std::move(held.back());
          held.pop_back();
          try {
            q->Release();
          } catch (...) {
            vm_left = true;
            throw;
          }
          record({{"op", "released"}, {"vm", q->name()}});
          report.vms.push_back({q->name(), QuiesceMethodName(q->method()),
                                Seconds(since[q->name()], Steady::now())});
        }
      };
      try {
        for (const auto& vm : vm_order) {
          step("quiesce:" + vm);
          QuiesceMethod method = MethodFor(config, vm);
          record({{"op", "quiesce"}, {"vm", vm}, {"method", QuiesceMethodName(method)}});
          since[vm] = Steady::now();
          auto q = hv->Quiesce(vm, method, timeout);
          if (!q) {
            record({{"op", "released"}, {"vm", vm}});
            continue;
          }
          held.push_back(std::move(q));
        }
        for (size_t i = 0; i < config.volumes.size(); i++) {
          const auto& v = config.volumes[i];
          step("snapshot:" + v.name);
          if (Steady::now() > deadline)
            throw Error(ErrorKind::kOther, "the freeze took longer than max_freeze (" +
                                               std::to_string(config.run.max_freeze_seconds) +
                                               " s); VMs resumed, nothing backed up");
          SnapshotSpec spec = SnapshotSpecOf(v, run_id);
          // Journaled before it is taken: a crash while it is being made
          // (the snapshot command goes on without us) must not leak it.
          std::string planned = PlannedJournalRecord(spec);
          record({{"op", "snapshot"}, {"volume", v.name}, {"record", planned}});
          // While a VM is quiet, the snapshot command has the rest of
          // max_freeze, and a signal ends it at once: killed (its process
          // group), it may have made the snapshot all the same, so the
          // clean-up drops what the plan named.
          RunLimits limits;
          limits.cancel = options.cancel;
          if (!held.empty()) limits.deadline = deadline;
          if (spec.kind == SnapshotKind::kLvm || spec.kind == SnapshotKind::kBtrfs) states[i].planned = planned;
          try {
            states[i].snapshot = TakeSnapshot(env, spec, log, limits);
          } catch (const Error& e) {
            const bool at_deadline = !held.empty() && Steady::now() >= deadline;
            // A plain failure made nothing; a kill may have.
            if (!at_deadline && !(options.cancel && options.cancel->load())) states[i].planned.clear();
            if (!at_deadline) throw;
            throw Error(e.kind(), "the freeze reached max_freeze (" + std::to_string(config.run.max_freeze_seconds) +
                                      " s): " + e.what() + "; VMs resumed, nothing backed up");
          }
          states[i].planned.clear();
          states[i].record = states[i].snapshot->JournalRecord();
          if (states[i].record != planned)
            record({{"op", "snapshot"}, {"volume", v.name}, {"record", states[i].record}});
          if (ReadsFromLibvirt(v))
            libvirt.Begin(v, domains, run_id, held.empty() ? std::nullopt : std::make_optional(deadline));
        }
        step("release");
        release_all();
      } catch (...) {
        while (!held.empty()) {
          std::unique_ptr<QuiescedVm> q = std::move(held.back());
          held.pop_back();
          try {
            q->Release();
            record({{"op", "released"}, {"vm", q->name()}});
            char quiet[32];
            std::snprintf(quiet, sizeof quiet, "%.2f", Seconds(since[q->name()], Steady::now()));
            log->Info("VM " + q->name() + " resumed after " + quiet + " s quiet; the run stops");
          } catch (const std::exception& e) {
            vm_left = true;
            log->Error(std::string("cannot resume VM ") + q->name() + ": " + e.what());
          }
        }
        throw;
      }
      report.freeze_window_seconds = vm_order.empty() ? 0 : Seconds(window_start, Steady::now());
      for (const auto& vr : report.vms)
        log->Info("VM " + vr.name + " quiet (" + vr.method + ") for " + FormatSeconds(vr.freeze_seconds));
    }

    // Read each volume from its snapshot; drop the snapshot as soon as it is read.
    auto drop = [&](size_t i) {
      if (ReadsFromLibvirt(config.volumes[i])) libvirt.Done(config.volumes[i]);
      if (KeepsBase(config.volumes[i])) return;  // kept until the point is committed
      step("drop:" + config.volumes[i].name);
      if (states[i].mount) {
        states[i].mount->Unmount();
        states[i].mount.reset();
      }
      drop_snapshot(i);
    };
    std::vector<VolumeSpec> specs;
    for (size_t i = 0; i < config.volumes.size(); i++) {
      const auto& v = config.volumes[i];
      std::string path = states[i].snapshot->path();
      if (MountsSnapshot(env, v, path)) {
        step("mount:" + v.name);
        // (journaled: an lvm volume)
        states[i].mount = std::make_unique<Mount>(env, journal.get(), MountDirOf(config, v), log);
        states[i].mount->Make(path, options.cancel);
        path = states[i].mount->dir();
      }
      specs.push_back(ReadSpecOf(v, path));
      if (KeepsBase(v)) UseBase(env, config, v, &specs.back(), &bases[i], log);
      if (ReadsFromLibvirt(v)) libvirt.Describe(v, &specs.back());
    }
    BackupOptions bopts;
    bopts.cancel = options.cancel;
    bopts.full_read = options.full_read;
    bopts.threads = options.threads;
    bopts.read_limit = options.read_limit ? options.read_limit : config.run.read_limit;
    bopts.full_read_every_ns = config.run.full_read_every_ns;
    bopts.on_volume_done = drop;
    bopts.tags = options.tags;
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.name);
    bopts.vms = VmRecordsOf(config, domains, names, log);
    step("sync");
    report.backup = dest->Backup(specs, bopts, log);
    libvirt.EndAll();
    // Committed: each VM's new checkpoint is the base of its next run.
    if (!report.backup.point.empty()) libvirt.Commit(report.backup.point);
    for (const auto& line : libvirt.Summary()) log->Info(line);
    // Committed: each kept snapshot becomes its volume's base.
    for (size_t i = 0; i < config.volumes.size(); i++) {
      const auto& v = config.volumes[i];
      if (!KeepsBase(v) || !states[i].snapshot) continue;
      step("keep:" + v.name);
      const BaseSnapshot kept{SnapshotSpecOf(v, run_id), states[i].snapshot->path(), report.backup.point};
      try {
        RecordBase(env, config, v, kept, bases[i]);
        record({{"op", "kept"}, {"record", states[i].record}});
        states[i].snapshot->Keep();
        states[i].snapshot.reset();
      } catch (const Error& e) {
        log->Warn("volume '" + v.name + "': cannot keep its snapshot as the next run's base (" + e.what() +
                  "); the next run reads it in full");
        drop_snapshot(i);
        continue;
      }
      FinishHandOver(env, config, v, kept, bases[i], log);
    }
  } catch (...) {
    // Whatever failed (a step, a snapshot, a mount, the backup, a cancel):
    // unmount and drop what is still there, each recorded; the journal goes
    // only when nothing is left for the next run to clean up.
    try {
      libvirt.EndAll();
    } catch (const std::exception& e) {
      log->Error(std::string("cleanup: ") + e.what());
    }
    for (size_t i = 0; i < states.size(); i++) {
      try {
        if (states[i].mount) {
          states[i].mount->Unmount();
          states[i].mount.reset();
        }
        drop_snapshot(i);
      } catch (const std::exception& e) {
        log->Error(std::string("cleanup of volume ") + config.volumes[i].name + ": " + e.what());
      }
    }
    bool clean = !vm_left && !libvirt.Running();
    for (const auto& s : states) clean = clean && !s.snapshot && !s.mount && !s.left && s.planned.empty();
    if (clean && journal) {
      try {
        journal->Close();
      } catch (const std::exception& e) {
        log->Error(std::string("cannot remove the journal ") + journal->path() + ": " + e.what());
      }
    }
    throw;
  }
  report.point = report.backup.point;
  if (journal) journal->Close();

  // Before the prune: the replicas get every point made since their last
  // send, and the point each one holds as its base is kept by the prune.
  if (!config.replicas.empty() && !report.point.empty()) {
    step("replicate");
    report.replicas = ReplicateConfigured(env, config, options.cancel, false, log);
  }

  if (options.kind == JobKind::kRun && !config.retention.empty()) {
    step("prune");
    PruneRequest prune;
    prune.lock_wait_seconds = options.prune_lock_wait;
    prune.keep_bad_ns = config.store.keep_bad_ns;  // each file removed is logged
    report.pruned = dest->Prune(config.retention, prune, log).deleted;
  }
  for (const auto& p : log->problems()) report.warnings.push_back(p);
  return report;
}

std::vector<std::string> RecoverJob(const Config& config, Env* env,
                                    const std::function<Hypervisor*()>& connect, Logger* log) {
  MakeStateDir(env, config.run.state_dir, log);
  auto run_lock = env->Lock(JoinPath(config.run.state_dir, "run.lock"), LockMode::kExclusive);
  std::string journal_path = JoinPath(config.run.state_dir, "journal");
  if (!env->Exists(journal_path)) return {};
  return RecoverFromJournal(env, journal_path, HypervisorToRecover(env, journal_path, nullptr, connect), log,
                            config.run.nbd_dir);
}

nlohmann::json JobReportToJson(const JobReport& r) {
  nlohmann::json vms = nlohmann::json::array();
  for (const auto& v : r.vms)
    vms.push_back({{"name", v.name}, {"method", v.method},
                   {"freeze_ms", static_cast<int64_t>(v.freeze_seconds * 1000)}});
  return {{"point", r.point},
          {"vms", vms},
          {"freeze_window_ms", static_cast<int64_t>(r.freeze_window_seconds * 1000)},
          {"sources", SourcesToJson(r.sources)},
          {"backup", BackupResultToJson(r.backup)},
          {"replicas", ReplicaReportsToJson(r.replicas)},
          {"pruned", r.pruned},
          {"recovered", r.recovered},
          {"warnings", r.warnings}};
}

nlohmann::json SourcesToJson(const std::vector<SourceReport>& sources) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : sources)
    out.push_back({{"volume", s.volume},
                   {"snapshot", s.snapshot},
                   {"read_live", s.read_live},
                   {"by_choice", s.by_choice},
                   {"vms", s.vms}});
  return out;
}

std::unique_ptr<Hypervisor> ConnectForJob(const Config& config,
                                          const std::function<std::unique_ptr<Hypervisor>()>& connect,
                                          Logger* log) {
  bool required = !config.vms.empty();
  std::vector<std::string> by_default;  // volumes whose vms is not written ("auto")
  bool live_by_default = false;         // a volume read live, snapshot not written
  for (const auto& v : config.volumes) {
    required = required || (v.vms_given && (v.vms_auto || !v.vms.empty()));
    if (!v.vms_given) by_default.push_back(v.name);
    live_by_default = live_by_default || (v.snapshot == SnapshotKind::kNone && !v.snapshot_given);
  }
  if (required) return connect();
  if (by_default.empty() && !live_by_default) return nullptr;
  try {
    return connect();
  } catch (const Error& e) {
    if (by_default.empty()) {
      // Only to see whether VMs run on a volume read live: vms = [] said none.
      log->Info(std::string(e.what()) + "; not checked whether VMs run on the volumes read live");
      return nullptr;
    }
    log->Warn(std::string(e.what()) + "; so no VM is quiesced for volume" + (by_default.size() == 1 ? " " : "s ") +
              JoinNames(by_default) + " (vms not set: \"auto\", the VMs libvirt knows with a disk on it)." +
              " If no VM has a disk there, say vms = [] for it");
    return nullptr;
  }
}

}  // namespace vmback
