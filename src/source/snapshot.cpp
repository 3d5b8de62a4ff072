#include "source/snapshot.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "os/dir.h"
#include "os/subprocess.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr int kLvremoveRetries = 5;
std::atomic<int> g_lvremove_backoff_ms{200};

// What is needed to drop a snapshot, now or after a crash.
struct Target {
  SnapshotKind kind = SnapshotKind::kNone;
  std::string volume;
  std::string source;
  std::string target;  // lvm: the snapshot LV's device; btrfs: the snapshot
                       // subvolume; reflink: the hidden directory; none: source
};

std::string StripTrailingSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// An absolute path without empty, "." or ".." components or a trailing '/':
// the form vmback writes, so a record naming anything else was not written
// by vmback.
bool IsPlainAbsolutePath(const std::string& p) {
  if (p.size() < 2 || p[0] != '/' || p.back() == '/') return false;
  if (p.find('\0') != std::string::npos) return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string c = p.substr(start, end - start);
    if (c.empty() || c == "." || c == "..") return false;
    start = end + 1;
  }
  return true;
}

bool Contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs argv within limits; a program that cannot be started, or that is
// killed at its deadline or on cancel, is reported as Error by RunLimited.
RunResult RunCommand(Env* env, const std::vector<std::string>& argv, Logger* log,
                     const RunLimits& limits = {}) {
  if (log) log->Debug("run: " + CommandLine(argv));
  return env->RunLimited(argv, limits);
}

// Between two steps of a snapshot made in the freeze window (reflink ranges,
// files): stop at once on a signal or at the deadline.
void CheckLimits(const RunLimits& limits, const std::string& what) {
  if (limits.cancel && limits.cancel->load())
    throw Error(ErrorKind::kOther, what + ": interrupted by a signal");
  if (limits.deadline && std::chrono::steady_clock::now() >= *limits.deadline)
    throw Error(ErrorKind::kOther, what + ": not finished by its deadline (max_freeze)");
}

// ---- reflink --------------------------------------------------------------

[[noreturn]] void ThrowNoReflink(const std::string& src, int err) {
  throw Error(ErrorKind::kConfig,
              "the file system of " + src + " cannot make reflink copies (FICLONE: " +
                  std::strerror(err) +
                  "); use snapshot = \"lvm\" or \"btrfs\" for this volume, or \"none\" "
                  "if its data is quiet while it is read");
}

// Kinds of file system (statfs f_type) that never make reflink copies, with
// the names an admin knows them by.
constexpr std::pair<uint64_t, const char*> kCannotClone[] = {
    {0xEF53, "ext2/3/4"},       {0x01021994, "tmpfs"},  {0x858458f6, "ramfs"},
    {0x4d44, "vfat"},           {0x2011BAB0, "exfat"},  {0x5346544e, "ntfs"},
    {0x794c7630, "overlayfs"},  {0x65735546, "fuse"},   {0x52654973, "reiserfs"},
};

// The owner, mode and times of `from` (its status st), given to the copy
// at path: on a symlink only the owner and times. Ownership first: chown
// clears set-id bits. Not being root is fine.
void ApplyMetadata(Env* env, const std::string& path, const FileStatus& st) {
  (void)env->SetOwner(path, st.uid, st.gid);
  if (st.kind != FileKind::kSymlink) env->SetMode(path, st.mode);
  env->SetTimes(path, st.atime_ns, st.mtime_ns);
}

// A reflink copy of the regular file src (status st) at the new path dst,
// with src's metadata; the limits are looked at between ranges, so that a
// huge image cannot hold the VMs past max_freeze or a signal.
void CloneFile(Env* env, const std::string& src, const std::string& dst, const FileStatus& st,
               const RunLimits& limits) {
  int err = env->CloneFile(src, dst, [&] { CheckLimits(limits, "reflink copy of " + src); });
  if (err != 0) ThrowNoReflink(src, err);
  ApplyMetadata(env, dst, st);
}

class TreeCloner {
 public:
  TreeCloner(Env* env, Logger* log, const RunLimits& limits) : env_(env), log_(log), limits_(limits) {}

  // Clones the source directory src (status st) into the existing directory
  // dst, which may lie inside it: every entry but those at the top named
  // kSnapshotPrefix* (dst itself, and any other snapshot kept there), then
  // gives dst the metadata of src.
  void CloneSource(const std::string& src, const std::string& dst, const FileStatus& st) {
    std::vector<std::string> names;
    for (auto& n : env_->ListDir(src)) {
      if (n.rfind(kSnapshotPrefix, 0) != 0) {
        names.push_back(std::move(n));
      } else if (JoinPath(src, n) != dst && log_) {
        log_->Info("reflink snapshot: left out " + JoinPath(src, n) + " (named as vmback names its snapshots)");
      }
    }
    CloneInto(src, names, dst, st);
  }

