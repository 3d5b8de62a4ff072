#include "inplace/target.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "os/subprocess.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"
#include <nlohmann/json.hpp>

namespace vmback {

namespace {

constexpr uint32_t kDefaultBlockSize = 128 * 1024;
constexpr uint32_t kDirBlockSize = 16 * 1024;
constexpr long kBtrfsMagic = 0x9123683E;
constexpr ino_t kBtrfsSubvolumeRootIno = 256;

// Runs a file-system command; a failure names the command and its stderr.
RunResult RunTool(Env* env, const std::vector<std::string>& argv, const std::string& what) {
  RunResult r;
  try {
    r = env->Run(argv);
  } catch (const Error& e) {
    throw Error(ErrorKind::kConfig, what + ": cannot run " + argv[0] + " (" + e.what() + "); is it installed?");
  }
  return r;
}

RunResult RunChecked(Env* env, const std::vector<std::string>& argv, const std::string& what) {
  RunResult r = RunTool(env, argv, what);
  if (r.exit_code != 0) throw Error(ErrorKind::kOther, what + ": " + DescribeFailure(argv, r));
  return r;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
  return s.substr(i);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// Sorts prefixed point names by their time stamps.
void SortPoints(std::vector<std::string>* names, size_t prefix_len) {
  std::sort(names->begin(), names->end(), [prefix_len](const std::string& a, const std::string& b) {
    return PointNameLess(a.substr(prefix_len), b.substr(prefix_len));
  });
}

// A name for a new point that is not taken yet: PREFIX + stamp [+ ".N"].
std::string FreshPointName(const std::string& prefix, int64_t now_ns, const std::vector<std::string>& taken) {
  std::string base = prefix + FormatPointStamp(now_ns);
  std::string name = base;
  for (int i = 2; std::find(taken.begin(), taken.end(), name) != taken.end(); i++)
    name = base + "." + std::to_string(i);
  return name;
}

void CheckOwnPoint(const std::string& prefix, const std::string& name, const std::string& where) {
  if (name.compare(0, prefix.size(), prefix) != 0 || ParsePointStamp(name.substr(prefix.size())) < 0)
    ThrowConfig(name + " in " + where + " is not a vmback point (its names are " + prefix +
                "<UTC time>); vmback leaves it alone");
}

// --- ZFS ---

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
      ::usleep(250000);
    }
    if (r.exit_code != 0) {
      log_->Error("cannot destroy the temporary clone " + clone_ + " (" + Trim(r.err) +
                  "); destroy it with 'zfs destroy " + clone_ + "'");
      return;
    }
    ::rmdir(dir_.c_str());
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
    if (r.exit_code != 0)
      ThrowNotFound("ZFS dataset " + dataset_ + " cannot be used: " + Trim(r.err.empty() ? r.out : r.err) +
                    " (create it with 'zfs create " + dataset_ + "' or 'vmback target init zfs')");
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
    } else if (ParseSize(recordsize, &rs) && rs >= 512 && rs <= (16u << 20)) {
      block_size_ = static_cast<uint32_t>(rs);
    } else {
      block_size_ = kDefaultBlockSize;
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
    std::vector<std::string> names;
    const std::string own = dataset_ + "@" + prefix_;
    for (const auto& line : Lines(r.out)) {
      std::string n = Trim(line);
      if (n.compare(0, own.size(), own) != 0) continue;
      std::string point = n.substr(dataset_.size() + 1);
      if (ParsePointStamp(point.substr(prefix_.size())) >= 0) names.push_back(point);
    }
    SortPoints(&names, prefix_.size());
    return names;
  }

  void DeletePoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, dataset_);
    RunChecked(env_, {"zfs", "destroy", dataset_ + "@" + name}, "destroying " + dataset_ + "@" + name);
  }

  std::unique_ptr<PointView> OpenPoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, dataset_);
    DestroyDeadClones();
    std::string dir = MakeTempDir();
    std::string clone = pool_ + "/vmback-clone-" + std::to_string(::getpid()) + "-" +
                        std::to_string(env_->NowNanos());
    RunResult r = RunTool(env_, {"zfs", "clone", "-o", "readonly=on", "-o", "devices=off", "-o", "setuid=off",
                                 "-o", "exec=off", "-o", "mountpoint=" + dir,
                                 dataset_ + "@" + name, clone},
                          "reading " + dataset_ + "@" + name);
    if (r.exit_code != 0) {
      ::rmdir(dir.c_str());
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
      ::usleep(200000);
    }
  }

  int64_t PointTime(const std::string& name) const override {
    return name.size() > prefix_.size() ? ParsePointStamp(name.substr(prefix_.size())) : -1;
  }

 private:
  std::string MakeTempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = JoinPath(tmp && *tmp ? tmp : "/tmp", "vmback-point.XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) ThrowIo("mkdtemp " + templ, errno);
    return buf.data();
  }

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
  uint32_t block_size_ = kDefaultBlockSize;
  Logger* log_;
};

