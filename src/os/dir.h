// Writing into a destination that others may touch while vmback works in it
// (a restore into /home, a mirror on a shared disk): every step goes through
// a directory descriptor, one name at a time, and never through a symlink.
//
// A Dir is an open directory. Its children are named by one safe component
// (IsSafeName); each is looked up with AT_SYMLINK_NOFOLLOW / O_NOFOLLOW, so
// whatever a local user swaps in for a name (a symlink to /etc, another
// mount) is never followed: the operation fails, naming the path. Metadata
// is set on an open descriptor, never by path after close.
//
// Thread safety: a Dir may be used from several threads (the kernel
// serializes the operations on its descriptor); the object is move-only.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "os/env.h"

namespace vmback {

// Move-only owner of a file descriptor (-1 when empty).
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_;
};

// A WritableFile on a descriptor it owns (what Env::OpenWrite gives on
// POSIX); fd() for metadata before Close.
//
// Writeback starts as it writes: every kWritebackBytes written, the range
// written since is handed to the kernel to write out (sync_file_range
// SYNC_FILE_RANGE_WRITE, which waits for no I/O to complete), so that the
// disk writes while the caller computes the next bytes and a final fsync
// (or syncfs) has little left to wait for. Only a hint: what is durable is
// still only what Sync (or a syncfs) made so, and a write error shows there.
// After EnableDirectWrites, aligned writes bypass the cache (O_DIRECT) and
// need no writeback; the first write that is not aligned (the tail of a
// file), or that the file system refuses direct (EINVAL), ends that: it and
// every later write go through the cache.
class FdWritableFile final : public WritableFile {
 public:
  FdWritableFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  void Append(const void* data, size_t n) override { WriteAt(pos_, data, n); }
  void WriteAt(uint64_t offset, const void* data, size_t n) override;
  void Truncate(uint64_t size) override;
  void Sync() override;
  bool PunchHole(uint64_t offset, uint64_t len) override;
  size_t EnableDirectWrites() override;
  void Close() override;
  const std::string& path() const override { return path_; }
  int fd() const { return fd_.get(); }
  bool MetadataByDescriptor() const override { return true; }
  FileStatus Status() override;
  Xattrs ReadXattrs() override;
  bool SetOwner(uid_t uid, gid_t gid) override;
  void SetMode(mode_t mode) override;
  void SetXattr(const std::string& name, const std::string& value) override;
  void RemoveXattr(const std::string& name) override;
  void SetMtime(int64_t mtime_ns) override;

 private:
  void Write(uint64_t offset, const char* data, size_t n);
  void StopDirectWrites();
  void StartWriteback();

  std::string path_;
  UniqueFd fd_;
  uint64_t pos_ = 0;
  bool direct_ = false;  // O_DIRECT set on fd_
  // The range written since writeback last started, and how many bytes.
  uint64_t dirty_begin_ = UINT64_MAX;
  uint64_t dirty_end_ = 0;
  uint64_t dirty_bytes_ = 0;
};

// What Env::Status gives, from a struct stat of one's own (fstatat).
FileStatus ToFileStatus(const struct stat& st);

// ns since the epoch (may be negative) as a timespec for utimensat.
struct timespec ToTimespec(int64_t ns);

// The names in the open directory dirfd (without "." and ".."), read with
// getdents64(2) on dirfd itself (two system calls for a small directory; a
// DIR stream over a duplicate took eight); `what` names it in errors. It
// moves dirfd's offset, from the start again if rewind (a duplicate would
// share it too): for a descriptor no other thread lists at the same time.
std::vector<std::string> ListDirectory(int dirfd, const std::string& what, bool rewind = true);

// What to keep of an entry's metadata (restore --no-owner, --no-privileges).
struct MetadataPolicy {
  bool owner = true;       // chown to the recorded uid/gid
  bool privileges = true;  // setuid/setgid bits and security.* xattrs
};

struct Metadata {
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

class Dir {
 public:
  // The directory the user named. Symlinks in its leading components are
  // the user's own choice and are followed; the last component must be a
  // directory itself, not a symlink to one.
  static Dir Open(const std::string& path);
  // Creates the last component (mode 0700) if missing, then opens it as Open.
  static Dir OpenOrCreate(const std::string& path);

  Dir(Dir&&) = default;
  Dir& operator=(Dir&&) = default;

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  // The device of this directory: children on another one are mounts.
  dev_t device() const { return dev_; }
  std::string ChildPath(const std::string& name) const;

