#include "job/volumes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "job/journal.h"
#include "job/libvirt_volume.h"
#include "job/mount.h"
#include "job/problems.h"
#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// stat(2) of path (following links); kMissing also when it cannot be told.
FileStatus StatusOrMissing(const std::string& path) {
  try {
    return Env::Default()->StatusFollowingLinks(path);
  } catch (const Error&) {
    return {};
  }
}

bool HasDiskOn(const DomainInfo& d, const VolumeConfig& v) {
  for (const auto& disk : d.disk_sources)
    if (DiskOnVolume(disk, v)) return true;
  return false;
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

// A [[vm]] that would never be quiesced is refused: no volume lists it, and
// no volume left to "auto" holds one of its disks. Whether it runs does not
// matter (a VM shut off tonight still has its volume).
void CheckVmHasAVolume(const Config& config, const VmConfig& vm, const std::vector<DomainInfo>& domains) {
  {
    const DomainInfo* info = nullptr;
    for (const auto& d : domains)
      if (d.name == vm.name) info = &d;
    bool found = false;
    for (const auto& v : config.volumes)
      found = found || (v.vms_auto ? info != nullptr && HasDiskOn(*info, v) : Lists(v.vms, vm.name));
    if (found) return;
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

bool IsBlockOrFile(Env* env, const std::string& path) {
  FileStatus st;
  try {
    st = env->StatusFollowingLinks(path);
  } catch (const Error&) {
    return false;
  }
  return st.type == S_IFBLK || st.kind == FileKind::kFile;
}

}  // namespace

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

std::vector<VmRecord> VmRecordsOf(const Config& config, const std::vector<DomainInfo>& domains,
                                  const std::vector<std::string>& volumes, Logger* log) {
  std::vector<VmRecord> out;
  for (const auto& d : domains) {
    VmRecord vm;
    vm.name = d.name;
    vm.domain_xml = d.config_xml;
    bool any = false;
    for (const auto& disk : d.disks) {
      if (disk.target.empty()) continue;  // cannot be named, nor pointed at a restored image
      VmDisk r{disk.target, disk.source, disk.format, "", "", false};
      for (const auto& v : config.volumes) {
        if (!Lists(volumes, v.name) || !DiskOnVolume(disk.source, v)) continue;
        const std::string root = CanonicalPath(v.source), path = CanonicalPath(disk.source);
        const std::string prefix = root == "/" ? root : root + "/";
        if (path != root && path.rfind(prefix, 0) != 0) break;  // on an LV's file system, mounted elsewhere
        r.volume = v.name;
        r.path = path == root ? "" : path.substr(prefix.size());
        r.located = true;
        // A running VM's disk read through libvirt is stored as the guest saw it.
        if (ReadsFromLibvirt(v) && d.running) r.format = "raw";
        break;
      }
      any = any || r.located;
      vm.disks.push_back(std::move(r));
    }
    if (!any) continue;
    if (!IsValidVmName(vm.name) || vm.domain_xml.size() > kMaxVmXmlBytes || vm.disks.size() > kMaxVmDisks) {
      log->Warn("VM " + EscapeForTerminal(vm.name) +
                ": its definition is not recorded in the point (a name, XML or disk list vmback cannot keep); "
                "its disks are backed up");
      continue;
    }
    out.push_back(std::move(vm));
  }
  return out;
}

bool Lists(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

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

std::vector<SourceReport> DescribeSources(const Config& config, const std::vector<DomainInfo>& domains,
                                          Logger* log) {
  std::vector<SourceReport> out;
  for (const auto& v : config.volumes) {
    SourceReport s{v.name, SnapshotKindName(v.snapshot), v.snapshot == SnapshotKind::kNone, v.snapshot_given,
                   VmsOfVolume(v, domains)};
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
    if (v.name == vm) return v.quiesce;
  return QuiesceMethod::kAuto;
}

SnapshotSpec SnapshotSpecOf(const VolumeConfig& v, const std::string& run_id) {
  return {v.name, v.source, v.snapshot, v.snapshot_size, run_id};
}

std::string MountDirOf(const Config& config, const VolumeConfig& v) {
  return JoinPath(config.run.state_dir, "mnt-" + v.name);
}

bool MountsSnapshot(Env* env, const VolumeConfig& v, const std::string& path) {
  return v.mode == VolumeMode::kFilesystem && v.snapshot == SnapshotKind::kLvm && IsBlockOrFile(env, path);
}

VolumeSpec ReadSpecOf(const VolumeConfig& v, const std::string& path) {
  // A reflink copy has new inodes and ctimes every run: size and mtime
  // only. Snapshots kept inside a source (this run's is not in its own
  // snapshot, but a leftover or another volume's may be) are left out.
  return {v.name, path, v.one_file_system,
          v.snapshot == SnapshotKind::kReflink ? ChangeCheck::kSizeMtime : ChangeCheck::kFull, kSnapshotPrefix};
}

namespace {

// The LVM snapshot of v fits in its volume group's free space (lvm vgs), or
// lvcreate would fail with the VMs already quiet.
void CheckFreeSpace(const VolumeConfig& v, Env* env, const std::atomic<bool>* cancel) {
  std::string vg = BaseName(DirName(v.source));
  std::vector<std::string> argv = {"lvm", "vgs", "--noheadings", "--units", "b", "--nosuffix",
                                   "-o", "vg_free", "--", vg};
  RunResult r = env->RunLimited(argv, Cancellable(cancel));
  if (r.exit_code != 0) throw Error(ErrorKind::kIo, "volume '" + v.name + "': " + DescribeFailure(argv, r));
  uint64_t need = 0, free_bytes = 0;
  ParseSize(v.snapshot_size, &need);
  std::string text = r.out;
  text.erase(0, text.find_first_not_of(" \t\n"));
  text.erase(text.find_last_not_of(" \t\n") + 1);
  if (!ParseSize(text, &free_bytes))
    throw Error(ErrorKind::kIo, "volume '" + v.name + "': cannot read the free space of volume group " + vg +
                                    " from '" + text + "'");
  if (need > free_bytes)
    throw Error(ErrorKind::kNoSpace, "volume '" + v.name + "': snapshot_size " + v.snapshot_size +
                                         " is larger than the free space of volume group " + vg + " (" +
                                         FormatBytes(free_bytes) + "); make snapshot_size smaller, or free "
                                         "space in " + vg);
}

// The checks of one volume, each problem noted.
void CheckVolume(const Config& config, const VolumeConfig& v, JobKind kind, Env* env, Hypervisor* hv,
                 const std::atomic<bool>* cancel, Problems* problems) {
  const std::string what = "volume '" + v.name + "': ";
  if (!env->Exists(v.source)) {
    problems->Add(ErrorKind::kNotFound, what + "source " + v.source + " does not exist; correct 'source' (" +
                                            config.file + ":" + std::to_string(v.line) +
                                            ") or remove the volume");
    return;
  }
  const std::vector<std::string> snapshot_problems = SnapshotProblems(env, SnapshotSpecOf(v, "plan"));
  for (const auto& p : snapshot_problems) problems->Add(ErrorKind::kConfig, p);
  if (v.snapshot == SnapshotKind::kLvm && OnPath("lvm")) problems->Check([&] { CheckFreeSpace(v, env, cancel); });
  if (v.snapshot == SnapshotKind::kLvm && v.mode == VolumeMode::kFilesystem) {
    // Its snapshot will be probed, fsck'ed and mounted.
    bool tools = true;
    for (const char* program : {"blkid", "fsck", "mount", "umount"}) {
      if (OnPath(program)) continue;
      problems->Add(ErrorKind::kConfig, what + NotInstalledMessage(program) + " (mode = \"filesystem\")");
      tools = false;
    }
    // It must hold a file system that this host knows, or the run would
    // fail with the VMs quiet.
    if (tools) {
      problems->Check([&] {
        if (ProbeFsType(env, v.source, cancel).empty())
          ThrowConfig(what + v.source +
                      " holds no file system that can be mounted (mode = \"filesystem\"); use mode = \"block\"");
      });
    }
  }
  if (v.snapshot == SnapshotKind::kLibvirt) {
    if (kind == JobKind::kBackup)
      problems->Add(ErrorKind::kConfig,
                    "volume '" + v.name + "' has snapshot = \"libvirt\": its VMs' disks are read through "
                    "libvirt, which only 'vmback run' asks; use vmback run -c " + config.file);
    else if (!hv)
      problems->Add(ErrorKind::kConfig, "volume '" + v.name +
                                            "' has snapshot = \"libvirt\", but no libvirt connection is available");
  }
}

}  // namespace

void CheckPlan(const Config& config, JobKind kind, Env* env, Hypervisor* hv, std::vector<DomainInfo>* domains,
               const std::atomic<bool>* cancel, Problems* problems) {
  std::set<std::string> wanted;
  for (const auto& v : config.volumes) {
    for (const auto& vm : v.vms) wanted.insert(vm);
    CheckVolume(config, v, kind, env, hv, cancel, problems);
  }
  if (kind == JobKind::kBackup) return;  // the VMs are left alone
  for (const auto& vm : config.vms) wanted.insert(vm.name);
  if (!wanted.empty() && !hv) {
    problems->Add(ErrorKind::kConfig, "VMs are configured (" + JoinNames({wanted.begin(), wanted.end()}) +
                                          ") but no libvirt connection is available");
    return;
  }
  if (!hv) return;  // only volumes left to "auto", and libvirt not reachable (ConnectForJob warned)
  std::set<std::string> unknown;
  for (const auto& vm : wanted) {
    try {
      hv->Domain(vm);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCrash) throw;
      if (e.kind() != ErrorKind::kNotFound) {
        problems->Add(e.kind(), e.what());
        continue;
      }
      unknown.insert(vm);
      problems->Add(ErrorKind::kNotFound, std::string(e.what()) + " (libvirt " + config.libvirt_uri +
                                              "); correct the name in the config, or define the VM (virsh define)");
    }
  }
  problems->Check([&] { *domains = hv->Domains(); });
  for (const auto& vm : config.vms) {
    if (unknown.count(vm.name)) continue;  // said already
    problems->Check([&] { CheckVmHasAVolume(config, vm, *domains); });
  }
}

Hypervisor* HypervisorToRecover(Env* env, const std::string& journal_path, Hypervisor* hv,
                                const std::function<Hypervisor*()>& connect) {
  if (hv || !connect) return hv;
  const Leftovers left = ReadJournal(env, journal_path);
  if (left.vms.empty() && left.backup_jobs.empty()) return hv;
  return connect();
}

void MakeStateDir(Env* env, const std::string& dir, Logger* log) {
  env->MakeDir(dir);  // 0700 when new; refuses a symlink
  const FileStatus st = env->Status(dir);
  if (st.kind != FileKind::kDir) ThrowConfig("state_dir " + dir + " is not a directory");
  if (st.uid != env->UserId()) {
    ThrowConfig("state_dir " + dir + " belongs to uid " + std::to_string(st.uid) +
                ", not to the user vmback runs as: refused (its owner could plant files in it)");
  }
  if ((st.mode & 077) != 0) {
    env->SetMode(dir, 0700);  // on a descriptor, refusing a symlink
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.mode & 07777));
    log->Info("state_dir " + dir + " had mode " + mode + ": tightened to 0700");
  }
}

}  // namespace vmback