// --- btrfs ---

class PlainPointView : public PointView {
 public:
  explicit PlainPointView(std::string root) : root_(std::move(root)) {}
  const std::string& root() const override { return root_; }

 private:
  std::string root_;
};

class BtrfsTarget : public InplaceTarget {
 public:
  BtrfsTarget(Env* env, const TargetConfig& config, Logger* log)
      : env_(env), path_(CanonicalPath(config.path)), prefix_(config.snapshot_prefix) {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) ThrowNotFound("btrfs target " + config.path + ": " + std::strerror(errno));
    struct statfs fs;
    if (::statfs(path_.c_str(), &fs) != 0) ThrowIo("statfs " + path_, errno);
    if (static_cast<long>(fs.f_type) != kBtrfsMagic)
      ThrowConfig("btrfs target " + config.path + " is not on a btrfs file system");
    if (!S_ISDIR(st.st_mode) || st.st_ino != kBtrfsSubvolumeRootIno)
      ThrowConfig("btrfs target " + config.path + " is not a subvolume (create it with 'btrfs subvolume create " +
                  config.path + "')");
    parent_ = DirName(path_);
    block_size_ = config.block_size ? config.block_size : kDefaultBlockSize;
  }

  std::string kind() const override { return "btrfs"; }
  std::string describe() const override { return "btrfs subvolume " + path_; }
  const std::string& mirror_dir() const override { return path_; }
  uint32_t block_size() const override { return block_size_; }

  std::string CreatePoint() override {
    std::string name = FreshPointName(prefix_, env_->NowNanos(), ListPoints());
    RunChecked(env_, {"btrfs", "subvolume", "snapshot", "-r", path_, JoinPath(parent_, name)},
               "snapshot of " + path_);
    return name;
  }

  std::vector<std::string> ListPoints() override {
    std::vector<std::string> names;
    for (const auto& n : env_->ListDir(parent_)) {
      if (n.compare(0, prefix_.size(), prefix_) != 0 || ParsePointStamp(n.substr(prefix_.size())) < 0) continue;
      struct stat st;
      if (::lstat(JoinPath(parent_, n).c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
          st.st_ino == kBtrfsSubvolumeRootIno)
        names.push_back(n);
    }
    SortPoints(&names, prefix_.size());
    return names;
  }

  void DeletePoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, parent_);
    RunChecked(env_, {"btrfs", "subvolume", "delete", JoinPath(parent_, name)}, "deleting point " + name);
  }

  std::unique_ptr<PointView> OpenPoint(const std::string& name) override {
    CheckOwnPoint(prefix_, name, parent_);
    std::string root = JoinPath(parent_, name);
    if (!env_->Exists(root)) ThrowNotFound("no point " + name + " beside " + path_);
    return std::make_unique<PlainPointView>(root);
  }

  ScrubReport Scrub() override {
    std::vector<std::string> argv = {"btrfs", "scrub", "start", "-B", path_};
    RunResult r = RunTool(env_, argv, "scrub of " + path_);
    ScrubReport report = ParseBtrfsScrub(r.out + r.err);
    if (!report.ran) throw Error(ErrorKind::kOther, "scrub of " + path_ + ": " + DescribeFailure(argv, r));
    report.summary = "btrfs scrub " + path_ + ": " + report.summary;
    return report;
  }

  int64_t PointTime(const std::string& name) const override {
    return name.size() > prefix_.size() ? ParsePointStamp(name.substr(prefix_.size())) : -1;
  }

 private:
  Env* env_;
  std::string path_, parent_, prefix_;
  uint32_t block_size_;
};

// --- a plain directory ---

class DirTarget : public InplaceTarget {
 public:
  DirTarget(Env* env, const TargetConfig& config) : env_(env), path_(CanonicalPath(config.path)) {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0)
      ThrowNotFound("target directory " + config.path + ": " + std::strerror(errno) + " (create it first)");
    if (!S_ISDIR(st.st_mode)) ThrowConfig("target " + config.path + " is not a directory");
    // A plain file system (ext4, XFS) has no 128 KiB records: a smaller block
    // makes a guest's scattered 4 KiB writes cheap. 16 KiB, not the file
    // system's 4 KiB: the blockmap (32 bytes per block) stays at 0.2% of the
    // data, and its rewritten pages a few percent of what an incremental run
    // writes (at 4 KiB they were a fifth; measured with bench/inplace_bench.sh).
    block_size_ = config.block_size ? config.block_size : kDirBlockSize;
  }

  std::string kind() const override { return "dir"; }
  std::string describe() const override { return "directory " + path_; }
  const std::string& mirror_dir() const override { return path_; }
  uint32_t block_size() const override { return block_size_; }
  bool has_history() const override { return false; }
  std::string CreatePoint() override { return kDirPointName; }

  std::vector<std::string> ListPoints() override {
    if (env_->Exists(JoinPath(path_, kPointInfo))) return {kDirPointName};
    return {};
  }

  void DeletePoint(const std::string& name) override {
    ThrowConfig("a dir target keeps no history: there is no point to delete (" + path_ + ")");
  }

  std::unique_ptr<PointView> OpenPoint(const std::string& name) override {
    if (name != kDirPointName) ThrowNotFound("a dir target has one point, \"current\"; not " + name);
    if (!env_->Exists(JoinPath(path_, kPointInfo))) ThrowNotFound("nothing backed up yet in " + path_);
    return std::make_unique<PlainPointView>(path_);
  }

  ScrubReport Scrub() override {
    ScrubReport r;
    r.summary = "a plain directory has no file-system scrub";
    return r;
  }

  int64_t PointTime(const std::string& name) const override {
    try {
      auto info = nlohmann::json::parse(ReadFileToString(env_, JoinPath(path_, kPointInfo)));
      return info.value("time_ns", int64_t{-1});
    } catch (const std::exception&) {
      return -1;
    }
  }

 private:
  Env* env_;
  std::string path_;
  uint32_t block_size_;
};

