#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <mutex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <atomic>

#include "os/dir.h"
#include "os/env.h"
#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

using Fd = UniqueFd;

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, Fd fd, uint64_t size)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size) {}

  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_.get(), static_cast<char*>(buf) + done, n - done,
                          static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        ThrowIo("read " + path_ + " at offset " + std::to_string(offset + done), errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  uint64_t Size() override { return size_; }
  uint64_t NextData(uint64_t offset) override { return Seek(offset, SEEK_DATA); }
  uint64_t NextHole(uint64_t offset) override { return Seek(offset, SEEK_HOLE); }
  void DropCache(uint64_t offset, uint64_t len) override {
    ::posix_fadvise(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(len),
                    POSIX_FADV_DONTNEED);
  }
  void DisableReadahead() override {
    ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_RANDOM);
  }
  void WillNeed(uint64_t offset, uint64_t len) override {
    ::posix_fadvise(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_WILLNEED);
  }
  const std::string& path() const override { return path_; }

 private:
  uint64_t Seek(uint64_t offset, int whence) {
    if (offset >= size_) return size_;
    off_t r = ::lseek(fd_.get(), static_cast<off_t>(offset), whence);
    if (r < 0) {
      if (errno == ENXIO) return size_;  // no more data
      if (errno == EINVAL || errno == EOPNOTSUPP)
        return whence == SEEK_DATA ? offset : size_;  // treat all as data
      ThrowIo("seek " + path_, errno);
    }
    return static_cast<uint64_t>(r) > size_ ? size_ : static_cast<uint64_t>(r);
  }

  std::string path_;
  Fd fd_;
  uint64_t size_;
};

class PosixLock final : public FileLock {
 public:
  PosixLock(Fd fd, bool exclusive) : fd_(std::move(fd)), exclusive_(exclusive) {}
  ~PosixLock() override {
    if (exclusive_) (void)::ftruncate(fd_.get(), 0);  // no holder any more
  }

 private:
  Fd fd_;
  bool exclusive_;
};

std::string ReadHolder(int fd) {
  char buf[128];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

// Why an open of path failed, with a clearer word than ELOOP when the path
// is a symlink vmback refused to follow.
[[noreturn]] void ThrowOpen(const std::string& what, const std::string& path, int err) {
  struct stat st;
  if ((err == ELOOP || err == EEXIST || err == ENOTDIR) && ::lstat(path.c_str(), &st) == 0 &&
      S_ISLNK(st.st_mode))
    throw Error(ErrorKind::kCorrupt, what + " " + path +
                                         ": is a symbolic link where vmback expects its own file or "
                                         "directory; refused, nothing written through it");
  ThrowIo(what + " " + path, err);
}

// Opens path without following a symlink, without blocking on a fifo
// (O_NONBLOCK, cleared again once it is known to be a regular file or a
// block device), and checks what it is; an invalid descriptor, errno set,
// when the open itself fails. A file made by this open (O_CREAT|O_EXCL,
// which fails on anything there, a symlink or a fifo too) is a new, empty
// regular file: it is neither stat'ed nor opened O_NONBLOCK.
Fd TryOpenChecked(const std::string& what, const std::string& path, int flags, mode_t perm, struct stat* st) {
  const bool create = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
  Fd fd(::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | (create ? 0 : O_NONBLOCK), perm));
  if (fd.get() < 0) return fd;
  if (create) {
    *st = {};
    st->st_mode = S_IFREG | perm;
    return fd;
  }
  if (::fstat(fd.get(), st) != 0) ThrowIo("stat " + path, errno);
  if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
    throw Error(ErrorKind::kIo, what + " " + path + ": not a regular file or block device");
  int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) ThrowIo("fcntl " + path, errno);
  return fd;
}

Fd OpenChecked(const std::string& what, const std::string& path, int flags, mode_t perm, struct stat* st) {
  Fd fd = TryOpenChecked(what, path, flags, perm, st);
  if (fd.get() < 0) ThrowOpen(what, path, errno);
  return fd;
}

