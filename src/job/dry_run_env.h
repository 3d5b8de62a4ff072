// The Env a plan runs the job's own steps through (ninja's dry-run command
// runner): what would change anything is written down instead of done, and
// what only looks is done for real.
//
//   - Commands: those that only look (blkid, lvm vgs, lvm lvs) run, and are
//     written down as "(checked: ...)"; every other one is written down and
//     answered with success, its output empty.
//   - Files: making, removing, renaming, linking and cloning are written
//     down and not done; a metadata change (mode, owner, times, xattrs) or a
//     sync is not done and not written down; opening for writing or taking
//     a lock is refused (a plan has no reason to), naming the path.
//   - What the plan made exists, in the plan: a directory made is an empty
//     directory of its parent's file system; a snapshot (lvm lvcreate -s, btrfs
//     subvolume snapshot) and a reflink copy read as what they were made
//     from, so the steps after them (blkid of the snapshot, its mount) go on
//     as in the run.
//
// Every method of Env that changes something is overridden here: one added
// to Env must be added here too (DryRunEnvTest.ChangesNothing).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "os/env.h"

namespace vmback {

class DryRunEnv : public EnvWrapper {
 public:
  explicit DryRunEnv(Env* real) : EnvWrapper(real) {}

  // The steps written down since the last call, one line each, in order.
  std::vector<std::string> TakeSteps();
  bool HasSteps() const { return !steps_.empty(); }

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override;
  // A walk of what a snapshot made in the plan stands for reads its origin.
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override;
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode, mode_t perm) override;
  void Rename(const std::string& from, const std::string& to) override;
  void Remove(const std::string& path) override;
  void MakeDir(const std::string& path) override;
  void SyncDir(const std::string&) override {}
  bool Exists(const std::string& path) override;
  std::vector<std::string> ListDir(const std::string& path) override;
  FileStatus Status(const std::string& path) override;
  FileStatus StatusFollowingLinks(const std::string& path) override;
  void MakeNewDir(const std::string& path) override;
  std::string ReadLink(const std::string& path) override;
  uint64_t FileSystemType(const std::string& path) override;
  void Symlink(const std::string& target, const std::string& path) override;
  void Link(const std::string& existing, const std::string& path) override;
  void MakeNode(const std::string& path, mode_t type, dev_t rdev) override;
  void RemoveDir(const std::string& path) override;
  uint64_t RemoveTree(const std::string& path) override;
  int CloneFile(const std::string& from, const std::string& to,
                const std::function<void()>& between_ranges) override;
  bool SetOwner(const std::string&, uid_t, gid_t) override { return true; }
  void SetTimes(const std::string&, std::optional<int64_t>, int64_t) override {}
  Xattrs ReadXattrs(const std::string& path) override;
  void SetXattr(const std::string&, const std::string&, const std::string&) override {}
  void RemoveXattr(const std::string&, const std::string&) override {}
  void SetMode(const std::string&, mode_t) override {}
  void SetModeNoFollow(const std::string&, mode_t) override {}
  void SyncFileSystem(const std::string&) override {}
  std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) override;
  RunResult Run(const std::vector<std::string>& argv) override;
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) override;
  PipeResult RunPipe(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                     const PipeLimits& limits) override;

 private:
  // The real path behind path: what a snapshot or clone made in the plan
  // was made from (or a path below it); path itself otherwise.
  std::string Real(const std::string& path) const;
  // Whether path is a directory made in the plan (or below one).
  bool Made(const std::string& path) const;
  void Note(const std::string& step) { steps_.push_back(step); }

  std::vector<std::string> steps_;
  std::map<std::string, std::string> stands_for_;  // made in the plan -> what it reads as
  std::set<std::string> made_dirs_;
  std::set<std::string> gone_;  // removed in the plan
};

}  // namespace vmback
