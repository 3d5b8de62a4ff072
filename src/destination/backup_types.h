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

#include "store/store.h"

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
  double seconds = 0;
};

struct BackupResult {
  std::string point;
  std::vector<VolumeStats> volumes;
  StoreWriteStats store;
  uint64_t errors = 0;  // >0: the point lacks some entries; exit non-zero
  bool full_read = false;  // every file was read (asked for, or due)
  double seconds = 0;
};

// The "stats" of a point's manifest and the JSON of `vmback backup`.
nlohmann::json BackupResultToJson(const BackupResult& r);

}  // namespace vmback