class PosixEnv final : public Env {
 public:
  std::vector<std::string> TakeStaleLockReports() override {
    std::lock_guard<std::mutex> l(mu_);
    return std::move(stale_holders_);
  }

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override {
    struct stat st;
    Fd fd = OpenChecked("open", path, O_RDONLY, 0, &st);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode)) {
      if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) ThrowIo("size of block device " + path, errno);
    }
    return std::make_unique<PosixReadableFile>(path, std::move(fd), size);
  }

  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode,
                                          mode_t perm) override {
    int flags = O_WRONLY;
    if (mode == CreateMode::kExclusive) flags |= O_CREAT | O_EXCL;
    if (mode == CreateMode::kTruncate) flags |= O_CREAT | O_TRUNC;
    struct stat st;
    if (mode == CreateMode::kExisting) {
      Fd fd = TryOpenChecked("open", path, flags, 0, &st);
      if (fd.get() >= 0) return std::make_unique<FdWritableFile>(path, std::move(fd));
      const int err = errno;
      if (err != ELOOP || ::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) ThrowOpen("open", path, err);
      // The one symlink followed: to a block device (/dev/VG/LV). Resolved
      // through an O_PATH descriptor, so that what is checked is what is
      // opened, and a link swapped for one to a regular file is refused.
      Fd p(::open(path.c_str(), O_PATH | O_CLOEXEC));
      if (p.get() < 0) ThrowIo("open " + path, errno);
      if (::fstat(p.get(), &st) != 0) ThrowIo("stat " + path, errno);
      if (!S_ISBLK(st.st_mode))
        throw Error(ErrorKind::kCorrupt, "open " + path +
                                             ": is a symbolic link to something other than a block "
                                             "device; refused, nothing written through it");
      std::string via = "/proc/self/fd/" + std::to_string(p.get());
      Fd bd(::open(via.c_str(), O_WRONLY | O_CLOEXEC));
      if (bd.get() < 0) ThrowIo("open " + path, errno);
      return std::make_unique<FdWritableFile>(path, std::move(bd));
    }
    Fd fd = OpenChecked("create", path, flags, perm, &st);
    if (!S_ISREG(st.st_mode))
      throw Error(ErrorKind::kIo, "create " + path + ": not a regular file");
    return std::make_unique<FdWritableFile>(path, std::move(fd));
  }

  void Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) ThrowIo("rename " + from + " to " + to, errno);
  }
  void Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) ThrowIo("remove " + path, errno);
  }
  void MakeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0700) == 0) return;
    if (errno != EEXIST) ThrowIo("mkdir " + path, errno);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) ThrowIo("stat " + path, errno);
    if (S_ISLNK(st.st_mode))
      throw Error(ErrorKind::kCorrupt, "mkdir " + path +
                                           ": is a symbolic link where vmback expects its own "
                                           "directory; refused, nothing written through it");
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::kIo, "mkdir " + path + ": exists and is not a directory");
  }
  void SyncDir(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) ThrowIo("open directory " + path, errno);
    if (::fsync(fd.get()) != 0) ThrowIo("fsync directory " + path, errno);
  }
  bool Exists(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    ThrowIo("stat " + path, errno);
  }
  std::vector<std::string> ListDir(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) ThrowOpen("list", path, errno);
    return ListDirectory(fd.get(), path, /*rewind=*/false);  // opened for this listing
  }
  std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) override {
    if (mode == LockMode::kAppend) throw Error(ErrorKind::kOther, "internal: lock " + path + " in append mode");
    Fd fd;
    if (mode == LockMode::kShared) {
      // Read-only, so that a store on read-only media can be read; created
      // (O_EXCL) only when missing.
      for (int attempt = 0; fd.get() < 0; attempt++) {
        fd.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        if (fd.get() >= 0 || errno != ENOENT) break;
        fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (fd.get() >= 0 || errno != EEXIST || attempt > 3) break;
      }
      if (fd.get() < 0 && errno == EROFS) return nullptr;
    } else {
      fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    }
    if (fd.get() < 0) ThrowOpen("open lock", path, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + path, errno);
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::kCorrupt, "lock " + path + ": not a regular file");
    int op = (mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    if (::flock(fd.get(), op) != 0) {
      if (errno == EWOULDBLOCK) {
        std::string holder = ReadHolder(fd.get());
        throw Error(ErrorKind::kLocked, path + " is locked by another vmback process" +
                                            (holder.empty() ? "" : " (" + holder + ")"));
      }
      ThrowIo("lock " + path, errno);
    }
    if (mode == LockMode::kExclusive) {
      // The holder, for the messages of processes that find it locked. A
      // holder left in the file names a process that died: the kernel
      // released its lock, so it is not stale, only worth a word.
      std::string previous = ReadHolder(fd.get());
      if (!previous.empty()) {
        pid_t pid = static_cast<pid_t>(std::atoi(previous.c_str() + 4));
        if (previous.rfind("pid ", 0) == 0 && pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH)
          stale_holders_.push_back(path + ": " + previous + " ended without releasing it");
      }
      std::string me = "pid " + std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), me.data(), me.size(), 0);
    }
    return std::make_unique<PosixLock>(std::move(fd), mode == LockMode::kExclusive);
  }
  RunResult Run(const std::vector<std::string>& argv) override { return RunSubprocess(argv); }
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) override {
    return RunSubprocess(argv, limits);
  }
  int64_t NowNanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> stale_holders_;
};

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