 private:
  // Clones the entries names of directory src into the existing directory
  // dst, then gives dst the metadata of src (status st).
  void CloneInto(const std::string& src, const std::vector<std::string>& names, const std::string& dst,
                 const FileStatus& st) {
    for (const auto& n : names) CloneEntry(JoinPath(src, n), JoinPath(dst, n));
    ApplyMetadata(env_, dst, st);
  }

  void CloneEntry(const std::string& src, const std::string& dst) {
    CheckLimits(limits_, "reflink copy of " + src);
    FileStatus st = env_->Status(src);
    switch (st.kind) {
      case FileKind::kMissing:
        ThrowIo("stat " + src, ENOENT);
      case FileKind::kDir:
        env_->MakeNewDir(dst);
        CloneInto(src, env_->ListDir(src), dst, st);
        return;
      case FileKind::kFile:
        if (st.nlink > 1) {
          auto key = std::make_pair(st.dev, st.ino);
          auto it = links_.find(key);
          if (it != links_.end()) {
            env_->Link(it->second, dst);
            return;
          }
          links_[key] = dst;
        }
        CloneFile(env_, src, dst, st, limits_);
        return;
      case FileKind::kSymlink:
        env_->Symlink(env_->ReadLink(src), dst);
        ApplyMetadata(env_, dst, st);
        return;
      case FileKind::kOther:
        if (log_) log_->Warn("reflink snapshot: skipped special file " + src);
        return;
    }
  }

