#include "run/job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "os/subprocess.h"
#include "run/journal.h"
#include "inplace/target.h"
#include "run/store_destination.h"
#include "scan/file_scanner.h"
#include "source/snapshot.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// How long the prune after a run's backup waits for readers of the store.


using Steady = std::chrono::steady_clock;

double Seconds(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Whether a disk of a domain (a path from its XML) is read with volume v:
// the source itself; a file under a directory source (on the source's file
// system, when one_file_system); or a file on the file system of a block
// device source (an LV holding image files, mounted elsewhere: the file's
// st_dev is the device).
// stat(2) of path (following links); kMissing also when it cannot be told.
FileStatus StatusOrMissing(const std::string& path) {
  try {
    return Env::Default()->StatusFollowingLinks(path);
  } catch (const Error&) {
    return {};
  }
}

bool DiskOnVolume(const std::string& disk, const VolumeConfig& v) {
  const std::string root = CanonicalPath(v.source);
  const std::string path = CanonicalPath(disk);
  if (path == root) return true;
  const FileStatus src = StatusOrMissing(root);
  const FileStatus st = StatusOrMissing(path);
  const bool have_src = src.kind != FileKind::kMissing;
  const bool have_disk = st.kind != FileKind::kMissing;
  if (src.type == S_IFBLK)
    return have_disk && (st.type == S_IFBLK ? st.rdev == src.rdev : st.dev == src.rdev);
  const std::string prefix = root == "/" ? root : root + "/";
  if (path.rfind(prefix, 0) != 0) return false;
  if (v.one_file_system && have_src && have_disk && src.kind == FileKind::kDir) return st.dev == src.dev;
  return true;
}

bool HasDiskOn(const DomainInfo& d, const VolumeConfig& v) {
  for (const auto& disk : d.disk_sources)
    if (DiskOnVolume(disk, v)) return true;
  return false;
}

bool Lists(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The VMs volume v needs quiet: its vms, or (vms = "auto", the default) the
// running domains with a disk on it.
std::vector<std::string> VmsOfVolume(const VolumeConfig& v, const std::vector<DomainInfo>& domains) {
  if (!v.vms_auto) return v.vms;
  std::vector<std::string> out;
  for (const auto& d : domains)
    if (d.running && HasDiskOn(d, v)) out.push_back(d.name);
  return out;
}

// Every VM to quiesce, once, in the order the volumes name them.
std::vector<std::string> QuiesceOrder(const Config& config, const std::vector<DomainInfo>& domains) {
  std::vector<std::string> order;
  for (const auto& v : config.volumes)
    for (const auto& vm : VmsOfVolume(v, domains))
      if (!Lists(order, vm)) order.push_back(vm);
  return order;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + EscapeForTerminal(n);
  return out;
}

// A [[vm]] that would never be quiesced is refused: no volume lists it, and
// no volume left to "auto" holds one of its disks. Whether it runs does not
// matter (a VM shut off tonight still has its volume).
void CheckEveryVmHasAVolume(const Config& config, const std::vector<DomainInfo>& domains) {
  for (const auto& vm : config.vms) {
    const DomainInfo* info = nullptr;
    for (const auto& d : domains)
      if (d.name == vm.name) info = &d;
    bool found = false;
    for (const auto& v : config.volumes)
      found = found || (v.vms_auto ? info != nullptr && HasDiskOn(*info, v) : Lists(v.vms, vm.name));
    if (found) continue;
    std::vector<std::string> disks;
    if (info != nullptr) disks = info->disk_sources;
    const size_t kShown = 3;
    std::string shown = disks.empty() ? "it has none" : "";
    for (size_t i = 0; i < disks.size() && i < kShown; i++) shown += (i ? ", " : "") + EscapeForTerminal(disks[i]);
    if (disks.size() > kShown) shown += ", and " + std::to_string(disks.size() - kShown) + " more";
    ThrowConfig(config.file + ":" + std::to_string(vm.line) + ": [[vm]] '" + vm.name +
                "' belongs to no volume, so it would never be quiesced: no volume lists it in 'vms', and no "
                "volume with vms = \"auto\" (the default) holds one of its disks (" + shown +
                "); add it to the vms of the volume that holds its disks, or remove its [[vm]] table");
  }
}

// How each volume is read and for which VMs. A volume read live by default
// (snapshot not set) while running VMs have disks on it (or are listed in
// its vms) is a warning: their disks are copied while they write.
std::vector<SourceReport> DescribeSources(const Config& config, const std::vector<DomainInfo>& domains,
                                          Logger* log) {
  std::vector<SourceReport> out;
  for (const auto& v : config.volumes) {
    SourceReport s{v.name, v.snapshot, v.snapshot == "none", v.snapshot_given, VmsOfVolume(v, domains)};
    if (s.read_live && !s.by_choice) {
      std::vector<std::string> running;
      for (const auto& d : domains)
        if (d.running && (HasDiskOn(d, v) || (!v.vms_auto && Lists(v.vms, d.name)))) running.push_back(d.name);
      if (!running.empty())
        log->Warn("volume '" + v.name + "': no snapshot is set, so " + v.source + " is read live while " +
                  (running.size() == 1 ? "VM " : "VMs ") + JoinNames(running) +
                  (running.size() == 1 ? " runs" : " run") +
                  " with a disk on it, and the copy may be torn; set snapshot = \"lvm\", \"btrfs\" or "
                  "\"reflink\", or snapshot = \"none\" to read it live by choice");
    }
    out.push_back(std::move(s));
  }
  return out;
}

QuiesceMethod MethodFor(const Config& c, const std::string& vm) {
  for (const auto& v : c.vms)
    if (v.name == vm) return ParseQuiesceMethod(v.quiesce);
  return QuiesceMethod::kAuto;
}

// fsck of a large file system may take a while; only a hang reaches this.
constexpr std::chrono::hours kFsckTimeout{2};

RunLimits Cancellable(const std::atomic<bool>* cancel) {
  RunLimits l;
  l.cancel = cancel;
  return l;
}

// The file system type blkid finds on device ("" if none), probing the
// device itself (-p: no cache). A type of a form no file system has is
// refused: it is passed to fsck -t and mount -t.
std::string ProbeFsType(Env* env, const std::string& device, const std::atomic<bool>* cancel) {
  std::vector<std::string> argv = {"blkid", "-p", "-o", "value", "-s", "TYPE", "--", device};
  RunResult r = env->RunLimited(argv, Cancellable(cancel));
  std::string type = r.out;
  while (!type.empty() && (type.back() == '\n' || type.back() == ' ')) type.pop_back();
  if (r.exit_code != 0) return "";
  for (char c : type)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
      throw Error(ErrorKind::kIo, "blkid names a file system type '" + type + "' on " + device +
                                      " that vmback does not mount");
  return type;
}

// A read-only mount of a snapshot, undone on every path. The guest's file
// system is hostile: mounted nosuid,nodev,noexec, with the type blkid found
// (the kernel does not try every type on guest-made bytes), and XFS with
// nouuid (a snapshot has the UUID of its mounted origin).
class Mount {
 public:
  // Nothing is done yet: Make mounts. Held before Make, so that a mount
  // command killed half-way (a signal) is undone by Unmount all the same.
  Mount(Env* env, Journal* journal, const std::string& dir, Logger* log)
      : env_(env), journal_(journal), dir_(dir), log_(log) {}
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount() {
    try {
      Unmount();
    } catch (const std::exception& e) {
      log_->Error(e.what());
    }
  }
  // fsck, then mount device read-only on dir. Commands end on cancel.
  void Make(const std::string& device, const std::atomic<bool>* cancel) {
    // fsck takes no "--" (to it, that means "options for the checker").
    if (device.empty() || device[0] != '/')
      throw Error(ErrorKind::kOther, "refusing to check and mount '" + device + "': not an absolute path");
    std::string type = ProbeFsType(env_, device, cancel);
    if (type.empty())
      throw Error(ErrorKind::kIo, "blkid finds no file system on the snapshot " + device +
                                      " (mode = \"filesystem\")");
    RunLimits fsck_limits = Cancellable(cancel);
    fsck_limits.deadline = std::chrono::steady_clock::now() + kFsckTimeout;
    std::vector<std::string> fsck = {"fsck", "-p", "-t", type, device};
    RunResult r = env_->RunLimited(fsck, fsck_limits);
    if (r.exit_code != 0 && r.exit_code != 1) throw Error(ErrorKind::kIo, DescribeFailure(fsck, r));
    env_->MakeDir(dir_);
    journal_->Record({{"op", "mount"}, {"dir", dir_}});
    std::string options = "ro,nosuid,nodev,noexec";
    if (type == "xfs") options += ",nouuid";
    std::vector<std::string> mount = {"mount", "-t", type, "-o", options, "--", device, dir_};
    mounted_ = true;  // until known otherwise: killed, it may have mounted
    r = env_->RunLimited(mount, Cancellable(cancel));
    if (r.exit_code != 0) {
      mounted_ = false;
      journal_->Record({{"op", "unmounted"}, {"dir", dir_}});
      throw Error(ErrorKind::kIo, DescribeFailure(mount, r));
    }
  }
  // Not cancellable: it is the clean-up. "Not mounted" counts as done.
  void Unmount() {
    if (!mounted_) return;
    std::vector<std::string> argv = {"umount", "--", dir_};
    RunResult r;
    for (int i = 0; i < 5; i++) {
      r = env_->Run(argv);
      if (r.exit_code == 0 || r.err.find("not mounted") != std::string::npos) break;
      env_->clock()->SleepFor(std::chrono::milliseconds(200));
    }
    if (r.exit_code != 0 && r.err.find("not mounted") == std::string::npos)
      throw Error(ErrorKind::kIo, DescribeFailure(argv, r));
    mounted_ = false;
    journal_->Record({{"op", "unmounted"}, {"dir", dir_}});
  }
  const std::string& dir() const { return dir_; }

 private:
  Env* env_;
  Journal* journal_;
  std::string dir_;
  Logger* log_;
  bool mounted_ = false;
};

struct VolumeState {
  std::unique_ptr<Snapshot> snapshot;
  std::string record;
  // The journal record of a snapshot whose taking failed (its command may
  // have been killed after making it): dropped, if there, by the clean-up.
  std::string planned;
  std::unique_ptr<Mount> mount;
  bool left = false;  // its drop failed: the journal keeps its record
};

bool IsBlockOrFile(const std::string& path) {
  const FileStatus st = StatusOrMissing(path);
  return st.type == S_IFBLK || st.kind == FileKind::kFile;
}

// REQUIRES for kRun: hv is not null when the config names VMs (ConnectForJob).
void CheckPlan(const Config& config, JobKind kind, Env* env, Hypervisor* hv, std::vector<DomainInfo>* domains,
               const std::atomic<bool>* cancel) {
  std::set<std::string> wanted;
  for (const auto& v : config.volumes) {
    if (!env->Exists(v.source))
      ThrowNotFound("volume '" + v.name + "': source " + v.source + " does not exist");
    for (const auto& vm : v.vms) wanted.insert(vm);
    if (v.snapshot == "lvm") {
      // The copy-on-write area must fit in the volume group's free space,
      // or lvcreate would fail with the VMs already quiet.
      std::string vg = BaseName(DirName(v.source));
      std::vector<std::string> argv = {"lvm", "vgs", "--noheadings", "--units", "b", "--nosuffix",
                                       "-o", "vg_free", "--", vg};
      RunResult r = env->RunLimited(argv, Cancellable(cancel));
      if (r.exit_code != 0)
        throw Error(ErrorKind::kIo, "volume '" + v.name + "': " + DescribeFailure(argv, r));
      uint64_t need = 0, free_bytes = 0;
      ParseSize(v.snapshot_size, &need);
      std::string text = r.out;
      text.erase(0, text.find_first_not_of(" \t\n"));
      text.erase(text.find_last_not_of(" \t\n") + 1);
      if (!ParseSize(text, &free_bytes))
        throw Error(ErrorKind::kIo, "volume '" + v.name + "': cannot read the free space of volume group " +
                                        vg + " from '" + text + "'");
      if (need > free_bytes)
        throw Error(ErrorKind::kNoSpace, "volume '" + v.name + "': snapshot_size " + v.snapshot_size +
                                             " is larger than the free space of volume group " + vg + " (" +
                                             FormatBytes(free_bytes) + ")");
    }
  }
  for (const auto& v : config.volumes) {
    if (v.snapshot != "lvm" || v.mode != "filesystem") continue;
    // Its snapshot will be fsck'ed and mounted: it must hold a file system
    // that this host knows, or the run would fail with the VMs quiet.
    if (ProbeFsType(env, v.source, cancel).empty())
      ThrowConfig("volume '" + v.name + "': " + v.source +
                  " holds no file system that can be mounted (mode = \"filesystem\"); use mode = \"block\"");
  }
  if (kind == JobKind::kBackup) return;  // the VMs are left alone
  for (const auto& vm : config.vms) wanted.insert(vm.name);
  if (!wanted.empty() && !hv) ThrowConfig("VMs are configured but no libvirt connection is available");
  if (!hv) return;  // only volumes left to "auto", and libvirt not reachable (ConnectForJob warned)
  for (const auto& vm : wanted) hv->Domain(vm);  // throws kNotFound naming it
  *domains = hv->Domains();
  CheckEveryVmHasAVolume(config, *domains);
}

// The hypervisor to resume the VMs a crashed run's journal names with: hv,
// else one from connect, asked only when the journal names a VM.
Hypervisor* HypervisorToRecover(Env* env, const std::string& journal_path, Hypervisor* hv,
                                const std::function<Hypervisor*()>& connect) {
  if (hv || !connect || ReadJournal(env, journal_path).vms.empty()) return hv;
  return connect();
}

// state_dir holds the run lock, the journal and the mount points of guest
// file systems: a directory of ours, 0700, whoever made it. One that is
// wider (made by hand, or by an older vmback) is tightened, with a notice.
void MakeStateDir(Env* env, const std::string& dir, Logger* log) {
  env->MakeDir(dir);  // 0700 when new; refuses a symlink
  const FileStatus st = env->Status(dir);
  if (st.kind != FileKind::kDir) ThrowConfig("state_dir " + dir + " is not a directory");
  if (st.uid != ::geteuid()) {
    ThrowConfig("state_dir " + dir + " belongs to uid " + std::to_string(st.uid) +
                ", not to the user vmback runs as: refused (its owner could plant files in it)");
  }
  if ((st.mode & 077) != 0) {
    env->SetMode(dir, 0700);  // on a descriptor, refusing a symlink
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.mode));
    log->Info("state_dir " + dir + " had mode " + mode + ": tightened to 0700");
  }
}

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
  for (const auto& v : config.volumes) journaled = journaled || v.snapshot != "none";
  std::unique_ptr<FileLock> run_lock;
  const std::string journal_path = JoinPath(config.run.state_dir, "journal");
  if (journaled) {
    MakeStateDir(env, config.run.state_dir, log);
    run_lock = env->Lock(JoinPath(config.run.state_dir, "run.lock"), LockMode::kExclusive);
    if (env->Exists(journal_path)) {
      report.recovered =
          RecoverFromJournal(env, journal_path, HypervisorToRecover(env, journal_path, hv, options.connect), log);
    }
  }

  std::vector<DomainInfo> domains;
  CheckPlan(config, options.kind, env, hv, &domains, options.cancel);
  report.sources = DescribeSources(config, domains, log);
  // The destination is opened before any VM is touched: a locked or
  // missing store, or an unusable in-place target, fails the run while
  // everything still runs. A store is opened kAppend: list, restore and
  // verify's check go on beside the backup; the prune at the end upgrades.
  std::unique_ptr<Destination> dest =
      OpenDestination(env, config.target, DestinationAccess::kBackup, config.target.lock_wait_seconds, log);
  CheckTags(*dest, options.tags);

  std::string run_id = options.run_id.empty() ? std::to_string(env->NowNanos() / 1000000) : options.run_id;
  std::unique_ptr<Journal> journal;
  if (journaled) journal = std::make_unique<Journal>(env, journal_path, run_id);
  auto record = [&](const nlohmann::json& r) {
    if (journal) journal->Record(r);
  };
  std::vector<VolumeState> states(config.volumes.size());
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
          SnapshotSpec spec{v.name, v.source, ParseSnapshotKind(v.snapshot), v.snapshot_size, run_id};
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
        log->Info("VM " + vr.name + " quiet (" + vr.method + ") for " + std::to_string(vr.freeze_seconds) + " s");
    }

    // Read each volume from its snapshot; drop the snapshot as soon as it is read.
    auto drop = [&](size_t i) {
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
      if (v.mode == "filesystem" && IsBlockOrFile(path) && v.snapshot == "lvm") {
        step("mount:" + v.name);
        // (journaled: an lvm volume)
        states[i].mount =
            std::make_unique<Mount>(env, journal.get(), JoinPath(config.run.state_dir, "mnt-" + v.name), log);
        states[i].mount->Make(path, options.cancel);
        path = states[i].mount->dir();
      }
      // A reflink copy has new inodes and ctimes every run: size and mtime
      // only. Snapshots kept inside a source (this run's is not in its own
      // snapshot, but a leftover or another volume's may be) are left out.
      specs.push_back({v.name, path, v.one_file_system,
                       v.snapshot == "reflink" ? ChangeCheck::kSizeMtime : ChangeCheck::kFull, kSnapshotPrefix});
    }
    BackupOptions bopts;
    bopts.cancel = options.cancel;
    bopts.full_read = options.full_read;
    bopts.threads = options.threads;
    bopts.read_limit = options.read_limit ? options.read_limit : config.run.read_limit;
    bopts.full_read_every_ns = config.run.full_read_every_ns;
    bopts.on_volume_done = drop;
    bopts.tags = options.tags;
    step("sync");
    report.backup = dest->Backup(specs, bopts, log);
  } catch (...) {
    // Whatever failed (a step, a snapshot, a mount, the backup, a cancel):
    // unmount and drop what is still there, each recorded; the journal goes
    // only when nothing is left for the next run to clean up.
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
    bool clean = !vm_left;
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

  if (options.kind == JobKind::kRun && !config.retention.empty()) {
    step("prune");
    PruneRequest prune;
    prune.lock_wait_seconds = options.prune_lock_wait;
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
  return RecoverFromJournal(env, journal_path, HypervisorToRecover(env, journal_path, nullptr, connect), log);
}

std::string PlanJob(const Config& config, Env* env, Hypervisor* hv, Logger* log) {
  std::vector<DomainInfo> domains;
  CheckPlan(config, JobKind::kRun, env, hv, &domains, nullptr);
  const std::vector<SourceReport> sources = DescribeSources(config, domains, log);  // warns as run does
  // A copy of the store must be there (as RunJob's Store::Open requires);
  // not opened, so that a plan takes no lock and changes nothing.
  StoreCopies copies;
  if (config.target.type != "store") {
    auto target = OpenInplaceTarget(env, config.target, log);
    WarnAboutMountOptions(*target, log);
  } else {
    StoreOptions store_options;
    store_options.mirrors = config.target.mirrors;
    copies = Store::Locate(env, config.target.path, store_options);
    for (const auto& c : copies.all)
      if (!env->Exists(JoinPath(c, "config.json")))
        log->Warn("copy " + c + " holds no store (" + (env->Exists(c) ? "no config.json" : "not there") +
                  "): the run goes on without it");
    WarnAboutCopiesOnRootFileSystem(copies.all, log);
  }
  std::string out;
  out += "1. take the run lock " + JoinPath(config.run.state_dir, "run.lock") +
         "; recover from " + JoinPath(config.run.state_dir, "journal") + " if a run crashed\n";
  if (config.target.type == "store") {
    out += "2. open the store " + copies.primary + " (exclusive)";
    if (copies.all.size() > 1) {
      out += ", with its copies";
      for (size_t i = 1; i < copies.all.size(); i++) out += " " + copies.all[i];
    }
    out += "\n";
  } else
    out += "2. open the " + config.target.type + " target " +
           (config.target.type == "zfs" ? config.target.dataset : config.target.path) +
           " (changed blocks are written in place, then a point is taken)\n";
  const std::vector<std::string> vm_order = QuiesceOrder(config, domains);
  out += "3. quiesce (libvirt " + config.libvirt_uri + "):";
  if (vm_order.empty()) out += " no VMs";
  out += "\n";
  for (const auto& vm : vm_order) {
    QuiesceMethod m = MethodFor(config, vm);
    out += "     " + vm + ": " + QuiesceMethodName(m);
    if (m == QuiesceMethod::kAuto) out += " (guest-agent fsfreeze, else Alt+SysRq+S then suspend)";
    std::vector<std::string> for_volumes;
    for (const auto& src : sources)
      if (Lists(src.vms, vm)) for_volumes.push_back(src.volume);
    out += (for_volumes.size() == 1 ? ", for volume " : ", for volumes ") + JoinNames(for_volumes) + "\n";
  }
  out += "4. snapshot each volume:\n";
  const std::string id = "<run id>";
  std::map<std::string, std::string> fs_types;  // volume: the type blkid finds on its source
  // Where each volume's snapshot goes (inside a directory source).
  auto snapshot_path = [&](const VolumeConfig& v) {
    if (v.snapshot != "btrfs" && v.snapshot != "reflink") return std::string();
    return SnapshotPath({v.name, v.source, ParseSnapshotKind(v.snapshot), v.snapshot_size, id});
  };
  for (const auto& v : config.volumes) {
    std::string dir = DirName(v.source);
    std::string name = "vmback-" + v.name + "-" + id;
    if (v.snapshot == "lvm" && v.mode == "filesystem") {
      fs_types[v.name] = ProbeFsType(env, v.source, nullptr);
      out += "     (checked: blkid -p -o value -s TYPE -- " + v.source + " names a file system: " +
             fs_types[v.name] + ")\n";
    }
    if (v.snapshot == "lvm")
      out += "     (checked: lvm vgs --noheadings --units b --nosuffix -o vg_free -- " + BaseName(dir) +
             " has room for " + v.snapshot_size + ")\n     lvm lvcreate -s -n " + name + " -L " +
             v.snapshot_size + " -- " + v.source + "\n";
    else if (v.snapshot == "btrfs")
      out += "     btrfs subvolume snapshot -r -- " + v.source + " " + snapshot_path(v) + "\n";
    else if (v.snapshot == "reflink")
      out += "     reflink copy (FICLONE) of " + v.source + " into " + snapshot_path(v) + "/\n";
    else if (v.snapshot_given)
      out += "     " + v.name + ": no snapshot (snapshot = \"none\"): " + v.source + " is read live, by choice\n";
    else
      out += "     " + v.name + ": no snapshot set: " + v.source + " is read live\n";
  }
  out += "5. resume every VM (max_freeze " + std::to_string(config.run.max_freeze_seconds) + " s)\n";
  out += "6. for each volume, read it into the store, then drop its snapshot:\n";
  for (const auto& v : config.volumes) {
    std::string dir = DirName(v.source);
    std::string name = "vmback-" + v.name + "-" + id;
    if (v.snapshot == "lvm" && v.mode == "filesystem") {
      std::string mnt = JoinPath(config.run.state_dir, "mnt-" + v.name);
      const std::string& type = fs_types[v.name];
      std::string options = "ro,nosuid,nodev,noexec";
      if (type == "xfs") options += ",nouuid";
      out += "     fsck -p -t " + type + " " + dir + "/" + name + "\n     mount -t " + type + " -o " + options +
             " -- " + dir + "/" + name + " " + mnt + "\n     (back up " + mnt + ")\n     umount -- " + mnt + "\n";
    } else {
      out += "     (back up " + v.name + ")\n";
    }
    if (v.snapshot == "lvm") out += "     lvm lvremove -f -- " + dir + "/" + name + "\n";
    if (v.snapshot == "btrfs") out += "     btrfs subvolume delete -- " + snapshot_path(v) + "\n";
    if (v.snapshot == "reflink") out += "     remove " + snapshot_path(v) + "\n";
  }
  out += "7. commit the point\n";
  out += config.retention.empty() ? "8. no [retention]: nothing pruned\n" : "8. prune by [retention]\n";
  return out;
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
    live_by_default = live_by_default || (v.snapshot == "none" && !v.snapshot_given);
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
