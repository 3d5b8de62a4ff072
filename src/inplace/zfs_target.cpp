// ZFS targets: a mounted dataset; points are its snapshots, read through a
// temporary clone (target.h).
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <sstream>

#include "inplace/backends.h"
#include "inplace/zfs_replicate.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace inplace_internal {

namespace {

// The empty mount point of a clone, best effort (a leftover in the
// temporary directory harms nothing).
void RemoveDirQuietly(Env* env, const std::string& dir) {
  try {
    env->RemoveDir(dir);
  } catch (const Error&) {
  }
}

class ZfsPointView : public PointView {
 public:
  ZfsPointView(Env* env, std::string clone, std::string dir, Logger* log)
      : env_(env), clone_(std::move(clone)), dir_(std::move(dir)), log_(log) {}
  ~ZfsPointView() override {
    // A clone just read from can be "busy" for a moment after its files close.
    RunResult r;
    for (int attempt = 0; attempt < 20; attempt++) {
      try {
        r = env_->Run({"zfs", "destroy", clone_});
      } catch (const std::exception& e) {
        r.err = e.what();
      }
      if (r.exit_code == 0) break;
      env_->clock()->SleepFor(std::chrono::milliseconds(250));
    }
    if (r.exit_code != 0) {
      log_->Error("cannot destroy the temporary clone " + clone_ + " (" + Trim(r.err) +
                  "); destroy it with 'zfs destroy " + clone_ + "'");
      return;
    }
    RemoveDirQuietly(env_, dir_);
  }
  const std::string& root() const override { return dir_; }

 private:
  Env* env_;
  std::string clone_, dir_;
  Logger* log_;
};

class ZfsTarget : public InplaceTarget {
 public:
  ZfsTarget(Env* env, const TargetConfig& config, Logger* log)
      : env_(env), dataset_(config.dataset), prefix_(config.snapshot_prefix), log_(log) {
    pool_ = dataset_.substr(0, dataset_.find('/'));
    std::vector<std::string> argv = {"zfs", "get", "-H", "-o", "property,value",
                                     "type,mounted,mountpoint,recordsize", dataset_};
    RunResult r = RunTool(env, argv, "ZFS dataset " + dataset_);
    if (r.exit_code != 0) {
      std::string said = Trim(r.err.empty() ? r.out : r.err);
      for (char& c : said)
        if (c == '\n') c = ' ';
      // Only a dataset ZFS says is not there is one to create; a ZFS that
      // cannot be reached at all (its daemon or module) is another matter.
      const bool missing = said.find("does not exist") != std::string::npos;
      const bool no_zfs = said.find("daemon") != std::string::npos ||
                          said.find("failed to initialize ZFS library") != std::string::npos ||
                          said.find("/dev/zfs") != std::string::npos;
      const std::string hint = missing ? " (create it with 'zfs create " + dataset_ + "' or 'vmback target init zfs')"
                               : no_zfs ? " (ZFS does not answer: start it, 'systemctl start zfs-fuse' for zfs-fuse "
                                          "or 'modprobe zfs' for OpenZFS)"
                                        : "";
      ThrowNotFound("ZFS dataset " + dataset_ + " cannot be used: " + said + hint);
    }
    std::string type, mounted, recordsize;
    for (const auto& line : Lines(r.out)) {
      auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      std::string key = line.substr(0, tab), value = line.substr(tab + 1);
      if (key == "type") type = value;
      if (key == "mounted") mounted = value;
      if (key == "mountpoint") mountpoint_ = value;
      if (key == "recordsize") recordsize = value;
    }
    if (type != "filesystem") ThrowConfig(dataset_ + " is a ZFS " + type + ", not a file system dataset");
    if (mounted != "yes" || mountpoint_.empty() || mountpoint_[0] != '/')
      ThrowConfig("ZFS dataset " + dataset_ + " is not mounted (mountpoint " + mountpoint_ +
                  "); mount it with 'zfs mount " + dataset_ + "'");
    uint64_t rs = 0;
    if (config.block_size) {
      block_size_ = config.block_size;
    } else if (ParseSize(recordsize, &rs) && IsValidBlockSize(rs, kMinInplaceBlockSize)) {
      block_size_ = static_cast<uint32_t>(rs);
    } else {
      block_size_ = kDefaultInplaceBlockSize;
      log->Warn("ZFS dataset " + dataset_ + ": cannot read its recordsize '" + recordsize + "'; using " +
                   FormatBytes(block_size_));
    }
  }