  Env* env_;
  Logger* log_;
  const RunLimits& limits_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// Returns the path to read: the cloned file, or the hidden directory
// (t.target, SnapshotPath: inside a directory source, beside a file).
std::string TakeReflink(Env* env, const Target& t, Logger* log, const RunLimits& limits) {
  FileStatus st = env->StatusFollowingLinks(t.source);
  if (st.kind == FileKind::kMissing) ThrowIo("stat " + t.source, ENOENT);
  if (st.kind != FileKind::kFile && st.kind != FileKind::kDir)
    ThrowConfig(t.source + " is neither a regular file nor a directory");
  if ((st.kind == FileKind::kDir) != (DirName(t.target) == t.source))
    throw Error(ErrorKind::kOther, t.source + " changed between a file and a directory while it was looked at");
  // mkdir makes it new or fails: never through a symlink planted there.
  try {
    env->MakeNewDir(t.target);
  } catch (const Error&) {
    if (env->Exists(t.target))
      throw Error(ErrorKind::kOther, t.target + " exists already (left over from a crashed run?)");
    throw;
  }
  try {
    FileStatus tst = env->Status(t.target);
    if (tst.kind != FileKind::kDir)
      throw Error(ErrorKind::kOther, t.target + " was replaced by something else while it was being made");
    // A clone cannot cross file systems (FICLONE: EXDEV); say why instead.
    if (tst.dev != st.dev)
      ThrowConfig(t.target + " is not on the file system of " + t.source + " (is " + t.source +
                  " a mount point of its own, a bind mount?); a reflink copy must be made in the file "
                  "system of its source: give the file's path within its own file system, or a directory "
                  "of that file system, as the source");
    if (st.kind == FileKind::kFile) {
      std::string file = JoinPath(t.target, BaseName(t.source));
      CloneFile(env, t.source, file, st, limits);
      return file;
    }
    TreeCloner(env, log, limits).CloneSource(t.source, t.target, st);
    return t.target;
  } catch (...) {
    try {
      env->RemoveTree(t.target);
    } catch (const Error& e) {
      if (log) log->Error("cannot clean up " + t.target + ": " + e.what());
    }
    throw;
  }
}

// ---- lvm ------------------------------------------------------------------

bool IsLvmName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// LVM's words for "there is no such LV (or VG)".
bool LvmSaysMissing(const RunResult& r) {
  return Contains(r.err, "Failed to find logical volume") || Contains(r.err, "not found");
}

// Returns false when the LV does not exist (any more).
bool RemoveLv(Env* env, const std::string& device, Logger* log) {
  std::vector<std::string> argv = {"lvm", "lvremove", "-f", "--", device};
  for (int attempt = 0;; attempt++) {
    RunResult r = RunCommand(env, argv, log);
    if (r.exit_code == 0) return true;
    if (r.signal == 0 && LvmSaysMissing(r)) return false;
    bool busy = Contains(r.err, "in use");
    if (!busy) throw Error(ErrorKind::kOther, DescribeFailure(argv, r));
    if (attempt == kLvremoveRetries)
      throw Error(ErrorKind::kOther, DescribeFailure(argv, r) + " (still in use after " +
                                         std::to_string(attempt + 1) + " attempts)");
    if (log) log->Debug(device + " is in use; retrying lvremove");
    env->clock()->SleepFor(
        std::chrono::milliseconds(static_cast<int64_t>(g_lvremove_backoff_ms) * (attempt + 1)));
  }
}

// ---- all kinds --------------------------------------------------------------

std::string Record(const Target& t) {
  nlohmann::json j = {{"snapshot", SnapshotKindName(t.kind)},
                      {"volume", t.volume},
                      {"source", t.source},
                      {"target", t.target}};
  return j.dump();
}

// Drops the snapshot t. A snapshot that is gone already is fine (warned about
// unless it is a crashed run's leftover).
void DropTarget(Env* env, const Target& t, Logger* log, bool leftover) {
  if (t.kind == SnapshotKind::kNone || t.kind == SnapshotKind::kLibvirt) return;
  bool existed = true;
  try {
    switch (t.kind) {
      case SnapshotKind::kLvm:
        existed = RemoveLv(env, t.target, log);
        break;
      case SnapshotKind::kBtrfs: {
        if (!env->Exists(t.target)) {
          existed = false;
          break;
        }
        std::vector<std::string> argv = {"btrfs", "subvolume", "delete", "--", t.target};
        RunResult r = RunCommand(env, argv, log);
        if (r.exit_code != 0) throw Error(ErrorKind::kOther, DescribeFailure(argv, r));
        break;
      }
      case SnapshotKind::kReflink:
        if (BaseName(t.target).rfind(kSnapshotPrefix, 0) != 0)
          ThrowCorrupt("refusing to remove " + t.target + ": not a vmback snapshot directory");
        existed = env->RemoveTree(t.target) > 0;
        break;
      case SnapshotKind::kNone:
      case SnapshotKind::kLibvirt:
        break;
    }
  } catch (const Error& e) {
    throw Error(e.kind(), "volume " + t.volume + ": cannot drop " + SnapshotKindName(t.kind) +
                              " snapshot " + t.target + ": " + e.what());
  }
  if (!log) return;
  if (leftover) {
    log->Info("volume " + t.volume + ": " + (existed ? "dropped" : "no longer present:") +
              " leftover " + SnapshotKindName(t.kind) + " snapshot " + t.target);
  } else if (!existed) {
    log->Warn("volume " + t.volume + ": " + SnapshotKindName(t.kind) + " snapshot " + t.target +
              " was gone already when it was to be dropped");
  } else {
    log->Debug("volume " + t.volume + ": dropped snapshot " + t.target);
  }
}

class SnapshotImpl : public Snapshot {
 public:
  SnapshotImpl(Env* env, Target t, std::string path, Logger* log)
      : env_(env), t_(std::move(t)), path_(std::move(path)), log_(log) {}
  ~SnapshotImpl() override {
    if (drop_called_) return;
    try {
      Drop();
    } catch (const std::exception& e) {
      if (log_) log_->Error(e.what());
    } catch (...) {
      if (log_) log_->Error("volume " + t_.volume + ": cannot drop snapshot " + t_.target);
    }
  }
  const std::string& path() const override { return path_; }
  std::string JournalRecord() const override { return Record(t_); }
  // Drops once; a failure is thrown to the caller and not retried by the
  // destructor (the journal keeps the record for the next run).
  void Keep() override { drop_called_ = true; }
  void Drop() override {
    if (drop_called_) return;
    drop_called_ = true;
    DropTarget(env_, t_, log_, /*leftover=*/false);
  }

 private:
  Env* env_;
  Target t_;
  std::string path_;
  Logger* log_;
  bool drop_called_ = false;
};

}  // namespace

void SetLvremoveBackoffMs(int ms) { g_lvremove_backoff_ms = ms < 0 ? 0 : ms; }

SnapshotKind ParseSnapshotKind(const std::string& text) {
  if (text == "none") return SnapshotKind::kNone;
  if (text == "lvm") return SnapshotKind::kLvm;
  if (text == "btrfs") return SnapshotKind::kBtrfs;
  if (text == "reflink") return SnapshotKind::kReflink;
  if (text == "libvirt") return SnapshotKind::kLibvirt;
  ThrowConfig("unknown snapshot kind \"" + text + "\" (expected none, lvm, btrfs, reflink or libvirt)");
}

