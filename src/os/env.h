// The one seam between vmback and the operating system, after leveldb's Env:
// files, directories and their fsync, renames, locks, subprocesses and the
// clock. PosixEnv is the real thing; FaultEnv (tests/helpers/fault_env.h, an
// EnvWrapper) wraps it to inject EIO, ENOSPC, short writes and "crash after
// the Nth write" in tests.
//
// Every method throws vmback::Error naming the path on failure. No method
// ever reports a failure as an empty result (a listing that failed is not an
// empty directory).
//
// Symlinks: no method follows a symlink in the last component of a path
// (O_NOFOLLOW, lstat, rename and unlink act on the link itself); a symlink
// where a file or directory is expected is an error naming it. A path the
// user gave may contain symlinks: resolve it once (CanonicalPath) and build
// the paths below it from the result. (The one exception, for writing to a
// block device through its /dev/VG/LV link, is OpenWrite's kExisting.)
//
// Modes: files are created 0600 and directories 0700 unless a caller asks
// for more; the umask of the process applies on top.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "os/large_memory.h"
#include "util/clock.h"

namespace vmback {

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to n bytes at offset, looping over short reads; fewer than n
  // only at end of file.
  virtual size_t ReadAt(uint64_t offset, void* buf, size_t n) = 0;
  // Size in bytes (also for block devices).
  virtual uint64_t Size() = 0;
  // SEEK_DATA / SEEK_HOLE: the next data (hole) offset at or after offset,
  // Size() when there is none. Where unsupported, data is everywhere.
  virtual uint64_t NextData(uint64_t offset) = 0;
  virtual uint64_t NextHole(uint64_t offset) = 0;
  // Tells the kernel the range will not be read again (page cache).
  virtual void DropCache(uint64_t offset, uint64_t len) = 0;
  // For a caller that issues its own large reads of data regions only: no
  // kernel read-ahead, which in a sparse file would drag in (and zero-fill)
  // the holes around the data.
  virtual void DisableReadahead() {}
  // Tells the kernel the range will be read soon (posix_fadvise WILLNEED):
  // it starts reading it in the background and returns. A hint only.
  virtual void WillNeed(uint64_t offset, uint64_t len) {}
  virtual const std::string& path() const = 0;
};

// What lstat(2) says of a path: the symlink itself, never its target.
enum class FileKind { kMissing, kFile, kDir, kSymlink, kOther };
struct FileStatus {
  FileKind kind = FileKind::kMissing;
  mode_t mode = 0;  // permission bits, st_mode & 07777
  mode_t type = 0;  // st_mode & S_IFMT (tells a block device from the other kOther)
  dev_t dev = 0;    // the device of the file system holding it
  ino_t ino = 0;
  nlink_t nlink = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;  // st_size (a symlink: the length of its target)
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  dev_t rdev = 0;  // a device node's number
};