namespace {

int64_t Nanos(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

FileStatus StatusOf(const std::string& path, bool follow) {
  struct stat st;
  if ((follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st)) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    ThrowIo("stat " + path, errno);
  }
  return ToFileStatus(st);
}

}  // namespace

FileStatus ToFileStatus(const struct stat& st) {
  FileStatus s;
  s.mode = st.st_mode & 07777;
  s.type = st.st_mode & S_IFMT;
  s.kind = S_ISREG(st.st_mode)   ? FileKind::kFile
           : S_ISDIR(st.st_mode) ? FileKind::kDir
           : S_ISLNK(st.st_mode) ? FileKind::kSymlink
                                 : FileKind::kOther;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.nlink = st.st_nlink;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  s.size = static_cast<uint64_t>(st.st_size);
  s.atime_ns = Nanos(st.st_atim);
  s.mtime_ns = Nanos(st.st_mtim);
  s.ctime_ns = Nanos(st.st_ctim);
  s.rdev = st.st_rdev;
  return s;
}

FileStatus Env::Status(const std::string& path) { return StatusOf(path, /*follow=*/false); }

FileStatus Env::StatusFollowingLinks(const std::string& path) { return StatusOf(path, /*follow=*/true); }

void Env::MakeNewDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0) ThrowIo("create directory " + path, errno);
}

std::string Env::ReadLink(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) ThrowIo("read link " + path, errno);
  std::string to(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
  ssize_t n = ::readlink(path.c_str(), to.data(), to.size());
  if (n < 0) ThrowIo("read link " + path, errno);
  to.resize(static_cast<size_t>(n));
  return to;
}

uint64_t Env::FileSystemType(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) ThrowIo("statfs " + path, errno);
  return static_cast<uint64_t>(fs.f_type);
}

void Env::Symlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) ThrowIo("create symlink " + path, errno);
}

void Env::Link(const std::string& existing, const std::string& path) {
  if (::linkat(AT_FDCWD, existing.c_str(), AT_FDCWD, path.c_str(), 0) != 0)
    ThrowIo("link " + path + " to " + existing, errno);
}

void Env::MakeNode(const std::string& path, mode_t type, dev_t rdev) {
  if (::mknod(path.c_str(), type | 0600, rdev) != 0) ThrowIo("mknod " + path, errno);
}

void Env::RemoveDir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0) ThrowIo("remove directory " + path, errno);
}

uint64_t Env::RemoveTree(const std::string& path) { return ::vmback::RemoveTree(path); }

int Env::CloneFile(const std::string& from, const std::string& to,
                   const std::function<void()>& between_ranges) {
  // Each FICLONERANGE call shares this much (block-aligned for any file
  // system), so that between_ranges is called often enough.
  constexpr uint64_t kCloneRange = 64ull << 20;
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) ThrowIo("open " + from, errno);
  struct stat st;
  if (::fstat(in.get(), &st) != 0) ThrowIo("stat " + from, errno);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) ThrowIo("create " + to, errno);
  // Range by range; the last one (length 0) goes to the end of the file,
  // whatever its alignment and even if it grew.
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  for (uint64_t off = 0; off == 0 || off < size; off += kCloneRange) {
    if (between_ranges) between_ranges();
    struct file_clone_range r = {};
    r.src_fd = in.get();
    r.src_offset = off;
    r.src_length = size - off > kCloneRange ? kCloneRange : 0;
    r.dest_offset = off;
    if (::ioctl(out.get(), FICLONERANGE, &r) != 0) {
      int e = errno;
      if (off == 0 && (e == EOPNOTSUPP || e == EXDEV || e == EINVAL || e == ENOTTY || e == ENOSYS)) return e;
      ThrowIo("FICLONERANGE " + from + " to " + to + " at " + std::to_string(off), e);
    }
    if (r.src_length == 0) break;
  }
  int fd = out.release();
  if (::close(fd) != 0) ThrowIo("close " + to, errno);
  return 0;
}