const char* SnapshotKindName(SnapshotKind k) {
  switch (k) {
    case SnapshotKind::kNone:
      return "none";
    case SnapshotKind::kLvm:
      return "lvm";
    case SnapshotKind::kBtrfs:
      return "btrfs";
    case SnapshotKind::kReflink:
      return "reflink";
    case SnapshotKind::kLibvirt:
      return "libvirt";
  }
  return "?";
}

std::string SnapshotPath(const SnapshotSpec& spec) {
  const std::string source = StripTrailingSlashes(spec.source);
  const std::string name = spec.volume + "-" + spec.run_id;
  switch (spec.kind) {
    case SnapshotKind::kNone:
    case SnapshotKind::kLibvirt:
      return source;
    case SnapshotKind::kLvm:
      return JoinPath(DirName(source), "vmback-" + name);
    case SnapshotKind::kBtrfs:
      return JoinPath(source, kSnapshotPrefix + name);
    case SnapshotKind::kReflink: {
      FileStatus st;
      try {
        st = Env::Default()->StatusFollowingLinks(source);
      } catch (const Error&) {
        // Not to be told here: taking the snapshot says why.
      }
      const bool dir = st.kind == FileKind::kDir;
      return JoinPath(dir ? source : DirName(source), kSnapshotPrefix + name);
    }
  }
  return source;
}

std::vector<std::string> SnapshotProblems(Env* env, const SnapshotSpec& spec) {
  std::vector<std::string> out;
  const std::string what = "volume '" + spec.volume + "': ";
  const char* program = spec.kind == SnapshotKind::kLvm     ? "lvm"
                        : spec.kind == SnapshotKind::kBtrfs ? "btrfs"
                                                            : nullptr;
  if (program && !OnPath(program))
    out.push_back(what + NotInstalledMessage(program) + " (snapshot = \"" + SnapshotKindName(spec.kind) + "\")");
  if (spec.kind == SnapshotKind::kReflink) {
    uint64_t type = 0;
    try {
      type = env->FileSystemType(spec.source);
    } catch (const Error&) {
      return out;  // a missing source is said where sources are checked
    }
    for (const auto& [magic, name] : kCannotClone)
      if (type == magic)
        out.push_back(what + "the file system of " + spec.source + " (" + name +
                      ") cannot make reflink copies; use snapshot = \"lvm\" or \"btrfs\" for this volume, "
                      "or \"none\" if its data is quiet while it is read");
  }
  return out;
}

std::string PlannedJournalRecord(const SnapshotSpec& spec) {
  Target t;
  t.kind = spec.kind;
  t.volume = spec.volume;
  t.source = StripTrailingSlashes(spec.source);
  t.target = SnapshotPath(spec);
  return Record(t);
}