// Extended attributes (name, value), sorted by name.
using Xattrs = std::vector<std::pair<std::string, std::string>>;

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void Append(const void* data, size_t n) = 0;
  virtual void WriteAt(uint64_t offset, const void* data, size_t n) = 0;
  virtual void Truncate(uint64_t size) = 0;
  virtual void Sync() = 0;
  // Deallocates [offset, offset+len) (fallocate PUNCH_HOLE|KEEP_SIZE): the
  // range reads as zeros, the size is unchanged. Returns false when the
  // file system cannot punch holes (EOPNOTSUPP, ENOSYS); other failures
  // throw "punch a hole in <path>". A write step for FaultEnv.
  virtual bool PunchHole(uint64_t offset, uint64_t len) {
    (void)offset;
    (void)len;
    return false;
  }
  // For a caller that writes a large file once, in large runs (restore of
  // an image): asks that writes from now on bypass the page cache
  // (O_DIRECT), so that nothing is copied into the cache and the final
  // fsync has nothing left to write. Returns the alignment a write's
  // offset, length and buffer address need to go direct; any other write
  // still works, through the cache (and ends the direct writes). 0: the
  // file stays cached (the file system cannot, or it is no file). What is
  // durable is still only what Sync (or a syncfs) made so. Wrappers keep
  // their files cached (not forwarded).
  virtual size_t EnableDirectWrites() { return 0; }
  // A hint: the file will be about this many bytes. A file held in memory
  // until it is sent (a copy in a bucket) allocates it once instead of
  // growing; a file on disk ignores it.
  virtual void ExpectSize(uint64_t bytes) { (void)bytes; }
  // Closes and reports a failed close (it can carry a delayed write error).
  virtual void Close() = 0;
  virtual const std::string& path() const = 0;

  // The file's own metadata through its open descriptor (fstat, flistxattr,
  // fchown, fchmod, fsetxattr, fremovexattr, futimens), for a file just
  // written: no path looked up again. Only where MetadataByDescriptor() is
  // true (a file on disk); elsewhere they throw. As Env's calls of the same
  // names: SetOwner false for EPERM, SetMtime leaves the access time.
  virtual bool MetadataByDescriptor() const { return false; }
  virtual FileStatus Status() { NoMetadata(); }
  virtual Xattrs ReadXattrs() { NoMetadata(); }
  virtual bool SetOwner(uid_t uid, gid_t gid) {
    (void)uid;
    (void)gid;
    NoMetadata();
  }
  virtual void SetMode(mode_t mode) {
    (void)mode;
    NoMetadata();
  }
  virtual void SetXattr(const std::string& name, const std::string& value) {
    (void)name;
    (void)value;
    NoMetadata();
  }
  virtual void RemoveXattr(const std::string& name) {
    (void)name;
    NoMetadata();
  }
  virtual void SetMtime(int64_t mtime_ns) {
    (void)mtime_ns;
    NoMetadata();
  }

 private:
  [[noreturn]] void NoMetadata() const;
};

// Held for as long as the object lives; released by the kernel if the process
// dies, so a lock is never left stale.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class CreateMode { kExclusive, kTruncate, kExisting };
// Env::Lock takes kShared or kExclusive (flock). kAppend is a store's mode
// only (Store::Open): one writer that adds points (backup) while readers
// (list, restore, verify's check) go on; Env::Lock refuses it.
enum class LockMode { kShared, kExclusive, kAppend };

// One extent of a file's data as the file system maps it (FIEMAP): bytes
// [logical, logical + length) of the file are at [physical, ...) on the
// device; flags are FIEMAP_EXTENT_* (linux/fiemap.h).
struct FileExtent {
  uint64_t logical = 0;
  uint64_t physical = 0;
  uint64_t length = 0;
  uint32_t flags = 0;
};


// A directory open for reading, for walking a source tree: each child is
// named by one component (no '/', not "." or "..": refused) and looked up
// relative to the open directory, never following a symlink there
// (fstatat AT_SYMLINK_NOFOLLOW, openat O_NOFOLLOW). So a tree's path is
// resolved once, at its top, each name costs one short lookup instead of a
// walk of the whole path, and a directory a local user swaps for a symlink
// while the walk goes on is never followed: opening it fails, naming it.
// Errors name path()/name. Not thread-safe.
class ReadableDir {
 public:
  virtual ~ReadableDir() = default;
  // The names of the children ("." and ".." left out), in directory order.
  // Not from two threads at once on one directory.
  virtual std::vector<std::string> List() = 0;
  // What lstat(2) says of a child; kMissing when it is not there.
  virtual FileStatus Status(const std::string& name) = 0;
  // What fstat(2) says of the directory itself (the one open, whatever its
  // path names now).
  virtual FileStatus Self() = 0;
  // A child directory; a symlink or anything else there is refused (kIo,
  // naming it), whatever Status said of the name before.
  virtual std::unique_ptr<ReadableDir> OpenDir(const std::string& name) = 0;
  // A child regular file or block device, opened as Env::OpenRead opens a
  // path (never through a symlink, never blocking on a fifo).
  virtual std::unique_ptr<ReadableFile> OpenRead(const std::string& name) = 0;
  // Asks the kernel to read the first len bytes of the child regular file
  // into the page cache ahead (ReadableFile::WillNeed); only a hint: what
  // fails is ignored. Here through OpenRead; the POSIX directory opens the
  // child for the advice alone, unchecked (fewer system calls a file).
  virtual void WillNeed(const std::string& name, uint64_t len) {
    try {
      OpenRead(name)->WillNeed(0, len);
    } catch (const std::exception&) {
    }
  }
  // The target of the child symlink.
  virtual std::string ReadLink(const std::string& name) = 0;
  // The extended attributes of the child itself (never a symlink's
  // target), as Env::ReadXattrs; name "" for the directory itself.
  virtual Xattrs ReadXattrs(const std::string& name) = 0;
  // path() + "/" + name, for messages.
  std::string ChildPath(const std::string& name) const {
    return !path().empty() && path().back() == '/' ? path() + name : path() + "/" + name;
  }
  virtual const std::string& path() const = 0;
};