std::vector<FileExtent> Env::Extents(const std::string& path, size_t max_extents) {
  constexpr uint32_t kPerCall = 256;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) ThrowIo("open " + path, errno);
  std::vector<char> buf(sizeof(struct fiemap) + kPerCall * sizeof(struct fiemap_extent));
  auto* map = reinterpret_cast<struct fiemap*>(buf.data());
  std::vector<FileExtent> out;
  uint64_t start = 0;
  for (;;) {
    std::fill(buf.begin(), buf.end(), 0);
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = out.empty() && start == 0 ? FIEMAP_FLAG_SYNC : 0;
    map->fm_extent_count = kPerCall;
    if (::ioctl(fd.get(), FS_IOC_FIEMAP, map) != 0) ThrowIo("FIEMAP " + path, errno);
    if (map->fm_mapped_extents == 0 || map->fm_mapped_extents > kPerCall) break;
    bool last = false;
    for (uint32_t i = 0; i < map->fm_mapped_extents; i++) {
      const struct fiemap_extent& e = map->fm_extents[i];
      if (e.fe_length == 0 || e.fe_logical + e.fe_length <= start)
        throw Error(ErrorKind::kIo, "FIEMAP " + path + ": the file system gave an extent that does not advance");
      out.push_back({e.fe_logical, e.fe_physical, e.fe_length, e.fe_flags});
      if (out.size() > max_extents)
        throw Error(ErrorKind::kIo, path + " has more than " + std::to_string(max_extents) + " extents");
      last = last || (e.fe_flags & FIEMAP_EXTENT_LAST);
      start = e.fe_logical + e.fe_length;
    }
    if (last) break;
  }
  return out;
}

bool Env::SetOwner(const std::string& path, uid_t uid, gid_t gid) {
  if (::lchown(path.c_str(), uid, gid) == 0) return true;
  if (errno == EPERM) return false;
  ThrowIo("chown " + path, errno);
}

void Env::SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) {
  struct timespec times[2];
  if (atime_ns) {
    times[0] = ToTimespec(*atime_ns);
  } else {
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
  }
  times[1] = ToTimespec(mtime_ns);
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    ThrowIo("set times of " + path, errno);
}

namespace {

// The xattrs through list(buf, size) and get(name, buf, size), which act as
// llistxattr / lgetxattr on one object; `what` names it in errors.
template <typename List, typename Get>
Xattrs ReadXattrsWith(const std::string& what, List list, Get get) {
  Xattrs out;
  ssize_t n = list(nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENODATA) return out;
    ThrowIo("list xattrs of " + what, errno);
  }
  if (n == 0) return out;  // none (the common case): no second call
  std::string names(static_cast<size_t>(n), '\0');
  n = list(names.data(), names.size());
  if (n < 0) ThrowIo("list xattrs of " + what, errno);
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty()) continue;
    ssize_t len = get(name.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENODATA) continue;  // removed meanwhile
      ThrowIo("read xattr " + name + " of " + what, errno);
    }
    std::string value(static_cast<size_t>(len), '\0');
    len = get(name.c_str(), value.data(), value.size());
    if (len < 0) ThrowIo("read xattr " + name + " of " + what, errno);
    value.resize(static_cast<size_t>(len));
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// FdWritableFile's metadata, here beside Env's of the same names.
FileStatus FdWritableFile::Status() {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) ThrowIo("stat " + path_, errno);
  return ToFileStatus(st);
}

Xattrs FdWritableFile::ReadXattrs() {
  const int fd = fd_.get();
  return ReadXattrsWith(
      path_, [fd](char* buf, size_t size) { return ::flistxattr(fd, buf, size); },
      [fd](const char* n, void* buf, size_t size) { return ::fgetxattr(fd, n, buf, size); });
}

bool FdWritableFile::SetOwner(uid_t uid, gid_t gid) {
  if (::fchown(fd_.get(), uid, gid) == 0) return true;
  if (errno == EPERM) return false;
  ThrowIo("chown " + path_, errno);
}

