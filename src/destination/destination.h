// Where backups go, as one interface: the built-in store (run/
// store_destination.h) or an in-place target, zfs, btrfs or dir (inplace/
// inplace_destination.h). OpenDestination (run/store_destination.h) opens
// the one a config's [target] names. The commands and `vmback run` talk to
// a Destination and never ask which kind they have; what differs between
// the kinds (a store's copies and garbage collection, a file system's
// scrub) is inside the results, typed, or absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "destination/backup_types.h"
#include "destination/point_diff.h"
#include "destination/point_reader.h"
#include "destination/restore_types.h"
#include "os/env.h"
#include "retention/policy.h"
#include "store/gc.h"
#include "util/log.h"

namespace vmback {

// What a command is going to do with the destination: how a store is
// opened (the in-place targets lock per operation).
enum class DestinationAccess {
  kRead,    // list, restore, verify (a store: shared lock; backups go on beside)
  kBackup,  // backup, run (a store: append lock, its copies brought in line first)
  kPrune,   // prune (a store: exclusive lock)
};

// One point as `list` shows it.
struct PointSummary {
  std::string name;
  std::string time;     // UTC, as recorded; "" when not known
  int64_t time_ns = 0;  // -1: not known (an in-place point)
  std::vector<std::string> volumes;
  // A store's points only; an in-place target's carry neither.
  std::optional<std::vector<std::string>> tags;
  // The backup's statistics as its manifest records them (their fields
  // differ between versions of vmback: shown as recorded, not re-typed).
  std::optional<nlohmann::json> stats;
};

struct PointList {
  std::string where;                 // the store's directory, or the target's description
  std::vector<PointSummary> points;  // oldest first
};

struct PruneRequest {
  bool dry_run = false;
  double repack_below = 0.5;  // a store's GC: repack a pack whose live share is below this
  // A store: damaged files heal set aside (*.bad-<ns>) longer ago than this
  // are removed ([store] keep_bad).
  int64_t keep_bad_ns = 30LL * 24 * 3600 * 1000000000;
  // Opened kBackup (the prune after `vmback run`'s backup): seconds to wait
  // for readers of a store to leave; then the prune is skipped with a
  // warning (PruneSummary::skipped).
  double lock_wait_seconds = 60;
};

// What `prune` decided and did.
struct PruneSummary {
  bool dry_run = false;
  bool skipped = false;  // not pruned this time (readers held the store); a warning was logged
  std::vector<RetentionDecision> decisions;  // newest first
  std::vector<std::string> deleted;
  std::optional<GcStats> gc;  // a store's garbage collection; none for an in-place target
  // A store: the damaged files set aside that were removed (would be, with
  // dry_run), older than keep_bad_ns.
  std::vector<SetAsideFile> set_aside_removed;
  int64_t keep_bad_ns = 0;
};

struct VerifyRequest {
  std::string read_data_subset;  // a store's "N/M", "auto/M", "P%"; empty: every pack
  uint64_t read_limit = 0;       // a store: bytes/s per copy; 0: no limit
};

// What `verify` found, in the destination's own words (JSON and text) and
// as the facts the exit status and the metrics are made of.
struct VerifyOutcome {
  nlohmann::json json;        // the report (--json, the report file)
  std::string text;           // the report for people, lines ending in '\n'
  uint64_t errors = 0;        // problems found (vmback_verify_errors)
  bool ok = true;             // nothing damaged or missing
  uint64_t repaired = 0;      // copies or blocks healed from another copy or disk
  bool not_healed = false;    // something to heal was left (the store was busy)
  bool blocks_lost = false;   // points hold blocks recorded lost by 'vmback repair'
};

// The state of the destination's copies after an operation (a store's
// mirrors; an in-place target has one copy, or the file system's own).
struct CopyHealth {
  uint64_t repairs = 0;        // damaged copies repaired from another while reading
  uint64_t absent_copies = 0;  // copies that were not there
};

// What `vmback stats` found, in the destination's own words.
struct DestinationStats {
  nlohmann::json json;  // --json
  std::string text;     // for people, lines ending in '\n'
};

// Not thread-safe: one operation at a time. Each operation throws
// vmback::Error as the store's and the in-place operations do (run/*.h,
// inplace/target_ops.h), naming the file, point or command at fault.
class Destination {
 public:
  virtual ~Destination() = default;

  // For messages: the store's directory, or "zfs dataset pool/x", ...
  virtual std::string Describe() const = 0;
  // As the vmback_points metric labels it: the store's path, or
  // KIND:PATH (KIND:DATASET for zfs).
  virtual std::string MetricLabel() const = 0;
  // True when points carry tags (`backup --tag`): the store only.
  virtual bool TakesTags() const = 0;