// Caps for files read whole (ReadFileToString), so that a file on a disk
// someone else handled cannot make vmback allocate what it likes. Documented
// in docs/FORMAT.md.
inline constexpr uint64_t kMaxSmallFileSize = 1u << 20;      // config.json, tombstones, markers
inline constexpr uint64_t kMaxManifestSize = 64u << 20;      // points/*.json, "damaged", reports
inline constexpr uint64_t kMaxIndexFileSize = uint64_t{2} << 30;  // index/*.idx

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Bounds on an external command (Env::RunLimited): at the deadline, or as
// soon as *cancel is set, its process group is killed and Run throws Error
// naming the command. No deadline: kDefaultCommandTimeout (subprocess.h).
struct RunLimits {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  const std::atomic<bool>* cancel = nullptr;
};

// Bounds on a pipe of two commands (Env::RunPipe), whose bytes vmback
// relays and counts: both are killed when no byte has moved for stall, at
// the deadline if one is given, or as soon as *cancel is set; RunPipe then
// throws Error naming the command that stalled.
struct PipeLimits {
  std::chrono::steady_clock::duration stall = std::chrono::minutes(10);
  std::optional<std::chrono::steady_clock::time_point> deadline;
  const std::atomic<bool>* cancel = nullptr;
};

struct PipeResult {
  RunResult producer;  // its out is empty: its output went to the consumer
  RunResult consumer;
  uint64_t bytes = 0;  // relayed from the producer to the consumer
};

class Env {
 public:
  virtual ~Env() = default;