void FdWritableFile::SetMode(mode_t mode) {
  if (::fchmod(fd_.get(), mode) != 0) ThrowIo("chmod " + path_, errno);
}

void FdWritableFile::SetXattr(const std::string& name, const std::string& value) {
  if (::fsetxattr(fd_.get(), name.c_str(), value.data(), value.size(), 0) != 0)
    ThrowIo("set xattr " + name + " on " + path_, errno);
}

void FdWritableFile::RemoveXattr(const std::string& name) {
  if (::fremovexattr(fd_.get(), name.c_str()) != 0 && errno != ENODATA)
    ThrowIo("remove xattr " + name + " from " + path_, errno);
}

void FdWritableFile::SetMtime(int64_t mtime_ns) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1] = ToTimespec(mtime_ns);
  if (::futimens(fd_.get(), times) != 0) ThrowIo("set times of " + path_, errno);
}

namespace {

Xattrs ReadXattrsOfPath(const std::string& path, const std::string& what) {
  const char* p = path.c_str();
  return ReadXattrsWith(
      what, [p](char* buf, size_t size) { return ::llistxattr(p, buf, size); },
      [p](const char* name, void* buf, size_t size) { return ::lgetxattr(p, name, buf, size); });
}

// Whether /proc/self/fd/N names descriptor N here (procfs mounted).
bool HaveProcFd() {
  static const bool have = ::access("/proc/self/fd", X_OK) == 0;
  return have;
}

// A directory of a source tree open for the walk (Env::OpenDirectory).
class PosixReadableDir final : public ReadableDir {
 public:
  PosixReadableDir(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  // One directory of a walk, listed by the walker alone (ReadableDir).
  std::vector<std::string> List() override {
    const bool again = listed_;
    listed_ = true;
    return ListDirectory(fd_.get(), path_, again);
  }

  FileStatus Status(const std::string& name) override {
    CheckName(name);
    struct stat st;
    if (::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return {};
      ThrowIo("stat " + ChildPath(name), errno);
    }
    return ToFileStatus(st);
  }

  FileStatus Self() override {
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) ThrowIo("stat " + path_, errno);
    return ToFileStatus(st);
  }

  std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
    CheckName(name);
    Fd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      const int err = errno;
      struct stat st;
      if ((err == ELOOP || err == ENOTDIR) && ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        throw Error(ErrorKind::kIo, "open directory " + ChildPath(name) +
                                        ": is a symbolic link now (changed during the walk); not followed");
      ThrowIo("open directory " + ChildPath(name), err);
    }
    return std::make_unique<PosixReadableDir>(ChildPath(name), std::move(fd));
  }

  std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override {
    CheckName(name);
    const std::string path = ChildPath(name);
    // As OpenChecked, relative to this directory.
    Fd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) ThrowIo("open " + path, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + path, errno);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      throw Error(ErrorKind::kIo, "open " + path + ": not a regular file or block device");
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) ThrowIo("fcntl " + path, errno);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd.get(), BLKGETSIZE64, &size) != 0)
      ThrowIo("size of block device " + path, errno);
    return std::make_unique<PosixReadableFile>(path, std::move(fd), size);
  }

  // Never through a symlink, never blocking on a fifo (whose advice then
  // fails, as it does on anything that is not a file); the descriptor is
  // used for the advice alone.
  void WillNeed(const std::string& name, uint64_t len) override {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) return;
    Fd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() >= 0) ::posix_fadvise(fd.get(), 0, static_cast<off_t>(len), POSIX_FADV_WILLNEED);
  }

  std::string ReadLink(const std::string& name) override {
    CheckName(name);
    std::string to(4096, '\0');
    for (;;) {
      ssize_t n = ::readlinkat(fd_.get(), name.c_str(), to.data(), to.size());
      if (n < 0) ThrowIo("read link " + ChildPath(name), errno);
      if (static_cast<size_t>(n) < to.size()) {
        to.resize(static_cast<size_t>(n));
        return to;
      }
      if (to.size() >= (1u << 20)) ThrowIo("read link " + ChildPath(name), ENAMETOOLONG);
      to.resize(to.size() * 2);
    }
  }

  Xattrs ReadXattrs(const std::string& name) override {
    if (name.empty()) {
      const int fd = fd_.get();
      return ReadXattrsWith(
          path_, [fd](char* buf, size_t size) { return ::flistxattr(fd, buf, size); },
          [fd](const char* n, void* buf, size_t size) { return ::fgetxattr(fd, n, buf, size); });
    }
    CheckName(name);
    // There is no l*xattrat: the child is named through this directory's
    // descriptor in /proc (the kernel resolves /proc/self/fd/N to this very
    // directory, whatever became of its path), and its last component is
    // not followed (l*xattr). Without /proc, by its full path.
    if (!HaveProcFd()) return ReadXattrsOfPath(ChildPath(name), ChildPath(name));
    return ReadXattrsOfPath("/proc/self/fd/" + std::to_string(fd_.get()) + "/" + name, ChildPath(name));
  }

  const std::string& path() const override { return path_; }

 private:
  void CheckName(const std::string& name) const {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      throw Error(ErrorKind::kCorrupt, "refusing the name '" + name + "' in " + path_ + ": not one component");
  }

  std::string path_;
  Fd fd_;
  bool listed_ = false;  // List read it before: start from the top again
};

}  // namespace