uint64_t CounterValue(const std::string& w) {
  // zpool prints 0, 12, 1.2K, ...: any non-zero counts.
  if (w == "0") return 0;
  uint64_t v = 0;
  if (ParseSize(w, &v)) return v;
  return 1;
}

}  // namespace

std::unique_ptr<InplaceTarget> OpenInplaceTarget(Env* env, const TargetConfig& config, Logger* log) {
  if (config.type == "zfs") return std::make_unique<ZfsTarget>(env, config, log);
  if (config.type == "btrfs") return std::make_unique<BtrfsTarget>(env, config, log);
  if (config.type == "dir") return std::make_unique<DirTarget>(env, config);
  ThrowConfig("target type '" + config.type + "' is not an in-place target");
}

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
  if (r.ok && device_errors) s << "; the pool repaired " << device_errors << " device error(s) from its redundancy";
  if (!r.ok) s << "; " << r.unrepaired << " unrepaired data error(s)";
  for (const auto& u : unhealthy) s << "; " << u;
  r.summary = s.str();
  return r;
}

ScrubReport ParseBtrfsScrub(const std::string& text) {
  ScrubReport r;
  r.details = text;
  uint64_t corrected = 0, uncorrectable = 0;
  bool found_errors = false;
  for (const auto& raw : Lines(text)) {
    std::string line = Trim(raw);
    auto value_of = [&](const char* key) -> std::optional<uint64_t> {
      size_t k = std::strlen(key);
      if (line.compare(0, k, key) != 0) return std::nullopt;
      return std::strtoull(Trim(line.substr(k)).c_str(), nullptr, 10);
    };
    if (line.rfind("Error summary:", 0) == 0) {
      r.ran = true;
      found_errors = line.find("no errors found") == std::string::npos;
    }
    if (auto v = value_of("Corrected:")) corrected += *v;
    if (auto v = value_of("Uncorrectable:")) uncorrectable += *v;
  }
  if (!r.ran) {
    r.ok = false;
    r.summary = "no scrub summary";
    return r;
  }
  r.repaired = corrected;
  r.unrepaired = uncorrectable;
  if (found_errors && corrected == 0 && uncorrectable == 0) r.unrepaired = 1;  // errors but no counts
  r.ok = r.unrepaired == 0;
  std::ostringstream s;
  if (!found_errors) s << "no errors found";
  else s << "repaired " << r.repaired << ", unrepaired " << r.unrepaired;
  r.summary = s.str();
  return r;
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) && std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> MissingMountOptions(const std::string& mountinfo_text, const std::string& path,
                                             std::string* mount_point) {
  // The mount holding path: the last listed (the one on top) of the longest
  // mount point that is path or one of its parents.
  std::string best, best_options;
  std::istringstream lines(mountinfo_text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point, options;
    if (!(fields >> id >> parent >> devno >> root >> point >> options)) continue;
    point = UnescapeMountinfo(point);
    bool holds = point == "/" || path == point || path.rfind(point + "/", 0) == 0;
    if (holds && point.size() >= best.size()) {
      best = point;
      best_options = "," + options + ",";
    }
  }
  std::vector<std::string> missing;
  if (best.empty()) return missing;
  if (mount_point) *mount_point = best;
  for (const char* want : {"nodev", "nosuid", "noexec"})
    if (best_options.find(std::string(",") + want + ",") == std::string::npos) missing.push_back(want);
  return missing;
}

void WarnAboutMountOptions(const InplaceTarget& target, Logger* log) {
  if (target.kind() != "dir" && target.kind() != "btrfs") return;
  // A proc file reports size 0: read it as a stream.
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return;  // no /proc: nothing to tell
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  std::string point;
  auto missing = MissingMountOptions(text, CanonicalPath(target.mirror_dir()), &point);
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ",") + m;
  log->Warn(target.describe() + " is on the mount " + point + " without " + list +
            ": the guests' device nodes and setuid files in the mirror are live on this host;"
            " mount it with nodev,nosuid,noexec");
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