  virtual std::unique_ptr<ReadableFile> OpenRead(const std::string& path) = 0;
  // kExclusive creates a new file (O_EXCL); kTruncate creates or empties
  // one; neither goes through a symlink. kExisting opens a regular file or a
  // block device for writing without truncating; a symlink is followed only
  // when it leads to a block device (the /dev/VG/LV links of LVM), never to
  // a regular file. perm is the mode of a new file, less the umask.
  virtual std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode,
                                                  mode_t perm = 0600) = 0;
  virtual void Rename(const std::string& from, const std::string& to) = 0;
  virtual void Remove(const std::string& path) = 0;
  // Creates the directory (mode 0700); succeeds if a directory exists
  // there already, fails naming it if a symlink or anything else does.
  virtual void MakeDir(const std::string& path) = 0;
  virtual void SyncDir(const std::string& path) = 0;
  // lstat(2): a symlink exists even when dangling.
  virtual bool Exists(const std::string& path) = 0;
  // The names in a directory; a symlink to one is refused.
  virtual std::vector<std::string> ListDir(const std::string& path) = 0;
  // The directory at path, opened for a walk (ReadableDir). The path is
  // taken as the caller resolved it; its last component must be a
  // directory itself, not a symlink to one (refused, naming it).
  virtual std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path);
  // lstat(2) of path; kMissing when it does not exist.
  virtual FileStatus Status(const std::string& path);
  // stat(2): follows symlinks, also in the last component. Only for a path
  // the user gave (a source named through a link); kMissing when not there.
  virtual FileStatus StatusFollowingLinks(const std::string& path);
  // mkdir(2) of a new directory (mode 0700): anything already at path, a
  // directory too, is an error naming it (unlike MakeDir).
  virtual void MakeNewDir(const std::string& path);
  // The target of the symlink at path.
  virtual std::string ReadLink(const std::string& path);
  // statfs(2) of path: the type (magic number, f_type) of the file system
  // holding it, following symlinks. Throws "statfs <path>" on failure.
  virtual uint64_t FileSystemType(const std::string& path);
  // Creates the symlink path -> target (never replacing anything).
  virtual void Symlink(const std::string& target, const std::string& path);
  // A new hard link path to the regular file existing (never a symlink).
  virtual void Link(const std::string& existing, const std::string& path);
  // mknod(2) of a new device node, fifo or socket (type: S_IFCHR, S_IFBLK,
  // S_IFIFO or S_IFSOCK; mode 0600 until its metadata is set).
  virtual void MakeNode(const std::string& path, mode_t type, dev_t rdev);
  // rmdir(2) of an empty directory (never a symlink to one).
  virtual void RemoveDir(const std::string& path);
  // Removes path and all below it as RemoveTree (os/dir.h) does: never
  // following a symlink, never crossing into another mount. Returns how many
  // entries went; 0 when nothing was there.
  virtual uint64_t RemoveTree(const std::string& path);
  // Reflink copy (FICLONERANGE) of the regular file from into a new file to
  // (O_EXCL, mode 0600, never through a symlink), range by range; calls
  // between_ranges before each range (it may throw to stop). Returns 0, or
  // the errno when the file system cannot clone at all (the first range
  // refused: EOPNOTSUPP, EXDEV, EINVAL, ENOTTY, ENOSYS); `to` is left for the
  // caller to remove. Other failures throw, naming both files.
  virtual int CloneFile(const std::string& from, const std::string& to,
                        const std::function<void()>& between_ranges);
  // The extents of the regular file at path (never through a symlink), in
  // logical order, its dirty data written first (FIEMAP_FLAG_SYNC). Throws
  // naming it when the file system cannot map extents, or when the file has
  // more than max_extents of them.
  virtual std::vector<FileExtent> Extents(const std::string& path, size_t max_extents);
  // lchown(2): the owner of path itself, never a symlink's target. Returns
  // false when not permitted (EPERM: not root), throws on other failures.
  // Not a write step for FaultEnv (a metadata step).
  virtual bool SetOwner(const std::string& path, uid_t uid, gid_t gid);
  // utimensat(2) of path itself (never a symlink's target): the access time
  // when given, else left alone, and the modification time, in ns since the
  // epoch (may be negative). A metadata step for FaultEnv.
  virtual void SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns);
  // The extended attributes of path itself (llistxattr/lgetxattr); none on a
  // file system without them.
  virtual Xattrs ReadXattrs(const std::string& path);
  // lsetxattr/lremovexattr on path itself; removing an attribute that is not
  // there succeeds. Metadata steps for FaultEnv.
  virtual void SetXattr(const std::string& path, const std::string& name, const std::string& value);
  virtual void RemoveXattr(const std::string& path, const std::string& name);
  // chmod(2) of a regular file or directory, on a descriptor opened without
  // following a symlink (a symlink or anything else is refused, naming it).
  // Not a write step for FaultEnv: only metadata changes.
  virtual void SetMode(const std::string& path, mode_t mode);
  // chmod(2) of path itself, whatever its kind (a device node, fifo or
  // socket too: nothing is opened), never following a symlink there
  // (fchmodat AT_SYMLINK_NOFOLLOW: a symlink is refused). A metadata step.
  virtual void SetModeNoFollow(const std::string& path, mode_t mode);
  // syncfs(2) on the file system holding path: every write on it made
  // durable (the only way to reach the inode of a symlink or device node).
  // A write step for FaultEnv.
  virtual void SyncFileSystem(const std::string& path);
  // Non-blocking: throws ErrorKind::kLocked when held elsewhere, naming the
  // holder. An exclusive holder's pid is kept in the lock file while held.
  // The lock file is never a symlink (refused). A shared lock opens an
  // existing lock file read-only, so that it works on read-only media; when
  // the file does not exist and cannot be created because the file system
  // is read-only (EROFS), a shared lock returns nullptr: there is no lock to
  // take, and no writer that could change that file system.
  virtual std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) = 0;
  // Locks taken whose previous holder died holding them (the kernel freed
  // them): one line each, for the log. Clears the list.
  virtual std::vector<std::string> TakeStaleLockReports() { return {}; }
  // Runs argv (no shell), stdin from /dev/null, in its own process group.
  virtual RunResult Run(const std::vector<std::string>& argv) = 0;
  // Run within limits. A wrapper that fakes Run needs not override this.
  virtual RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) {
    (void)limits;
    return Run(argv);
  }
  // Runs producer | consumer (each as Run does, stdin of the producer from
  // /dev/null), relaying the producer's output into the consumer's input.
  // Neither exit is thrown; a start failure, a stall, the deadline or a
  // cancel is (both killed). For `zfs send | zfs recv`.
  virtual PipeResult RunPipe(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                             const PipeLimits& limits);
  virtual int64_t NowNanos() = 0;  // wall clock, ns since the epoch
  // The steady clock, for waits (retry pauses): tests give a fake one.
  virtual Clock* clock() { return Clock::Steady(); }
  // This machine's host name (gethostname), "" when it has none.
  virtual std::string HostName();
  // The effective user id vmback runs as (geteuid).
  virtual uid_t UserId();

  // The process-wide POSIX implementation.
  static Env* Default();
};