  std::string kind() const override { return "zfs"; }
  std::string describe() const override { return "ZFS dataset " + dataset_ + " (at " + mountpoint_ + ")"; }
  const std::string& mirror_dir() const override { return mountpoint_; }
  uint32_t block_size() const override { return block_size_; }

  std::string CreatePoint() override {
    std::string name = FreshPointName(prefix_, env_->NowNanos(), ListPoints());
    RunChecked(env_, {"zfs", "snapshot", dataset_ + "@" + name}, "snapshot of " + dataset_);
    return name;
  }

  std::vector<std::string> ListPoints() override {
    RunResult r = RunChecked(env_, {"zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset_},
                             "listing the snapshots of " + dataset_);
    return OwnPoints(ZfsSnapshotsOf(r.out, dataset_), prefix_);
  }

  void DeletePoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, dataset_);
    RunChecked(env_, {"zfs", "destroy", dataset_ + "@" + name}, "destroying " + dataset_ + "@" + name);
  }

  std::set<std::string> HeldPoints() override { return ZfsHeldPoints(env_, dataset_); }

  std::unique_ptr<PointView> OpenPoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, dataset_);
    DestroyDeadClones();
    std::string dir = MakeTempDir("vmback-point.");
    std::string clone = pool_ + "/vmback-clone-" + std::to_string(::getpid()) + "-" +
                        std::to_string(env_->NowNanos());
    RunResult r = RunTool(env_, {"zfs", "clone", "-o", "readonly=on", "-o", "devices=off", "-o", "setuid=off",
                                 "-o", "exec=off", "-o", "mountpoint=" + dir,
                                 dataset_ + "@" + name, clone},
                          "reading " + dataset_ + "@" + name);
    if (r.exit_code != 0) {
      RemoveDirQuietly(env_, dir);
      ThrowNotFound("cannot clone " + dataset_ + "@" + name + " to read it: " + Trim(r.err));
    }
    return std::make_unique<ZfsPointView>(env_, clone, dir, log_);
  }

  ScrubReport Scrub() override {
    RunChecked(env_, {"zpool", "scrub", pool_}, "scrub of pool " + pool_);
    for (;;) {
      RunResult r = RunChecked(env_, {"zpool", "status", pool_}, "status of pool " + pool_);
      if (r.out.find("scrub in progress") == std::string::npos) {
        ScrubReport report = ParseZpoolStatus(r.out);
        report.summary = "zpool " + pool_ + ": " + report.summary;
        return report;
      }
      env_->clock()->SleepFor(std::chrono::milliseconds(200));
    }
  }

  int64_t PointTime(const std::string& name) const override {
    return name.size() > prefix_.size() ? ParsePointStamp(name.substr(prefix_.size())) : -1;
  }

 private:
  // Clones left by a vmback that was killed while reading a point.
  void DestroyDeadClones() {
    RunResult r = env_->Run({"zfs", "list", "-H", "-o", "name", "-r", pool_});
    if (r.exit_code != 0) return;
    const std::string mark = pool_ + "/vmback-clone-";
    for (const auto& line : Lines(r.out)) {
      std::string n = Trim(line);
      if (n.compare(0, mark.size(), mark) != 0) continue;
      pid_t pid = static_cast<pid_t>(std::atoll(n.c_str() + mark.size()));
      if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) {
        RunResult d = env_->Run({"zfs", "destroy", n});
        if (d.exit_code == 0) log_->Info("destroyed " + n + ", a clone left by an interrupted vmback");
      }
    }
  }

  Env* env_;
  std::string dataset_, pool_, prefix_, mountpoint_;
  uint32_t block_size_ = kDefaultInplaceBlockSize;
  Logger* log_;
};

}  // namespace