std::unique_ptr<Snapshot> TakeSnapshot(Env* env, const SnapshotSpec& spec, Logger* log,
                                       const RunLimits& limits) {
  Target t;
  t.kind = spec.kind;
  t.volume = spec.volume;
  t.source = StripTrailingSlashes(spec.source);
  const std::string what = "volume " + spec.volume + ": ";
  if (t.source.empty()) ThrowConfig(what + "no source to snapshot");

  if (spec.kind == SnapshotKind::kNone || spec.kind == SnapshotKind::kLibvirt) {
    // libvirt: the source is read where it is; the job reads the disk of
    // each running VM on it from the VM's pull-mode backup instead.
    // Whether a live read is meant is the job's to say (a choice in the
    // config, or a default with VMs running on the volume): not said here.
    t.target = t.source;
    return std::make_unique<SnapshotImpl>(env, t, t.source, log);
  }

  if (spec.volume.empty() || spec.volume.find('/') != std::string::npos)
    ThrowConfig(what + "a volume name for a snapshot must be non-empty and without '/'");
  if (spec.run_id.empty() || spec.run_id.find('/') != std::string::npos)
    ThrowConfig(what + "a snapshot needs a run id without '/'");
  // The journal's reader accepts no other form (CheckLeftoverRecord).
  if (!IsPlainAbsolutePath(t.source))
    ThrowConfig(what + "the source of a snapshot must be an absolute path without '.', '..' or '//': " +
                t.source);
  const std::string kind = SnapshotKindName(spec.kind);
  t.target = SnapshotPath(spec);
  std::string path;
  try {
    switch (spec.kind) {
      case SnapshotKind::kLvm: {
        std::string name = BaseName(t.target);
        if (!IsLvmName(name))
          ThrowConfig("\"" + name + "\" is not a valid LVM name (letters, digits, + _ . -)");
        if (DirName(t.source) == "/dev/mapper")
          ThrowConfig("name the LV as /dev/VG/LV, not " + t.source);
        std::vector<std::string> argv = {"lvm", "lvcreate", "-s", "-n", name, "-L", spec.size,
                                         "--", t.source};
        RunResult r = RunCommand(env, argv, log, limits);
        if (r.exit_code != 0) {
          throw Error(Contains(r.err, "insufficient free space") ? ErrorKind::kNoSpace
                                                                 : ErrorKind::kOther,
                      DescribeFailure(argv, r));
        }
        path = t.target;
        break;
      }
      case SnapshotKind::kBtrfs: {
        // Inside the source subvolume: the one place sure to be in its file
        // system when it is mounted on its own. btrfs would put the
        // snapshot inside an existing directory.
        if (env->Exists(t.target))
          throw Error(ErrorKind::kOther,
                      t.target + " exists already (left over from a crashed run?)");
        std::vector<std::string> argv = {"btrfs", "subvolume", "snapshot", "-r", "--", t.source,
                                         t.target};
        RunResult r = RunCommand(env, argv, log, limits);
        if (r.exit_code != 0) throw Error(ErrorKind::kOther, DescribeFailure(argv, r));
        path = t.target;
        break;
      }
      case SnapshotKind::kReflink:
        path = TakeReflink(env, t, log, limits);
        break;
      case SnapshotKind::kNone:
      case SnapshotKind::kLibvirt:
        break;
    }
  } catch (const Error& e) {
    throw Error(e.kind(), what + "cannot take " + kind + " snapshot of " + t.source + ": " +
                              e.what());
  }
  if (log) log->Info(what + "took " + kind + " snapshot " + path);
  return std::make_unique<SnapshotImpl>(env, t, path, log);
}


namespace {

Target ParseRecord(const std::string& journal_record) {
  Target t;
  try {
    nlohmann::json j = nlohmann::json::parse(journal_record);
    t.kind = ParseSnapshotKind(j.at("snapshot").get<std::string>());
    t.volume = j.at("volume").get<std::string>();
    t.source = j.at("source").get<std::string>();
    t.target = j.at("target").get<std::string>();
  } catch (const std::exception& e) {
    ThrowCorrupt("bad snapshot journal record '" + journal_record + "': " + e.what());
  }
  return t;
}

void CheckRecord(const Target& t, const std::string& journal_record, const std::string& run_id) {
  auto refuse = [&](const std::string& why) {
    ThrowCorrupt("refusing snapshot journal record '" + journal_record + "': " + why +
                 "; vmback did not write it, nothing done with it");
  };
  if (t.target.empty()) refuse("no target");
  if (t.kind == SnapshotKind::kNone || t.kind == SnapshotKind::kLibvirt) return;  // nothing is ever done for it
  if (!IsPlainAbsolutePath(t.source)) refuse("source " + t.source + " is not a plain absolute path");
  if (t.volume.empty() || t.volume.find('/') != std::string::npos || t.volume == "." || t.volume == "..")
    refuse("bad volume name");
  if (run_id.empty() || run_id.find('/') != std::string::npos)
    refuse("the journal names no run (or a bad one)");
  const bool lvm = t.kind == SnapshotKind::kLvm;
  const std::string name = (lvm ? std::string("vmback-") : std::string(kSnapshotPrefix)) + t.volume + "-" + run_id;
  // btrfs and reflink: inside a directory source, beside a file (and beside
  // any source in the journals of earlier versions).
  const std::string beside = JoinPath(DirName(t.source), name);
  const std::string inside = JoinPath(t.source, name);
  if (t.target != beside && (lvm || t.target != inside))
    refuse("target " + t.target + " is not " + beside +
           (lvm ? " (the snapshot vmback names beside its source for this run)"
                : " or " + inside + " (the snapshot vmback names beside or inside its source for this run)"));
  if (t.kind == SnapshotKind::kLvm && !IsLvmName(name)) refuse("not an LVM name: " + name);
}

}  // namespace

void CheckLeftoverRecord(const std::string& journal_record, const std::string& run_id) {
  CheckRecord(ParseRecord(journal_record), journal_record, run_id);
}

void DropLeftoverSnapshot(Env* env, const std::string& journal_record, const std::string& run_id,
                          Logger* log) {
  Target t = ParseRecord(journal_record);
  CheckRecord(t, journal_record, run_id);
  DropTarget(env, t, log, /*leftover=*/true);
}

}  // namespace vmback