// An Env that forwards every call to another (leveldb's EnvWrapper), for
// tests and fault injection: a subclass overrides only what it changes.
// The target is borrowed and must outlive the wrapper.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override { return target_->OpenRead(path); }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode, mode_t perm = 0600) override {
    return target_->OpenWrite(path, mode, perm);
  }
  void Rename(const std::string& from, const std::string& to) override { target_->Rename(from, to); }
  void Remove(const std::string& path) override { target_->Remove(path); }
  void MakeDir(const std::string& path) override { target_->MakeDir(path); }
  void SyncDir(const std::string& path) override { target_->SyncDir(path); }
  bool Exists(const std::string& path) override { return target_->Exists(path); }
  std::vector<std::string> ListDir(const std::string& path) override { return target_->ListDir(path); }
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override {
    return target_->OpenDirectory(path);
  }
  FileStatus Status(const std::string& path) override { return target_->Status(path); }
  FileStatus StatusFollowingLinks(const std::string& path) override { return target_->StatusFollowingLinks(path); }
  void MakeNewDir(const std::string& path) override { target_->MakeNewDir(path); }
  std::string ReadLink(const std::string& path) override { return target_->ReadLink(path); }
  uint64_t FileSystemType(const std::string& path) override { return target_->FileSystemType(path); }
  void Symlink(const std::string& target, const std::string& path) override { target_->Symlink(target, path); }
  void Link(const std::string& existing, const std::string& path) override { target_->Link(existing, path); }
  void MakeNode(const std::string& path, mode_t type, dev_t rdev) override { target_->MakeNode(path, type, rdev); }
  void RemoveDir(const std::string& path) override { target_->RemoveDir(path); }
  uint64_t RemoveTree(const std::string& path) override { return target_->RemoveTree(path); }
  int CloneFile(const std::string& from, const std::string& to,
                const std::function<void()>& between_ranges) override {
    return target_->CloneFile(from, to, between_ranges);
  }
  std::vector<FileExtent> Extents(const std::string& path, size_t max_extents) override {
    return target_->Extents(path, max_extents);
  }
  bool SetOwner(const std::string& path, uid_t uid, gid_t gid) override { return target_->SetOwner(path, uid, gid); }
  void SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) override {
    target_->SetTimes(path, atime_ns, mtime_ns);
  }
  Xattrs ReadXattrs(const std::string& path) override { return target_->ReadXattrs(path); }
  void SetXattr(const std::string& path, const std::string& name, const std::string& value) override {
    target_->SetXattr(path, name, value);
  }
  void RemoveXattr(const std::string& path, const std::string& name) override { target_->RemoveXattr(path, name); }
  void SetMode(const std::string& path, mode_t mode) override { target_->SetMode(path, mode); }
  void SetModeNoFollow(const std::string& path, mode_t mode) override { target_->SetModeNoFollow(path, mode); }
  void SyncFileSystem(const std::string& path) override { target_->SyncFileSystem(path); }
  std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) override { return target_->Lock(path, mode); }
  std::vector<std::string> TakeStaleLockReports() override { return target_->TakeStaleLockReports(); }
  RunResult Run(const std::vector<std::string>& argv) override { return target_->Run(argv); }
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) override {
    return target_->RunLimited(argv, limits);
  }
  PipeResult RunPipe(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                     const PipeLimits& limits) override {
    return target_->RunPipe(producer, consumer, limits);
  }
  int64_t NowNanos() override { return target_->NowNanos(); }
  Clock* clock() override { return target_->clock(); }
  std::string HostName() override { return target_->HostName(); }
  uid_t UserId() override { return target_->UserId(); }

 private:
  Env* target_;
};

