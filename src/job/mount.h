// The read-only mount of a file-system volume's snapshot (mode =
// "filesystem" on an LVM snapshot), and the probe that tells its type.
#pragma once

#include <atomic>
#include <string>

#include "job/journal.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

// Limits that end a command when *cancel is set (no deadline of its own).
RunLimits Cancellable(const std::atomic<bool>* cancel);

// The file system type blkid finds on device ("" if none), probing the
// device itself (-p: no cache). A type of a form no file system has is
// refused: it is passed to fsck -t and mount -t.
std::string ProbeFsType(Env* env, const std::string& device, const std::atomic<bool>* cancel);

// A read-only mount of a snapshot, undone on every path. The guest's file
// system is hostile: mounted nosuid,nodev,noexec, with the type blkid found
// (the kernel does not try every type on guest-made bytes), and XFS with
// nouuid (a snapshot has the UUID of its mounted origin). Every command runs
// through env, so that a plan (a dry-run Env) prints the very commands.
class Mount {
 public:
  // Nothing is done yet: Make mounts. Held before Make, so that a mount
  // command killed half-way (a signal) is undone by Unmount all the same.
  // journal may be null (a plan): nothing is recorded.
  Mount(Env* env, Journal* journal, const std::string& dir, Logger* log)
      : env_(env), journal_(journal), dir_(dir), log_(log) {}
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount();
  // fsck, then mount device read-only on dir. Commands end on cancel.
  void Make(const std::string& device, const std::atomic<bool>* cancel);
  // Not cancellable: it is the clean-up. "Not mounted" counts as done.
  void Unmount();
  const std::string& dir() const { return dir_; }

 private:
  void Record(const char* op);

  Env* env_;
  Journal* journal_;
  std::string dir_;
  Logger* log_;
  bool mounted_ = false;
};

}  // namespace vmback