std::unique_ptr<ReadableDir> Env::OpenDirectory(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) ThrowOpen("open directory", path, errno);
  return std::make_unique<PosixReadableDir>(path, std::move(fd));
}

Xattrs Env::ReadXattrs(const std::string& path) { return ReadXattrsOfPath(path, path); }

void Env::SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0)
    ThrowIo("set xattr " + name + " on " + path, errno);
}

void Env::RemoveXattr(const std::string& path, const std::string& name) {
  if (::lremovexattr(path.c_str(), name.c_str()) != 0 && errno != ENODATA)
    ThrowIo("remove xattr " + name + " from " + path, errno);
}

namespace {

// fchmodat2(2) (Linux 6.6) takes AT_SYMLINK_NOFOLLOW itself: one system
// call. glibc before 2.39 does fchmodat's AT_SYMLINK_NOFOLLOW with four
// (an O_PATH open, fstat, a chmod through /proc/self/fd, close), once for
// every file a tree's mirror gets. Its number is the same on these two.
#if defined(__x86_64__) || defined(__aarch64__)
constexpr long kSysFchmodat2 = 452;
std::atomic<bool> fchmodat2_missing{false};

// Whether fchmodat2 answered (the result in errno: 0 when it changed the mode).
bool Fchmodat2NoFollow(const std::string& path, mode_t mode) {
  if (fchmodat2_missing.load(std::memory_order_relaxed)) return false;
  if (::syscall(kSysFchmodat2, AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) == 0) {
    errno = 0;
    return true;
  }
  if (errno == ENOSYS) fchmodat2_missing = true;
  // ENOSYS: an older kernel; EPERM may be a seccomp filter that does not
  // know it (a container's), which glibc's way is asked then too.
  return errno != ENOSYS && errno != EPERM;
}
#else
bool Fchmodat2NoFollow(const std::string&, mode_t) { return false; }
#endif

}  // namespace

void Env::SetModeNoFollow(const std::string& path, mode_t mode) {
  if (Fchmodat2NoFollow(path, mode)) {
    if (errno != 0) ThrowIo("chmod " + path, errno);
    return;
  }
  if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) ThrowIo("chmod " + path, errno);
}

void Env::SyncFileSystem(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) ThrowIo("open " + path, errno);
  if (::syncfs(fd.get()) != 0) ThrowIo("syncfs " + path, errno);
}

uid_t Env::UserId() { return ::geteuid(); }

PipeResult Env::RunPipe(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                        const PipeLimits& limits) {
  return RunPipeSubprocesses(producer, consumer, limits);
}

std::string Env::HostName() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

void Env::SetMode(const std::string& path, mode_t mode) {
  struct stat before, st;
  if (::lstat(path.c_str(), &before) != 0) ThrowIo("stat " + path, errno);
  if (!S_ISREG(before.st_mode) && !S_ISDIR(before.st_mode))
    ThrowOpen("chmod", path, S_ISLNK(before.st_mode) ? ELOOP : EINVAL);
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) ThrowOpen("chmod", path, errno);
  if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + path, errno);
  if (st.st_ino != before.st_ino || st.st_dev != before.st_dev)
    throw Error(ErrorKind::kIo, "chmod " + path + ": replaced while vmback looked at it");
  if (::fchmod(fd.get(), mode) != 0) ThrowIo("chmod " + path, errno);
}

}  // namespace vmback