// A WritableFile that forwards every call to one it owns, for wrappers that
// change one step (count it, fail it, drop an fsync).
class WritableFileWrapper : public WritableFile {
 public:
  explicit WritableFileWrapper(std::unique_ptr<WritableFile> target) : target_(std::move(target)) {}
  WritableFile* target() const { return target_.get(); }
  void Append(const void* data, size_t n) override { target_->Append(data, n); }
  void WriteAt(uint64_t offset, const void* data, size_t n) override { target_->WriteAt(offset, data, n); }
  void Truncate(uint64_t size) override { target_->Truncate(size); }
  void Sync() override { target_->Sync(); }
  bool PunchHole(uint64_t offset, uint64_t len) override { return target_->PunchHole(offset, len); }
  void ExpectSize(uint64_t bytes) override { target_->ExpectSize(bytes); }
  void Close() override { target_->Close(); }
  const std::string& path() const override { return target_->path(); }
  bool MetadataByDescriptor() const override { return target_->MetadataByDescriptor(); }
  FileStatus Status() override { return target_->Status(); }
  Xattrs ReadXattrs() override { return target_->ReadXattrs(); }
  bool SetOwner(uid_t uid, gid_t gid) override { return target_->SetOwner(uid, gid); }
  void SetMode(mode_t mode) override { target_->SetMode(mode); }
  void SetXattr(const std::string& name, const std::string& value) override { target_->SetXattr(name, value); }
  void RemoveXattr(const std::string& name) override { target_->RemoveXattr(name); }
  void SetMtime(int64_t mtime_ns) override { target_->SetMtime(mtime_ns); }

 private:
  std::unique_ptr<WritableFile> target_;
};

// The same for a ReadableFile.
class ReadableFileWrapper : public ReadableFile {
 public:
  explicit ReadableFileWrapper(std::unique_ptr<ReadableFile> target) : target_(std::move(target)) {}
  ReadableFile* target() const { return target_.get(); }
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override { return target_->ReadAt(offset, buf, n); }
  uint64_t Size() override { return target_->Size(); }
  uint64_t NextData(uint64_t offset) override { return target_->NextData(offset); }
  uint64_t NextHole(uint64_t offset) override { return target_->NextHole(offset); }
  void DropCache(uint64_t offset, uint64_t len) override { target_->DropCache(offset, len); }
  void DisableReadahead() override { target_->DisableReadahead(); }
  void WillNeed(uint64_t offset, uint64_t len) override { target_->WillNeed(offset, len); }
  const std::string& path() const override { return target_->path(); }

 private:
  std::unique_ptr<ReadableFile> target_;
};

// The same for a ReadableDir: a wrapper that changes one step (an Env
// wrapper's OpenDirectory wraps what its target opens) overrides it, and
// OpenDir to wrap the directories below too.
class ReadableDirWrapper : public ReadableDir {
 public:
  explicit ReadableDirWrapper(std::unique_ptr<ReadableDir> target) : target_(std::move(target)) {}
  ReadableDir* target() const { return target_.get(); }
  std::vector<std::string> List() override { return target_->List(); }
  FileStatus Status(const std::string& name) override { return target_->Status(name); }
  FileStatus Self() override { return target_->Self(); }
  std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override { return target_->OpenDir(name); }
  std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override { return target_->OpenRead(name); }
  std::string ReadLink(const std::string& name) override { return target_->ReadLink(name); }
  Xattrs ReadXattrs(const std::string& name) override { return target_->ReadXattrs(name); }
  const std::string& path() const override { return target_->path(); }

