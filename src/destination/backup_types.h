// What a backup into any destination (the built-in store, run/backup.h; an
// in-place target, inplace/target_ops.h) takes and gives: the volumes, the
// options, and the figures per volume and per point.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/change_set.h"
#include "util/vm_record.h"

namespace vmback {

// How a file is found unchanged since the parent point (and not read).
enum class ChangeCheck {
  // size, mtime, ctime and inode number all equal (restic's and borg's
  // default). The first backup after a point without ctime and inode
  // (written by an older vmback) reads every file once.
  kFull,
  // size and mtime only: for a source whose inodes are new every run
  // (a reflink copy), where ctime and inode never match.
  kSizeMtime,
};

struct VolumeSpec {
  std::string name;    // names the volume inside the point
  std::string source;  // directory, regular file or block device
  bool one_file_system = true;
  ChangeCheck change_check = ChangeCheck::kFull;
  // Not empty: the entries at the top of a directory source whose names
  // start with it are vmback's own (the snapshots it keeps inside a source,
  // kSnapshotPrefix), not the volume's, and are left out (LeaveOutOwnEntry).
  std::string own_prefix = "";
  // Changed-block tracking: asked, for a file whose version in the parent
  // point has its size now, what may have changed since (rel: its path
  // below the source, "" when the source is the file; path: where it is
  // read). A ChangeSet without a list (its why says why), or no function,
  // means the file is read in full. Not asked on a full read (--full-read,
  // full_read_every).
  std::function<ChangeSet(const std::string& rel, const std::string& path)> changes = {};
  // Not empty: the point the change lists are relative to. A destination
  // whose parent for this volume is another point does not use them.
  std::string changes_since = "";
};

struct BackupOptions {
  bool full_read = false;  // read every file, even when it looks unchanged
  // > 0: also a full read when no point of the store this recent (by its
  // time_ns) was one ("full_read" in its stats); [run] full_read_every.
  int64_t full_read_every_ns = 0;
  unsigned threads = 0;    // hashing/compression threads; 0 = one per core
  // Called after volume i has been read in full (before the commit), so
  // that its snapshot can be dropped at once.
  std::function<void(size_t)> on_volume_done;
  // Set (e.g. by a signal handler) to stop the backup soon: it throws
  // Error(kOther, "interrupted") and commits nothing.
  const std::atomic<bool>* cancel = nullptr;
  // I/O niceness: source reads paced to this many bytes/s (0: no limit), and
  // dropped from the page cache behind the reader so that a 100 GB image
  // does not push the host's cache out.
  uint64_t read_limit = 0;
  bool drop_cache = true;
  // Labels for the point (manifest "tags", each IsValidTag): a tagged point
  // is its own retention group, so a one-off never displaces a nightly one.
  std::vector<std::string> tags;
  // The VMs whose disks the point holds (`vmback run`), recorded with it
  // for `restore --vm` and `ls --vms`; each located disk's volume is one of
  // the volumes backed up.
  std::vector<VmRecord> vms;
};

struct VolumeStats {
  std::string name;
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t other = 0;          // symlinks, devices, fifos, sockets
  uint64_t bytes = 0;          // logical size of all files
  uint64_t bytes_read = 0;     // actually read (quick-check skips the rest)
  uint64_t files_reused = 0;   // unchanged by the quick check (ChangeCheck)
  uint64_t blocks = 0;
  uint64_t new_blocks = 0;
  uint64_t zero_blocks = 0;
  uint64_t errors = 0;         // entries that could not be read (logged)
  // Changed-block tracking: files read by a change list, and its method
  // ("dirty-bitmap", "shared-extents"; "full-read" when none was used);
  // why: the first reason a file with a parent version was read in full.
  uint64_t files_by_change_list = 0;
  std::string change_method = "full-read";
  std::string change_why;
  // Written into the destination for this volume: an in-place target's file
  // data; the store's packed bytes when the point has this volume alone
  // (otherwise 0: blocks of several volumes share packs and are deduplicated
  // across them, so the store's figure is only the point's total).
  uint64_t bytes_written = 0;
  double seconds = 0;
};

// The in-place sink's figures for one volume (SyncInPlace, inplace/inplace.h):
// here so that a BackupResult can carry them.
struct InplaceStats {
  uint64_t files = 0;             // regular files (and device sources), every name
  uint64_t dirs = 0;
  uint64_t other = 0;             // symlinks, devices, fifos, sockets
  uint64_t files_skipped = 0;     // unread by the quick check
  uint64_t blocks = 0;            // blocks of the files read
  uint64_t blocks_written = 0;    // blocks written with data (or zeros where no hole could be punched)
  uint64_t bytes_read = 0;        // from the source
  uint64_t target_bytes_read = 0; // from the target (compare mode only)
  uint64_t bytes_written = 0;     // file data written to the target
  uint64_t map_bytes_written = 0; // blockmap bytes written
  uint64_t holes_punched = 0;     // blocks turned into holes
  uint64_t blockmaps_rebuilt = 0; // missing or inconsistent maps replaced via a compare
  uint64_t deleted = 0;           // entries removed from the mirror (each one, recursively)
  uint64_t maps_deleted = 0;      // maps of vanished files removed by the sweep
  uint64_t errors = 0;            // source entries that could not be read (left as they were)
  uint64_t warnings = 0;          // metadata that could not be applied
  // Changed-block tracking, as in VolumeStats: files read by a change list,
  // its method, the first reason a file was read in full instead.
  uint64_t files_by_change_list = 0;
  std::string change_method = "full-read";
  std::string change_why;
};

// What a backup into either destination wrote. The totals mean the same
// for both: all bytes written (the store: compressed, with headers; an
// in-place target: file data and blockmaps), the content bytes among them
// (the store: before compression; in-place: file data), the blocks written
// (the store: new blobs; in-place: changed blocks rewritten).
struct BackupResult {
  std::string point;
  std::vector<VolumeStats> volumes;
  uint64_t bytes_written = 0;       // JSON "bytes_written"
  uint64_t data_bytes_written = 0;  // JSON "raw_bytes_written"
  uint64_t blocks_written = 0;      // JSON "blobs_written"
  uint64_t packs_written = 0;       // the store's new pack files; 0 in place
  // An in-place target: the sink's own figures per volume, in order (JSON
  // "inplace"); empty for the store.
  std::vector<InplaceStats> inplace;
  uint64_t errors = 0;  // >0: the point lacks some entries; exit non-zero
  bool full_read = false;  // every file was read (asked for, or due)
  double seconds = 0;
};

// The "stats" of a point's manifest (or an in-place point's description)
// and the JSON of `vmback backup`; "inplace" only when r.inplace is given.
nlohmann::json BackupResultToJson(const BackupResult& r);

}  // namespace vmback
