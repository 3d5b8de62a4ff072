// An Env that forwards to another and injects faults, for tests: an errno
// (EIO, ENOSPC) at the Nth write step or read, a short write before it, or a
// simulated crash after the Nth write step, after which every further write
// step fails as if the process were gone. A "write step" is any call that
// changes the disk: Append, WriteAt, Truncate, PunchHole, Sync, Close,
// Rename, Remove, RemoveDir, MakeDir, MakeNewDir, MakeNode, SyncDir,
// SyncFileSystem, Symlink, Link, CloneFile, and opening a file for writing.
// A "metadata step" (SetOwner, SetMode, SetModeNoFollow, SetTimes, SetXattr,
// RemoveXattr) is counted apart, so that adding one shifts no write step:
// an errno at the Nth.
#pragma once

#include <atomic>
#include <memory>

#include "os/env.h"

namespace vmback {

struct FaultPlan {
  // 1-based index of the write step that fails; 0 = never.
  int64_t fail_write_at = 0;
  int write_errno = 0;           // errno for the failing write; 0 = crash
  bool fail_every_write_after = false;  // the disk stays broken (ENOSPC)
  int64_t fail_read_at = 0;      // 1-based index of the failing ReadAt
  int read_errno = 5;            // EIO
  int64_t fail_metadata_at = 0;  // 1-based index of the failing metadata step
  int metadata_errno = 5;        // EIO
};

class FaultEnv final : public EnvWrapper {
 public:
  FaultEnv(Env* base, FaultPlan plan) : EnvWrapper(base), plan_(plan) {}

  int64_t write_steps() const { return writes_.load(); }
  int64_t reads() const { return reads_.load(); }
  int64_t metadata_steps() const { return metadata_.load(); }
  bool crashed() const { return crashed_.load(); }

  // Called by the wrapped files before each step; throws when due.
  void BeforeWrite(const std::string& what);
  void BeforeRead(const std::string& what);
  void BeforeMetadata(const std::string& what);

  // Write steps.
  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override;
  // Its files (and those of the directories below) read as OpenRead's.
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override;
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode,
                                          mode_t perm) override;
  void Rename(const std::string& from, const std::string& to) override;
  void Remove(const std::string& path) override;
  void MakeDir(const std::string& path) override;
  void SyncDir(const std::string& path) override;
  void MakeNewDir(const std::string& path) override;
  void Symlink(const std::string& target, const std::string& path) override;
  void Link(const std::string& existing, const std::string& path) override;
  void MakeNode(const std::string& path, mode_t type, dev_t rdev) override;
  void RemoveDir(const std::string& path) override;
  void SyncFileSystem(const std::string& path) override;
  int CloneFile(const std::string& from, const std::string& to,
                const std::function<void()>& between_ranges) override;
  // Metadata steps, not write steps: a metadata change moves no data.
  void SetMode(const std::string& path, mode_t mode) override;
  void SetModeNoFollow(const std::string& path, mode_t mode) override;
  void SetXattr(const std::string& path, const std::string& name, const std::string& value) override;
  void RemoveXattr(const std::string& path, const std::string& name) override;
  bool SetOwner(const std::string& path, uid_t uid, gid_t gid) override;
  void SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) override;

  // True when the step about to happen should be cut short (a short write).
  bool ShortWriteDue() const;

 private:
  FaultPlan plan_;
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> reads_{0};
  std::atomic<int64_t> metadata_{0};
  std::atomic<bool> crashed_{false};
};

}  // namespace vmback
