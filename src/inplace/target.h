// In-place targets: a directory on a file system that keeps its own history
// (ZFS, btrfs) or none (a plain directory), into which the in-place sink
// (inplace.h) mirrors the volumes. One layout on all three:
//
//   MIRROR/.vmback-target          marker: this directory belongs to vmback
//   MIRROR/.vmback-point.json      the point being built: time, volumes, stats
//   MIRROR/<volume>                a file (image, device) or a tree
//   MIRROR/.vmback-blockmaps/      maps of the file volumes
//   MIRROR/<volume>/.vmback-blockmaps/   maps of a tree volume
//
// A point is a read-only copy of MIRROR taken after a complete, durable sync:
//   zfs    DATASET@<prefix><UTC time>, a snapshot; read through a temporary
//          clone (works also where .zfs/snapshot is not available)
//   btrfs  <parent of the subvolume>/<prefix><UTC time>, a read-only snapshot
//   dir    no history: the mirror itself is the one point, "current"
// vmback only ever lists and destroys snapshots that carry its prefix.
// File-system commands run through Env::Run (argv, no shell).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

inline constexpr const char* kTargetMarker = ".vmback-target";
inline constexpr const char* kPointInfo = ".vmback-point.json";
inline constexpr const char* kDirPointName = "current";

// A point opened for reading; the destructor undoes whatever opening took
// (a ZFS clone is destroyed).
class PointView {
 public:
  virtual ~PointView() = default;
  virtual const std::string& root() const = 0;  // the point's copy of MIRROR
};

struct ScrubReport {
  bool ran = false;           // false: this target has no scrub (dir)
  bool ok = true;             // no unrepaired errors
  uint64_t repaired = 0;      // errors the file system repaired from its redundancy
  uint64_t unrepaired = 0;
  std::string summary;        // one line for humans
  std::string details;        // the file system's own report
};

class InplaceTarget {
 public:
  virtual ~InplaceTarget() = default;
  virtual std::string kind() const = 0;         // "zfs", "btrfs", "dir"
  virtual std::string describe() const = 0;     // names the dataset or path, for messages
  virtual const std::string& mirror_dir() const = 0;
  virtual uint32_t block_size() const = 0;
  virtual bool punch_holes() const { return true; }
  virtual bool has_history() const { return true; }
  // Takes a point of the mirror as it is now (the caller made it durable).
  virtual std::string CreatePoint() = 0;
  // The points, oldest first; only those with vmback's prefix.
  virtual std::vector<std::string> ListPoints() = 0;
  // Throws kConfig for a name without vmback's prefix.
  virtual void DeletePoint(const std::string& name) = 0;
  // Points the file system will not let go (a ZFS hold: the base of a
  // replica's next send, zfs_replicate.h): prune keeps them.
  virtual std::set<std::string> HeldPoints() { return {}; }
  virtual std::unique_ptr<PointView> OpenPoint(const std::string& name) = 0;
  // The file system's own check of every copy of every block.
  virtual ScrubReport Scrub() = 0;
  // The point's time (ns since the epoch, UTC), from its name.
  virtual int64_t PointTime(const std::string& name) const = 0;
};

// Opens the target of a config whose type is zfs, btrfs or dir. Checks that
// it exists and is what it claims (a mounted ZFS dataset, a btrfs subvolume,
// a directory) and throws a clear kConfig/kNotFound error otherwise.
std::unique_ptr<InplaceTarget> OpenInplaceTarget(Env* env, const TargetConfig& config, Logger* log);


// The mount options a mount holding guest files should have (nodev, nosuid,
// noexec) that the mount of `path` lacks, read from mountinfo_text (the
// content of /proc/self/mountinfo); empty when it has them all or no mount
// could be found. For tests too.
std::vector<std::string> MissingMountOptions(const std::string& mountinfo_text, const std::string& path,
                                             std::string* mount_point);

// For plan and verify: a dir or btrfs target whose mount lacks nodev,
// nosuid or noexec keeps the guests' device nodes and setuid files live on
// the host: one warning, naming the mount and the options to add. (ZFS
// targets get devices=off setuid=off exec=off at init.)
void WarnAboutMountOptions(const InplaceTarget& target, Logger* log);

// Parses `zpool status` output: the devices' CKSUM/READ/WRITE counters and
// the scrub line. For tests too.
ScrubReport ParseZpoolStatus(const std::string& text);
// Parses `btrfs scrub start -B` output.
ScrubReport ParseBtrfsScrub(const std::string& text);

// The commands `vmback target init zfs POOL DEV...` runs: a pool mirrored
// over the devices, compression on, sha256 checksums, one dataset POOL/vmback.
std::vector<std::vector<std::string>> ZfsInitCommands(const std::string& pool,
                                                      const std::vector<std::string>& devices,
                                                      const std::string& mountpoint);

}  // namespace vmback