std::unique_ptr<InplaceTarget> MakeZfsTarget(Env* env, const TargetConfig& config, Logger* log) {
  return std::make_unique<ZfsTarget>(env, config, log);
}

}  // namespace inplace_internal

using inplace_internal::Lines;
using inplace_internal::Trim;
using inplace_internal::Words;

namespace {

uint64_t CounterValue(const std::string& w) {
  // zpool prints 0, 12, 1.2K, ...: any non-zero counts.
  if (w == "0") return 0;
  uint64_t v = 0;
  if (ParseSize(w, &v)) return v;
  return 1;
}

}  // namespace

ScrubReport ParseZpoolStatus(const std::string& text) {
  ScrubReport r;
  r.ran = true;
  r.details = text;
  std::string pool, state, scrub_line;
  bool in_config = false;
  uint64_t device_errors = 0;
  std::vector<std::string> unhealthy;
  for (const auto& raw : Lines(text)) {
    std::string line = Trim(raw);
    auto w = Words(line);
    if (line.rfind("pool:", 0) == 0) pool = Trim(line.substr(5));
    if (line.rfind("state:", 0) == 0) state = Trim(line.substr(6));
    if (line.rfind("scrub:", 0) == 0 || line.rfind("scan:", 0) == 0) scrub_line = Trim(line.substr(line.find(':') + 1));
    if (line.rfind("config:", 0) == 0) {
      in_config = true;
      continue;
    }
    if (line.rfind("errors:", 0) == 0) {
      in_config = false;
      std::string e = Trim(line.substr(7));
      if (e != "No known data errors") {
        r.ok = false;
        uint64_t n = std::strtoull(e.c_str(), nullptr, 10);
        r.unrepaired += n ? n : 1;
      }
      continue;
    }
    if (!in_config || w.size() < 5 || w[0] == "NAME") continue;
    const std::string& name = w[0];
    if (w[1] != "ONLINE") unhealthy.push_back(name + " " + w[1]);
    bool group = name == pool || name.rfind("mirror", 0) == 0 || name.rfind("raidz", 0) == 0 ||
                 name.rfind("draid", 0) == 0 || name.rfind("replacing", 0) == 0 || name.rfind("spare", 0) == 0;
    if (group) continue;
    device_errors += CounterValue(w[2]) + CounterValue(w[3]) + CounterValue(w[4]);
  }
  if (pool.empty()) {
    r.ran = false;
    r.ok = false;
    r.summary = "cannot read the pool's status";
    return r;
  }
  r.repaired = r.ok ? device_errors : 0;
  std::ostringstream s;
  s << "state " << (state.empty() ? "?" : state) << "; " << (scrub_line.empty() ? "no scrub" : scrub_line);
  if (r.ok && device_errors) s << "; the pool repaired " << Counted(device_errors, "device error") << " from its redundancy";
  if (!r.ok) s << "; " << Counted(r.unrepaired, "unrepaired data error");
  for (const auto& u : unhealthy) s << "; " << u;
  r.summary = s.str();
  return r;
}

std::vector<std::vector<std::string>> ZfsInitCommands(const std::string& pool,
                                                      const std::vector<std::string>& devices,
                                                      const std::string& mountpoint) {
  std::vector<std::string> create = {"zpool", "create"};
  if (!mountpoint.empty()) {
    create.push_back("-m");
    create.push_back(mountpoint);
  }
  create.push_back(pool);
  if (devices.size() > 1) create.push_back("mirror");
  create.insert(create.end(), devices.begin(), devices.end());
  return {create,
          {"zfs", "set", "compression=on", pool},
          {"zfs", "set", "checksum=sha256", pool},
          {"zfs", "set", "atime=off", pool},
          // The mirror holds the guests' device nodes and setuid files.
          {"zfs", "create", "-o", "devices=off", "-o", "setuid=off", "-o", "exec=off", pool + "/vmback"}};
}

}  // namespace vmback
