// What a restore from any destination (the built-in store, run/restore.h; an
// in-place target, inplace/target_ops.h) takes and gives.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/tree.h"

namespace vmback {

// What a restore does with a destination that exists. A file restored is
// always written under a temporary name and renamed when complete
// (os/dir.h PendingFile).
enum class Overwrite {
  kRefuse,  // an existing destination (but an empty directory) is refused
  kAllow,   // --force: merged; what the point has replaces what is there, the rest stays
  kDelete,  // --delete: made exactly the point; what the point lacks is removed too
};

// What a restore applies beside the content. The default is a faithful
// restore for disaster recovery (owners, setuid bits, device nodes, every
// xattr); the others are for restoring a stranger's files as root.
struct RestoreOptions {
  Overwrite overwrite = Overwrite::kRefuse;
  bool owner = true;       // false (--no-owner): files belong to the restoring user
  bool special = true;     // false (--no-special): no device nodes, fifos or sockets
  bool privileges = true;  // false (--no-privileges): no setuid/setgid bits, no security.* xattrs
  // Damage (a block, block list or directory no copy can give back) stops
  // the restore at once (--fail-fast), instead of being left zero, listed in
  // RestoreStats::damage, and the restore going on.
  bool fail_fast = false;
  // The path restored must be one regular file (an image): a whole point, a
  // directory or anything else is refused (ThrowNotOneImage) before anything
  // is written. Set by `restore --format qcow2` (destination/image_format.h).
  bool one_file = false;
  // Set (by a signal, SignalCancel): the restore stops before the next block
  // with Error "restore interrupted by a signal" (CheckRestoreCancel). May be
  // null. Set by `restore --format qcow2`, whose caller removes what it wrote.
  const std::atomic<bool>* cancel = nullptr;
};

// Throws Error(kOther) "restore interrupted by a signal (writing <dest>)"
// when cancel is set.
void CheckRestoreCancel(const std::atomic<bool>* cancel, const std::string& dest);

// Throws Error(kConfig): `path` of `point` is not one image file, so
// `--format qcow2` cannot convert it. path "": the whole point; else what it
// is ("a directory").
// Throws Error(kNotFound): point has no volume named volume; lists those it
// has.
[[noreturn]] void ThrowNoSuchVolume(const std::string& point, const std::string& volume,
                                    const std::vector<std::string>& volumes);

// A PATH of a point as a user may write it: "/src/etc/passwd" is
// "src/etc/passwd" (the volumes are the point's top).
std::string PointPath(std::string path);

[[noreturn]] void ThrowNotOneImage(const std::string& path, const std::string& point, const std::string& what);

struct RestoreStats {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t other = 0;
  uint64_t bytes = 0;
  uint64_t warnings = 0;  // metadata that could not be applied (e.g. chown as non-root)
  uint64_t skipped = 0;   // special files left out (RestoreOptions::special)
  uint64_t removed = 0;   // entries removed that the point lacks (Overwrite::kDelete)
  // What could not be restored: one line per lost range of a file (its
  // path, byte range and why) or lost directory listing; at most 1000 lines,
  // `damaged` counts them all. Non-empty means the restore is incomplete.
  std::vector<std::string> damage;
  uint64_t damaged = 0;
};

// One entry of a point as `vmback ls` shows it.
struct PointEntry {
  std::string path;  // in the point: "VOLUME", "VOLUME/dir/name" (raw bytes)
  std::string type;  // file, dir, symlink, chardev, blockdev, fifo, socket
  uint32_t mode = 0; // permission bits with setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0; // files
  int64_t mtime_ns = 0;
  std::string target;  // symlinks
  // Files: a digest of the content's block ids (the store: of its block
  // lists; an in-place target: of its blockmap), hex; equal versions, equal
  // content. Empty when not known (not read for ls on an in-place target).
  std::string version;
};

// e (a directory entry of a point, or a volume's root) at path.
PointEntry PointEntryOf(const Entry& e, const std::string& path);
// As `ls --json` shows an entry: path (path_hex when not UTF-8), type, mode,
// uid, gid, size, mtime, mtime_ns, and a symlink's target.
nlohmann::json PointEntryToJson(const PointEntry& e);
nlohmann::json PointEntriesToJson(const std::vector<PointEntry>& entries);

}  // namespace vmback
