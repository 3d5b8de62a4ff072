#include "job/dry_run_env.h"

#include <sys/stat.h>

#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// Commands that only look: run for real in a plan.
bool OnlyLooks(const std::vector<std::string>& argv) {
  if (argv.empty()) return false;
  if (argv[0] == "blkid") return true;
  return argv[0] == "lvm" && argv.size() > 1 && (argv[1] == "vgs" || argv[1] == "lvs");
}

// The value after flag in argv ("" if none), and the last argument.
std::string ValueOf(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); i++)
    if (argv[i] == flag) return argv[i + 1];
  return "";
}

bool Below(const std::string& path, const std::string& top) {
  return path == top || (path.size() > top.size() && path.compare(0, top.size(), top) == 0 &&
                         path[top.size()] == '/');
}

[[noreturn]] void Refuse(const std::string& what, const std::string& path) {
  throw Error(ErrorKind::kOther, "internal: a plan changes nothing, yet it was to " + what + " " + path);
}

}  // namespace

std::vector<std::string> DryRunEnv::TakeSteps() {
  std::vector<std::string> out;
  out.swap(steps_);
  return out;
}

std::string DryRunEnv::Real(const std::string& path) const {
  // The longest entry path is at or below wins (a clone inside a snapshot).
  const std::string* best = nullptr;
  const std::string* real = nullptr;
  for (const auto& [made, from] : stands_for_)
    if (Below(path, made) && (!best || made.size() > best->size())) {
      best = &made;
      real = &from;
    }
  if (!best) return path;
  return *real + path.substr(best->size());
}

bool DryRunEnv::Made(const std::string& path) const { return made_dirs_.count(path) > 0; }

std::unique_ptr<ReadableFile> DryRunEnv::OpenRead(const std::string& path) {
  return target()->OpenRead(Real(path));
}

std::unique_ptr<ReadableDir> DryRunEnv::OpenDirectory(const std::string& path) {
  return target()->OpenDirectory(Real(path));
}

std::unique_ptr<WritableFile> DryRunEnv::OpenWrite(const std::string& path, CreateMode, mode_t) {
  Refuse("write", path);
}

void DryRunEnv::Rename(const std::string& from, const std::string& to) {
  Note("mv -- " + from + " " + to);
  stands_for_[to] = Real(from);
  gone_.insert(from);
}

void DryRunEnv::Remove(const std::string& path) {
  Note("rm -- " + path);
  gone_.insert(path);
}

void DryRunEnv::MakeDir(const std::string& path) {
  if (Exists(path)) {
    if (Status(path).kind != FileKind::kDir)
      throw Error(ErrorKind::kOther, path + " exists and is not a directory");
    return;
  }
  MakeNewDir(path);
}

bool DryRunEnv::Exists(const std::string& path) {
  if (gone_.count(path)) return false;
  if (Made(path)) return true;
  return target()->Exists(Real(path));
}

std::vector<std::string> DryRunEnv::ListDir(const std::string& path) {
  if (Made(path)) return {};
  return target()->ListDir(Real(path));
}

FileStatus DryRunEnv::Status(const std::string& path) {
  if (gone_.count(path)) return {};
  if (Made(path)) {
    FileStatus st = Status(DirName(path));
    st.kind = FileKind::kDir;
    st.type = S_IFDIR;
    st.mode = 0700;
    st.uid = UserId();
    st.nlink = 2;
    return st;
  }
  return target()->Status(Real(path));
}

FileStatus DryRunEnv::StatusFollowingLinks(const std::string& path) {
  if (gone_.count(path) || Made(path)) return Status(path);
  return target()->StatusFollowingLinks(Real(path));
}

void DryRunEnv::MakeNewDir(const std::string& path) {
  if (Exists(path)) throw Error(ErrorKind::kOther, "mkdir " + path + ": it exists");
  Note("mkdir -m 0700 -- " + path);
  made_dirs_.insert(path);
  gone_.erase(path);
}

std::string DryRunEnv::ReadLink(const std::string& path) { return target()->ReadLink(Real(path)); }

uint64_t DryRunEnv::FileSystemType(const std::string& path) {
  if (Made(path)) return FileSystemType(DirName(path));  // a directory of its parent's file system
  return target()->FileSystemType(Real(path));
}

void DryRunEnv::Symlink(const std::string& target_path, const std::string& path) {
  Note("ln -s -- " + target_path + " " + path);
}

void DryRunEnv::Link(const std::string& existing, const std::string& path) {
  Note("ln -- " + existing + " " + path);
  stands_for_[path] = Real(existing);
}

void DryRunEnv::MakeNode(const std::string& path, mode_t, dev_t) { Note("mknod " + path); }

void DryRunEnv::RemoveDir(const std::string& path) {
  Note("rmdir -- " + path);
  made_dirs_.erase(path);
  gone_.insert(path);
}

uint64_t DryRunEnv::RemoveTree(const std::string& path) {
  if (!Exists(path)) return 0;
  Note("rm -r -- " + path);
  for (auto it = made_dirs_.begin(); it != made_dirs_.end();) it = Below(*it, path) ? made_dirs_.erase(it) : ++it;
  gone_.insert(path);
  return 1;
}

int DryRunEnv::CloneFile(const std::string& from, const std::string& to, const std::function<void()>& between_ranges) {
  if (between_ranges) between_ranges();
  Note("reflink copy (FICLONERANGE) -- " + from + " " + to);
  stands_for_[to] = Real(from);
  return 0;
}

Xattrs DryRunEnv::ReadXattrs(const std::string& path) {
  if (Made(path)) return {};
  return target()->ReadXattrs(Real(path));
}

std::unique_ptr<FileLock> DryRunEnv::Lock(const std::string& path, LockMode) { Refuse("lock", path); }

RunResult DryRunEnv::Run(const std::vector<std::string>& argv) { return RunLimited(argv, {}); }

RunResult DryRunEnv::RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) {
  if (OnlyLooks(argv)) {
    std::vector<std::string> real = argv;
    for (auto& a : real)
      if (!a.empty() && a[0] == '/') a = Real(a);
    Note("(checked: " + CommandLine(argv) + ")");
    return target()->RunLimited(real, limits);
  }
  Note(CommandLine(argv));
  // What the command makes or removes, for the steps after it.
  if (argv.size() > 3 && argv[0] == "lvm" && argv[1] == "lvcreate" && !ValueOf(argv, "-n").empty())
    stands_for_[JoinPath(DirName(argv.back()), ValueOf(argv, "-n"))] = Real(argv.back());
  else if (argv.size() > 4 && argv[0] == "btrfs" && argv[1] == "subvolume" && argv[2] == "snapshot")
    stands_for_[argv.back()] = Real(argv[argv.size() - 2]);
  else if (argv.size() > 2 && ((argv[0] == "lvm" && argv[1] == "lvremove") ||
                               (argv[0] == "btrfs" && argv[1] == "subvolume" && argv[2] == "delete")))
    gone_.insert(argv.back());
  RunResult ok;
  ok.exit_code = 0;
  return ok;
}

PipeResult DryRunEnv::RunPipe(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                              const PipeLimits&) {
  Note(CommandLine(producer) + " | " + CommandLine(consumer));
  PipeResult ok;
  ok.producer.exit_code = 0;
  ok.consumer.exit_code = 0;
  return ok;
}

}  // namespace vmback