  // Backs up volumes as one new point and returns what was read and written.
  // REQUIRES: opened DestinationAccess::kBackup.
  virtual BackupResult Backup(const std::vector<VolumeSpec>& volumes, const BackupOptions& options,
                              Logger* log) = 0;
  // The names of the points, oldest first: cheap (no point read).
  virtual std::vector<std::string> PointNames() = 0;
  // The points, each described (a store's manifests read and checked).
  virtual PointList ListPoints() = 0;
  // Restores a whole point (path empty), a volume, or a file or subtree
  // ("VOLUME/dir/file") of point (a name, or "latest") to `to`.
  virtual RestoreStats Restore(const std::string& point, const std::string& path, const std::string& to,
                               const RestoreOptions& options, Logger* log) = 0;
  // What `vmback ls` shows of point (a name, or "latest") below path
  // ("VOLUME[/dir]"; empty: the point's volumes): a directory's entries
  // (everything below it with recursive), or a file, link or device itself.
  virtual std::vector<PointEntry> ListEntries(const std::string& point, const std::string& path,
                                              bool recursive) = 0;
  // What `vmback diff` shows: the changes from point `from` to point `to`
  // (names, or "latest") below path (as for ListEntries; empty: the whole
  // points), in path order. A changed file's changed blocks come from the
  // block lists or blockmaps of the two points, never from its data.
  virtual PointDiff Diff(const std::string& from, const std::string& to, const std::string& path) = 0;
  // What `vmback find` looks at: the entries of point (a name, or "latest",
  // resolved into *resolved) whose path the glob pattern matches
  // (GlobMatch, destination/point_find.h), each file with its content's
  // version (PointEntry::version). A store remembers the matches below
  // each directory for the next call with the same pattern: a directory
  // unchanged between points is read once.
  virtual std::vector<PointEntry> FindEntries(const std::string& point, const std::string& pattern,
                                              std::string* resolved) = 0;
  // Checks every point end to end (and the copies or the file system's
  // scrub). May heal from another copy.
  virtual VerifyOutcome Verify(const VerifyRequest& request, Logger* log) = 0;
  // Deletes the points policy does not keep (an empty policy is kConfig).
  virtual PruneSummary Prune(const RetentionPolicy& policy, const PruneRequest& request, Logger* log) = 0;
  // What the operations so far found of the copies.
  virtual CopyHealth Health() const = 0;
  // Whether the warnings a restore logs make it "done, with warnings" (exit
  // 5): an in-place target's do; a store's restore counts the repairs of its
  // copies instead (Health()), as vmback always has.
  virtual bool RestoreWarningsCount() const = 0;
  // `vmback dump`: the regular file at path ("VOLUME" or "VOLUME/dir/file")
  // of point (a name, or "latest") written to out from its first byte to
  // its last, in order (a StreamFile: holes and zero blocks as zeros), each
  // block checked as restore checks it. A block that cannot be read or is
  // wrong stops it with Error (kCorrupt) naming the file and the bytes:
  // what out holds then is incomplete. A directory, link or device is
  // refused (ThrowNotDumpable). Returns the file's size.
  virtual uint64_t Dump(const std::string& point, const std::string& path, WritableFile* out, Logger* log) = 0;
  // `vmback stats` of points (names or "latest"; empty: all of them): a
  // store's sizes, ratios and the bytes unique to each point; an in-place
  // target's, as its file system reports them.
  virtual DestinationStats Stats(const std::vector<std::string>& points, Logger* log) = 0;
  // `vmback mount`: point (a name, or "latest") opened for reading until the
  // reader goes (an in-place target's ZFS point: a clone, destroyed then).
  // Blocks read through it are cached in memory, up to cache_bytes for the
  // reader and all its files together. log takes a warning for each damaged
  // block read, naming the file and its bytes.
  virtual std::unique_ptr<PointReader> OpenPointReader(const std::string& point, uint64_t cache_bytes,
                                                       Logger* log) = 0;
  // The VMs point (a name, or "latest", resolved into *resolved) records
  // (BackupOptions::vms), checked where they are decoded: Error(kCorrupt)
  // naming the point when a record is damaged or forged. Empty for a point
  // made without VMs ('vmback backup', or an older vmback).
  virtual std::vector<VmRecord> PointVms(const std::string& point, std::string* resolved) = 0;
};

// Throws Error(kConfig) when tags are given for a destination whose points
// carry none (an in-place target's are file system snapshots).
void CheckTags(const Destination& d, const std::vector<std::string>& tags);

}  // namespace vmback
