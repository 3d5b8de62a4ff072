// btrfs targets: a subvolume; points are read-only snapshots beside it
// (target.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

#include "inplace/backends.h"
#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace inplace_internal {

namespace {

constexpr uint64_t kBtrfsMagic = 0x9123683E;
constexpr ino_t kBtrfsSubvolumeRootIno = 256;

class BtrfsTarget : public InplaceTarget {
 public:
  BtrfsTarget(Env* env, const TargetConfig& config, Logger* log)
      : env_(env), path_(CanonicalPath(config.path)), prefix_(config.snapshot_prefix) {
    const FileStatus st = env->StatusFollowingLinks(path_);
    if (st.kind == FileKind::kMissing)
      ThrowNotFound("btrfs target " + config.path + ": " + std::strerror(ENOENT));
    if (env->FileSystemType(path_) != kBtrfsMagic)
      ThrowConfig("btrfs target " + config.path + " is not on a btrfs file system");
    if (st.kind != FileKind::kDir || st.ino != kBtrfsSubvolumeRootIno)
      ThrowConfig("btrfs target " + config.path + " is not a subvolume (create it with 'btrfs subvolume create " +
                  config.path + "')");
    parent_ = DirName(path_);
    block_size_ = config.block_size ? config.block_size : kDefaultInplaceBlockSize;
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
      const FileStatus st = env_->Status(JoinPath(parent_, n));
      if (st.kind == FileKind::kDir && st.ino == kBtrfsSubvolumeRootIno) names.push_back(n);
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

}  // namespace

std::unique_ptr<InplaceTarget> MakeBtrfsTarget(Env* env, const TargetConfig& config, Logger* log) {
  return std::make_unique<BtrfsTarget>(env, config, log);
}

}  // namespace inplace_internal

using inplace_internal::Lines;
using inplace_internal::Trim;

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

}  // namespace vmback