 private:
  std::unique_ptr<ReadableDir> target_;
};

// Helpers built on any Env.
// The whole file; a file larger than max_size is refused (ErrorKind::kCorrupt,
// naming it and the cap) before anything is allocated for it.
std::string ReadFileToString(Env* env, const std::string& path, uint64_t max_size = kMaxManifestSize);
// The same into LargeMemory (huge pages for a large file read whole at once:
// a store's index). Its size is the bytes read.
LargeMemory ReadFileToMemory(Env* env, const std::string& path, uint64_t max_size);
// Env::Status of a path that must be there. When it is not, throws as a
// failed lstat(2) would: ThrowIo(context, ENOENT), context "stat <path>"
// unless given (kNotFound). Other failures as Status throws them.
FileStatus ExistingStatus(Env* env, const std::string& path, const std::string& context = "");
// Crash-safe replace: write to a new temporary "path.tmp-<random>" (created
// O_EXCL, never through a symlink another user planted), fsync, rename over
// path, fsync the directory. The file gets exactly perm, whatever the umask.
// On failure the temporary is removed (best effort) and the error rethrown:
// before the rename the old file is intact; after a failed directory fsync
// the new one is in place but perhaps not durable.
void WriteFileAtomic(Env* env, const std::string& path, const std::string& data, mode_t perm = 0600);
// A name for a new temporary beside path: "path.tmp-" and 12 random hex
// digits (every temporary vmback makes has ".tmp-" in its name).
std::string TempPathFor(const std::string& path);
// A new private directory (0700) "$TMPDIR/<prefix>XXXXXX" (/tmp without
// TMPDIR), made by mkdtemp(3); throws naming the template.
std::string MakeTempDir(const std::string& prefix);
// bytes random bytes (getentropy) as 2*bytes lowercase hex digits.
std::string RandomHex(size_t bytes);
// The value of the environment variable name; "" when it is not set.
std::string EnvironmentValue(const std::string& name);
// This process's id (getpid), and whether a process of that id exists on
// this host (kill(pid, 0) does not say ESRCH).
int ThisProcessId();
bool ProcessExists(int pid);
// Waits d (a poll's pause: nothing to wait on but time).
void SleepFor(std::chrono::milliseconds d);
// The size in bytes of the regular file or block device at path, following
// symlinks (a /dev/VG/LV link); 0 when it is neither or cannot be told.
uint64_t SizeOrZero(const std::string& path);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
std::string JoinPath(const std::string& a, const std::string& b);
// Env::Default()->SyncFileSystem(path).
void SyncFileSystem(const std::string& path);
// True when path is on a file system mounted read-only (statvfs ST_RDONLY).
bool IsReadOnlyFileSystem(const std::string& path);
// realpath(3); when the path cannot be resolved (it is not there), the path
// made absolute from the working directory and normalized. So a path the
// user typed relative is read against the working directory once, here.
// A bucket URL (s3://BUCKET/PREFIX) is no path: it is returned with its
// trailing slashes taken off and nothing else changed.
std::string CanonicalPath(const std::string& path);
// True for "s3://...": a store copy in a bucket (s3/bucket_env.h), reached
// through an Env that knows buckets; never a local path.
bool IsBucketUrl(std::string_view path);
// A file the user named on the command line, read to its end: symlinks are
// followed and it may be a pipe (/dev/stdin). Throws Error "context: strerror".
std::string ReadUserFile(const std::string& path, const std::string& context);
// realpath(3): path with every symlink resolved; a path that cannot be
// resolved (not there, no permission) throws Error "context: strerror".
std::string RealPath(const std::string& path, const std::string& context);
// access(2) R_OK: throws Error "context: strerror" when path cannot be read.
void CheckReadable(const std::string& path, const std::string& context);
// True when path (or, if it is not there, its nearest existing ancestor)
// lies on the file system of "/": a directory meant to be on a disk of its
// own that shows this is most likely the mount point of a disk that is not
// mounted. False when it cannot be told, and for a bucket URL.
bool OnRootFileSystem(const std::string& path);

}  // namespace vmback