  // lstat of a child; false when it does not exist.
  bool Stat(const std::string& name, struct stat* st) const;
  // The names of the children ("." and ".." left out), in directory order.
  std::vector<std::string> List() const;
  // fsync of the directory itself (its entries).
  void Sync() const;
  // Opens a child directory, refusing a symlink and, unless allow_mount, a
  // directory on another device (a mount point).
  Dir OpenDir(const std::string& name, bool allow_mount = false) const;
  // mkdir (mode 0700: opened up only when its metadata is set, after its
  // children) and open. An existing directory is opened as OpenDir.
  Dir MakeDir(const std::string& name) const;
  // A new regular file (O_EXCL|O_NOFOLLOW, mode 0600), open for writing.
  std::unique_ptr<FdWritableFile> CreateFile(const std::string& name) const;
  // An existing regular file, open for writing in place (its inode, and so
  // its other hard links, kept). A symlink, fifo, device or anything else
  // at the name is refused (kConfig, naming it) with nothing written.
  std::unique_ptr<FdWritableFile> OpenFile(const std::string& name) const;
  void Symlink(const std::string& name, const std::string& target) const;
  void MakeNode(const std::string& name, mode_t type, dev_t rdev) const;
  // A hard link name -> the file `from_name` in `from` (never a symlink).
  void Link(const Dir& from, const std::string& from_name, const std::string& name) const;
  // renameat of the child from to to, both in this directory (replacing a
  // file, symlink or node at to as itself, never following it).
  void Rename(const std::string& from, const std::string& to) const;
  // Removes a child: a file, symlink or node, or a whole directory tree,
  // never following a symlink and refusing (ErrorKind::kConfig, naming it)
  // any directory on another device than this one, before deleting anything
  // below it. Returns how many entries went (the child and everything below
  // it; 0 when it did not exist). A directory without owner rwx is opened
  // up (fchmod on its descriptor) before its entries go. `removed`, when
  // given, sees the lstat of each entry that is not a directory just before
  // it is unlinked.
  using RemovedFn = std::function<void(const struct stat&)>;
  uint64_t Remove(const std::string& name, const RemovedFn& removed = nullptr) const;
  // Opens the directory at a relative path below this one (components
  // separated by '/'), each component as OpenDir: nothing outside, no
  // symlinks, no mounts.
  Dir OpenBeneath(const std::string& rel) const;

  // Sets metadata. On an open regular file or directory: by its descriptor.
  // On a symlink, node, fifo or socket child: through an O_PATH descriptor
  // checked to be the same kind of object (so a name swapped for a hard
  // link to another file is refused). Failures the restore can live with
  // (EPERM as non-root, xattrs the file system lacks) are returned as
  // messages, not thrown.
  std::vector<std::string> SetMetadata(const std::string& name, mode_t type, const Metadata& m,
                                       const MetadataPolicy& policy) const;
  static std::vector<std::string> SetMetadataFd(int fd, const std::string& what, const Metadata& m,
                                                const MetadataPolicy& policy);

 private:
  Dir(std::string path, UniqueFd fd, dev_t dev) : path_(std::move(path)), fd_(std::move(fd)), dev_(dev) {}
  uint64_t RemoveTree(const std::string& name, const RemovedFn& removed) const;

  std::string path_;
  UniqueFd fd_;
  dev_t dev_ = 0;
};

// A regular file written under a temporary name in dir and renamed to its
// name only when complete, so that an interrupted write (an error, a signal)
// never leaves a partial file under that name. The temporary is
// "." NAME ".tmp-" and 12 random hex digits (NAME cut to 200 bytes),
// created as Dir::CreateFile (O_EXCL|O_NOFOLLOW, mode 0600). Destroyed
// without Commit, it is removed. REQUIRES: dir outlives this object.
class PendingFile {
 public:
  PendingFile(const Dir& dir, std::string name);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  FdWritableFile* file() const { return file_.get(); }
  // The final path, for messages.
  const std::string& path() const { return path_; }
  // Closes the file and renames it over the name (a file, symlink or node
  // there is replaced as itself).
  void Commit();

 private:
  const Dir& dir_;
  std::string name_, temp_, path_;
  std::unique_ptr<FdWritableFile> file_;
  bool done_ = false;
};

// Removes path as Dir::Remove does (a file, symlink or node, or a whole
// directory tree, directories without write permission opened up first):
// never following a symlink, never crossing into another mount (refused,
// naming it, before anything is deleted). The directory above path is
// resolved (CanonicalPath). Returns how many entries went; 0 when path, or
// the directory above it, is not there.
uint64_t RemoveTree(const std::string& path);

// Opens a block device for writing with O_EXCL: the kernel refuses it
// while the device is mounted or held (device-mapper, md, another exclusive
// opener) and keeps others from mounting it while it is open. A busy device
// is ErrorKind::kConfig naming its mount point; a path that is not a block
// device is refused too.
UniqueFd OpenBlockDeviceExclusive(const std::string& device);

}  // namespace vmback
