#include "job/libvirt_volume.h"

#include <algorithm>

#include "job/volumes.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// Where the reader of volume v finds disk (a path from the domain XML), or
// "" when it is not the source or a file below it.
std::string ReadPathOf(const std::string& disk, const VolumeConfig& v) {
  const std::string root = CanonicalPath(v.source);
  const std::string path = CanonicalPath(disk);
  std::string source = v.source;
  while (source.size() > 1 && source.back() == '/') source.pop_back();
  if (path == root) return source;
  const std::string prefix = root == "/" ? root : root + "/";
  if (path.rfind(prefix, 0) != 0) return "";
  return JoinPath(source, path.substr(prefix.size()));
}

// A VM name as a file name: libvirt allows no '/' in one; "." and ".." and
// names with control characters are not used.
bool UsableAsFileName(const std::string& vm) {
  if (vm.empty() || vm.size() > 200 || vm == "." || vm == "..") return false;
  for (unsigned char c : vm)
    if (c == '/' || c < 0x20 || c == 0x7f) return false;
  return true;
}

bool IsCheckpointName(const std::string& name) {
  if (!IsVmbackCheckpoint(name) || name.size() > 200) return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

// The record of a VM's last checkpoint, as written by Commit; throws
// Error(kCorrupt) saying what is wrong with it.
struct ChainRecord {
  std::string checkpoint;
  std::string point;
  std::map<std::string, std::string> sources;  // disk target -> source
};

ChainRecord ParseChain(const nlohmann::json& j, const std::string& vm) {
  if (!j.is_object()) ThrowCorrupt("not a JSON object");
  for (const char* key : {"vm", "checkpoint", "point"})
    if (!j.contains(key) || !j[key].is_string()) ThrowCorrupt(std::string("no string '") + key + "'");
  if (j["vm"].get<std::string>() != vm) ThrowCorrupt("it is the record of another VM");
  ChainRecord c;
  c.checkpoint = j["checkpoint"].get<std::string>();
  c.point = j["point"].get<std::string>();
  if (!IsCheckpointName(c.checkpoint)) ThrowCorrupt("'" + EscapeForTerminal(c.checkpoint) + "' is not a checkpoint vmback makes");
  if (c.point.empty() || c.point.size() > 200) ThrowCorrupt("an empty or overlong point");
  if (!j.contains("disks") || !j["disks"].is_object() || j["disks"].size() > 256)
    ThrowCorrupt("no object 'disks' (of at most 256)");
  for (const auto& [target, source] : j["disks"].items()) {
    if (!source.is_string()) ThrowCorrupt("disk '" + EscapeForTerminal(target) + "' has no source");
    c.sources[target] = source.get<std::string>();
  }
  return c;
}

// [run] nbd_dir, made if need be: root's, 0711 (QEMU may enter it, nobody
// else list it). One that another user owns, or that others may write, is
// refused: they could plant or swap a socket directory.
std::string PrepareNbdParent(Env* env, const std::string& dir) {
  env->MakeDir(dir);  // refuses a symlink
  const FileStatus st = env->Status(dir);
  if (st.kind != FileKind::kDir) ThrowConfig("nbd_dir " + dir + " is not a directory");
  if (st.uid != env->UserId())
    ThrowConfig("nbd_dir " + dir + " belongs to uid " + std::to_string(st.uid) +
                ", not to the user vmback runs as: refused");
  if ((st.mode & 022) != 0) ThrowConfig("nbd_dir " + dir + " may be written by others: refused");
  if ((st.mode & 07777) != 0711) env->SetMode(dir, 0711);
  return dir;
}

}  // namespace

bool ReadsFromLibvirt(const VolumeConfig& v) { return v.snapshot == SnapshotKind::kLibvirt; }

