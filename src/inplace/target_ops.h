// backup, list, restore, verify and prune on an in-place target (ZFS, btrfs,
// a plain directory; see inplace/target.h): what run/backup.h, restore.h,
// verify.h and prune.h do for the built-in store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retention/policy.h"
#include "destination/backup_types.h"
#include "destination/point_diff.h"
#include "destination/restore_types.h"
#include "inplace/inplace.h"
#include "inplace/target.h"

namespace vmback {

// Mirrors every volume into MIRROR/<name> with the in-place sink (only
// changed blocks written), removes volumes of the previous point that are
// no longer given, records the point's description, makes everything
// durable, then takes the point. A source entry that could not be read
// fails the backup with no point taken (the mirror is repaired by the next
// run). The first backup into a target claims it (.vmback-target); a
// directory or dataset with other content and no marker is refused. The
// result holds the sink's figures per volume in `inplace`. excludes: what
// each volume's tree leaves out, by volume name; what a mirror holds of an
// entry now left out is deleted (as rsync --delete-excluded).
BackupResult BackupToTarget(InplaceTarget* target, Env* env, const std::vector<VolumeSpec>& volumes,
                            const BackupOptions& options, Logger* log, const BackupExcludes& excludes = {});

struct TargetPointInfo {
  std::string name;
  int64_t time_ns = -1;
  std::vector<std::string> volumes;  // empty when not readable without opening the point
};
std::vector<TargetPointInfo> ListTargetPoints(InplaceTarget* target, Env* env);

// A point of the target opened for reading: its name ("latest" resolved),
// its view and the volumes its description lists. Throws kNotFound when
// there is no such point (or none yet), kCorrupt when it has no description.
struct OpenedTargetPoint {
  std::string name;
  std::unique_ptr<PointView> view;
  std::vector<std::string> volumes;
};
OpenedTargetPoint OpenTargetPoint(InplaceTarget* target, Env* env, const std::string& point);

// Where path ("VOLUME" or "VOLUME/dir/name", no trailing slash) of the
// opened point p lies in its view: the file, and the root and relative path
// its blockmap is kept under (a file volume's in the view's root, a tree's
// file's in the tree's). Throws kNotFound for a volume the point does not
// have and for a path into vmback's own files (the blockmaps); kConfig
// (CheckInsidePath) for one that leaves its volume or passes a symlink,
// the volume's own included. path itself is not read.
struct TargetPath {
  std::string file;
  std::string map_root;
  std::string rel;
};
TargetPath ResolveTargetPath(Env* env, const OpenedTargetPoint& p, const std::string& path);
// The entry at path itself (lstat), as ls shows it; kNotFound when it is not there.
PointEntry TargetEntryAt(Env* env, const OpenedTargetPoint& p, const std::string& path);
// ListTargetEntries on a point already opened.
std::vector<PointEntry> ListOpenedTargetPoint(Env* env, const OpenedTargetPoint& p, const std::string& path,
                                              bool recursive);

// What `vmback ls` shows of point (a name, or "latest") below path: the
// point's volumes when path is empty; a directory's children (everything
// below with recursive); a file, link or device itself. Read with lstat,
// never through a symlink; vmback's own files (the blockmaps, the point's
// description) are left out.
std::vector<PointEntry> ListTargetEntries(InplaceTarget* target, Env* env, const std::string& point,
                                          const std::string& path, bool recursive);

// `vmback diff` on the target: the changes from point `from` to point `to`
// below path. A file's content is compared through its blockmaps in the two
// points (entry by entry, no data read); when either is missing or unsound,
// a file whose size or mtime differ has changed by an unknown number of
// bytes, one whose size and mtime are the same counts as unchanged. A path
// in neither point is Error(kNotFound).
PointDiff DiffTargetPoints(InplaceTarget* target, Env* env, const std::string& from, const std::string& to,
                           const std::string& path);

// `vmback find` in one point of the target (a name, or "latest", resolved
// into *resolved): its entries whose path match accepts, each file's
// version a digest of its blockmap's entries (none without a sound
// blockmap). Only the matching files' blockmaps are read.
std::vector<PointEntry> FindTargetEntries(InplaceTarget* target, Env* env, const std::string& point,
                                          const PathMatcher& match, std::string* resolved);

// Restores a whole point (path empty), a volume, or a file or subtree inside
// a tree volume ("VOLUME/dir/file") to `to`. Every file's blocks are checked
// against the blockmap stored in the point: wrong data is never emitted
// silently (kCorrupt, naming file and block). A file restored to a block
// device is written in full (zeros too); to a file, sparse. A tree restored
// over an existing directory (kAllow) is made identical to the point.
// options: as for the store's Restore (--no-owner, --no-special,
// --no-privileges); fail_fast does not apply (a bad block is kCorrupt).
RestoreStats RestoreFromTarget(InplaceTarget* target, Env* env, const std::string& point,
                               const std::string& path, const std::string& to, const RestoreOptions& options,
                               Logger* log);
inline RestoreStats RestoreFromTarget(InplaceTarget* target, Env* env, const std::string& point,
                                      const std::string& path, const std::string& to, Overwrite overwrite,
                                      Logger* log) {
  RestoreOptions options;
  options.overwrite = overwrite;
  return RestoreFromTarget(target, env, point, path, to, options, log);
}

struct TargetVerifyReport {
  ScrubReport scrub;
  uint64_t points = 0;
  uint64_t files = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  std::vector<std::string> problems;  // "POINT: VOLUME/path block N (offset X): ..."
  bool ok() const { return scrub.ok && problems.empty(); }
};

// The file system's scrub, then an end-to-end check of every point: each
// file re-hashed against the blockmap in that point (catches data that was
// written wrong, which the file system's checksums cannot).
TargetVerifyReport VerifyTarget(InplaceTarget* target, Env* env, Logger* log);
nlohmann::json TargetVerifyToJson(const TargetVerifyReport& r);

struct TargetPruneResult {
  std::vector<RetentionDecision> decisions;
  std::vector<std::string> deleted;
};
// Destroys the points the policy does not keep (never one without vmback's
// prefix). A dir target has no history: nothing to do.
TargetPruneResult PruneTarget(InplaceTarget* target, const RetentionPolicy& policy, bool dry_run, Logger* log);

}  // namespace vmback