bool IsNbdSocketDir(const std::string& nbd_dir, const std::string& dir) {
  if (DirName(dir) != nbd_dir) return false;
  const std::string name = BaseName(dir);
  if (name.size() <= 4 || name.compare(0, 4, "nbd-") != 0) return false;
  for (size_t i = 4; i < name.size(); i++)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

LibvirtBackups::LibvirtBackups(const Config& config, Env* env, Hypervisor* hv, DiskExportEnv* exports,
                               std::function<void(const nlohmann::json&)> record, Logger* log)
    : config_(config), env_(env), hv_(hv), exports_(exports), record_(std::move(record)), log_(log) {}

LibvirtBackups::~LibvirtBackups() {
  for (auto& [vm, job] : jobs_) {
    if (!job.running) continue;
    try {
      End(&job);
    } catch (const std::exception& e) {
      log_->Error("VM " + EscapeForTerminal(vm) + ": " + e.what() + " (the next run ends it)");
    }
  }
}

std::string LibvirtBackups::StatePath(const std::string& vm) const {
  return JoinPath(config_.run.state_dir, "checkpoint-" + vm + ".json");
}

std::string LibvirtBackups::ChainOf(const DomainInfo& d, const std::vector<ExportedDisk>& disks,
                                    std::string* since, std::string* why) {
  for (const auto& e : disks) {
    if (e.disk.format != "qcow2") {
      *why = "disk " + e.disk.target + " of VM " + d.name + " is " +
             (e.disk.format.empty() ? std::string("of no known format") : e.disk.format) +
             ", not qcow2: QEMU keeps no persistent dirty bitmap for it, so every run reads it in full";
      return "";
    }
  }
  const std::string path = StatePath(d.name);
  if (!env_->Exists(path)) {
    *why = "no checkpoint yet (the first backup of VM " + d.name + " through libvirt reads in full)";
    return "";
  }
  ChainRecord chain;
  try {
    chain = ParseChain(nlohmann::json::parse(ReadFileToString(env_, path, kMaxSmallFileSize)), d.name);
  } catch (const nlohmann::json::exception& e) {
    *why = path + " is not valid JSON (" + e.what() + "); no checkpoint is trusted";
    return "";
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    *why = path + " is not a checkpoint record vmback wrote (" + e.what() + "); no checkpoint is trusted";
    return "";
  }
  for (const auto& e : disks) {
    auto it = chain.sources.find(e.disk.target);
    if (it == chain.sources.end()) {
      *why = "disk " + e.disk.target + " of VM " + d.name + " was not in checkpoint " + chain.checkpoint;
      return "";
    }
    if (it->second != e.disk.source) {
      *why = "disk " + e.disk.target + " of VM " + d.name + " was replaced (" + EscapeForTerminal(it->second) +
             " then, " + EscapeForTerminal(e.disk.source) + " now)";
      return "";
    }
  }
  const std::vector<std::string> have = hv_->Checkpoints(d.name);
  if (std::find(have.begin(), have.end(), chain.checkpoint) == have.end()) {
    *why = "checkpoint " + chain.checkpoint + " of VM " + d.name +
           " is gone (deleted, or the VM was redefined)";
    return "";
  }
  *since = chain.point;
  return chain.checkpoint;
}

void LibvirtBackups::Begin(const VolumeConfig& v, const std::vector<DomainInfo>& domains,
                           const std::string& run_id,
                           std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (const auto& d : domains) {
    if (!d.running) continue;
    bool on_v = false;
    for (const auto& disk : d.disks) on_v = on_v || !ReadPathOf(disk.source, v).empty();
    if (!on_v) continue;
    auto found = jobs_.find(d.name);
    if (found != jobs_.end()) {
      found->second.volumes.insert(v.name);
      continue;
    }
    if (!UsableAsFileName(d.name))
      ThrowConfig("VM '" + EscapeForTerminal(d.name) + "': its name cannot name a file; not backed up through libvirt");
    Job& job = jobs_[d.name];
    job.vm = d.name;
    job.disks = DisksOf(d, &job.volumes);
    Start(&job, d, run_id, deadline);
  }
}

std::vector<LibvirtBackups::ExportedDisk> LibvirtBackups::DisksOf(const DomainInfo& d,
                                                                  std::set<std::string>* volumes) const {
  // All its disks on any libvirt volume, in one job; the volumes that hold
  // them keep it running until each has been read.
  std::vector<ExportedDisk> disks;
  for (const auto& w : config_.volumes) {
    if (!ReadsFromLibvirt(w)) continue;
    for (const auto& disk : d.disks) {
      const std::string path = ReadPathOf(disk.source, w);
      if (path.empty()) continue;
      if (disk.target.empty())
        ThrowConfig("VM " + d.name + ": disk " + EscapeForTerminal(disk.source) +
                    " has no target name vmback can use (like vda) in its domain XML");
      volumes->insert(w.name);
      disks.push_back({disk, path, nullptr});
    }
  }
  return disks;
}

std::vector<std::string> LibvirtBackups::Preview(const VolumeConfig& v, const std::vector<DomainInfo>& domains) {
  std::vector<std::string> lines;
  for (const auto& d : domains) {
    if (!d.running) continue;
    std::set<std::string> volumes;
    std::vector<ExportedDisk> disks = DisksOf(d, &volumes);
    if (!volumes.count(v.name)) continue;
    std::string line = "VM " + EscapeForTerminal(d.name) + ": libvirt pull-mode backup of";
    for (const auto& e : disks) line += " " + e.disk.target + " (" + EscapeForTerminal(e.path) + ")";
    std::string since, why;
    const std::string from = ChainOf(d, disks, &since, &why);
    line += from.empty() ? ", full: " + why : ", incremental from checkpoint " + from + " (point " + since + ")";
    lines.push_back(line);
  }
  if (lines.empty()) lines.push_back("no running VM has a disk on it: read as files");
  return lines;
}

void LibvirtBackups::Start(Job* job, const DomainInfo& d, const std::string& run_id,
                           std::optional<std::chrono::steady_clock::time_point> deadline) {
  job->incremental = ChainOf(d, job->disks, &job->since, &job->why_full);
  bool all_qcow2 = true;
  for (const auto& e : job->disks) all_qcow2 = all_qcow2 && e.disk.format == "qcow2";
  PullBackupSpec spec;
  job->dir = MakeNbdSocketDir(PrepareNbdParent(env_, config_.run.nbd_dir));
  spec.socket = JoinPath(job->dir, "nbd.sock");
  for (const auto& e : job->disks) spec.disks.push_back({e.disk.target, JoinPath(job->dir, e.disk.target + ".scratch")});
  for (const auto& disk : d.disks) {
    bool exported = false;
    for (const auto& e : job->disks) exported = exported || e.disk.target == disk.target;
    if (!exported && !disk.target.empty()) spec.skip.push_back(disk.target);
  }
  if (all_qcow2) job->checkpoint = CheckpointName(run_id);
  spec.checkpoint = job->checkpoint;
  spec.incremental = job->incremental;
  spec.timeout = std::chrono::milliseconds(config_.run.call_timeout_seconds * 1000);
  if (deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw Error(ErrorKind::kOther, "VM " + job->vm + ": max_freeze (" + std::to_string(config_.run.max_freeze_seconds) +
                                         " s) reached before its backup could begin");
    if (spec.timeout.count() <= 0 || left < spec.timeout) spec.timeout = left;
  }
  if (record_) record_({{"op", "backup-job"}, {"vm", job->vm}, {"dir", job->dir}});
  try {
    try {
      hv_->BeginBackup(job->vm, spec);
    } catch (const Error& e) {
      if (spec.incremental.empty()) throw;
      // The bitmap may be gone from an image the checkpoint still names.
      job->why_full = std::string("libvirt refused an incremental backup from ") + spec.incremental + ": " + e.what();
      job->incremental.clear();
      job->since.clear();
      spec.incremental.clear();
      log_->Warn("VM " + job->vm + ": " + job->why_full + "; a full backup instead");
      hv_->BeginBackup(job->vm, spec);
    }
    job->running = true;
    NbdOptions options;
    const auto timeout = std::chrono::milliseconds(config_.run.call_timeout_seconds * 1000);
    if (timeout.count() > 0) options.connect_timeout = timeout;
    for (auto& e : job->disks) {
      NbdOptions o = options;
      if (!job->incremental.empty()) o.contexts.push_back(BackupDirtyBitmapContext(e.disk.target));
      e.nbd = std::make_shared<NbdDisk>(spec.socket, e.disk.target, o);
      exports_->Add(e.path, e.nbd);
    }
  } catch (...) {
    if (job->running) {
      try {
        End(job);
      } catch (const std::exception& e) {
        log_->Error("VM " + job->vm + ": " + e.what());
      }
    } else {
      try {
        env_->RemoveTree(job->dir);
        if (record_) record_({{"op", "backup-ended"}, {"vm", job->vm}});
      } catch (const std::exception& e) {
        log_->Error("cannot remove " + job->dir + ": " + e.what());
      }
    }
    throw;
  }
  log_->Info("VM " + job->vm + ": pull-mode backup begun" +
             (job->incremental.empty() ? " (full: " + job->why_full + ")"
                                       : " (incremental from checkpoint " + job->incremental + ")"));
}

void LibvirtBackups::Describe(const VolumeConfig& v, VolumeSpec* spec) {
  // The paths this volume reads from an export, and what each may have changed.
  // path -> disk, context; not kept alive here: End closes the connection
  // before it ends the job.
  std::map<std::string, std::pair<std::weak_ptr<NbdDisk>, std::string>> dirty;
  std::map<std::string, std::string> full;                                     // path -> why
  std::string since;
  for (const auto& [vm, job] : jobs_) {
    if (!job.volumes.count(v.name)) continue;
    for (const auto& e : job.disks) {
      if (ReadPathOf(e.disk.source, v).empty()) continue;
      if (job.incremental.empty()) {
        full[e.path] = job.why_full;
      } else if (since.empty() || since == job.since) {
        since = job.since;
        dirty[e.path] = {e.nbd, BackupDirtyBitmapContext(e.disk.target)};
      } else {
        full[e.path] = "the checkpoint of VM " + vm + " belongs to point " + job.since + ", not to " + since;
      }
    }
  }
  spec->changes_since = since;
  spec->changes = [dirty, full](const std::string&, const std::string& path) {
    auto d = dirty.find(path);
    if (d != dirty.end()) {
      if (std::shared_ptr<NbdDisk> disk = d->second.first.lock()) return disk->DirtyExtents(d->second.second);
      return ChangeSet{ChangeMethod::kFullRead, "its backup job has ended", {}};
    }
    auto f = full.find(path);
    return ChangeSet{ChangeMethod::kFullRead,
                     f != full.end() ? f->second : "not the disk of a running VM: read as a file", {}};
  };
}

void LibvirtBackups::End(Job* job) {
  for (auto& e : job->disks) {
    exports_->DropExport(e.path);
    e.nbd.reset();  // closes the connection before the export goes
  }
  hv_->EndBackup(job->vm);
  job->running = false;
  env_->RemoveTree(job->dir);
  if (record_) record_({{"op", "backup-ended"}, {"vm", job->vm}});
}

void LibvirtBackups::Done(const VolumeConfig& v) {
  for (auto& [vm, job] : jobs_) {
    if (!job.volumes.erase(v.name) || !job.volumes.empty() || !job.running) continue;
    End(&job);
  }
}

void LibvirtBackups::EndAll() {
  for (auto& [vm, job] : jobs_)
    if (job.running) End(&job);
}

bool LibvirtBackups::Running() const {
  for (const auto& [vm, job] : jobs_)
    if (job.running) return true;
  return false;
}

void LibvirtBackups::Commit(const std::string& point) {
  for (const auto& [vm, job] : jobs_) {
    if (job.checkpoint.empty()) continue;
    nlohmann::json disks = nlohmann::json::object();
    for (const auto& e : job.disks) disks[e.disk.target] = e.disk.source;
    const nlohmann::json j = {{"vm", vm}, {"checkpoint", job.checkpoint}, {"point", point}, {"disks", disks}};
    try {
      WriteFileAtomic(env_, StatePath(vm), j.dump(2) + "\n");
    } catch (const Error& e) {
      log_->Warn("VM " + vm + ": cannot record checkpoint " + job.checkpoint + " (" + e.what() +
                 "); the next run reads its disks in full");
      continue;
    }
    try {
      for (const auto& name : hv_->Checkpoints(vm)) {
        if (!IsVmbackCheckpoint(name) || name == job.checkpoint) continue;
        hv_->DeleteCheckpoint(vm, name);
        log_->Info("VM " + vm + ": deleted its older checkpoint " + name);
      }
    } catch (const Error& e) {
      log_->Warn("VM " + vm + ": cannot delete an older checkpoint of vmback: " + e.what() +
                 " (the next run tries again)");
    }
  }
}

std::vector<std::string> LibvirtBackups::Summary() const {
  std::vector<std::string> out;
  for (const auto& [vm, job] : jobs_)
    out.push_back("VM " + vm + ": " +
                  (job.incremental.empty() ? "full backup through libvirt (" + job.why_full + ")"
                                           : "incremental backup through libvirt from checkpoint " + job.incremental));
  return out;
}

}  // namespace vmback
