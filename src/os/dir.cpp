#include "os/dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sys/sysmacros.h>

#include <algorithm>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {
// How much a FdWritableFile writes before it starts writeback of it: large
// enough for large requests to the disk, small enough that the disk starts
// early and dirty memory stays small.
constexpr uint64_t kWritebackBytes = 8u << 20;
// What a direct (O_DIRECT) write's offset, length and buffer must be a
// multiple of: the logical block size of nearly every disk and file system.
constexpr size_t kDirectAlignment = 4096;
}  // namespace

struct timespec ToTimespec(int64_t ns) {
  struct timespec t;
  t.tv_sec = ns / 1000000000;
  t.tv_nsec = ns % 1000000000;
  if (t.tv_nsec < 0) {  // before 1970: round down
    t.tv_nsec += 1000000000;
    t.tv_sec -= 1;
  }
  return t;
}

namespace {

std::string Describe(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// "/proc/self/fd/N": the object an O_PATH descriptor holds, for the calls
// that have no descriptor form (chmod and xattrs of nodes and fifos).
std::string ProcFdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }


// " (mounted on /x)" for a block device that is mounted, from mountinfo.
std::string DeviceHolder(const std::string& device) {
  struct stat st;
  if (::stat(device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return "";
  std::string want = std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  std::ifstream in("/proc/self/mountinfo");
  std::string info((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields: id parent major:minor root mount-point ...
  size_t pos = 0;
  while (pos < info.size()) {
    size_t end = info.find('\n', pos);
    if (end == std::string::npos) end = info.size();
    std::string line = info.substr(pos, end - pos);
    pos = end + 1;
    size_t a = line.find(' '), b = line.find(' ', a + 1), c = line.find(' ', b + 1), d = line.find(' ', c + 1),
           f = line.find(' ', d + 1);
    if (f == std::string::npos || line.substr(b + 1, c - b - 1) != want) continue;
    return " (mounted on " + line.substr(d + 1, f - d - 1) + ")";
  }
  return " (held by another program: see lsblk and /sys/block/*/holders)";
}


}  // namespace

std::vector<std::string> ListDirectory(int dirfd, const std::string& what, bool rewind) {
  if (rewind && ::lseek(dirfd, 0, SEEK_SET) < 0) ThrowIo("list " + what, errno);
  constexpr size_t kNameAt = offsetof(struct dirent64, d_name);
  std::vector<std::string> names;
  alignas(struct dirent64) char buf[32768];
  for (;;) {
    const ssize_t got = ::getdents64(dirfd, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      ThrowIo("list " + what, errno);
    }
    if (got == 0) return names;
    const size_t n = static_cast<size_t>(got);
    for (size_t pos = 0; pos < n;) {
      const auto* e = reinterpret_cast<const struct dirent64*>(buf + pos);
      const size_t len = e->d_reclen;
      if (len <= kNameAt || len > n - pos) ThrowIo("list " + what + ": a directory record of " + std::to_string(len) + " bytes", EIO);
      const std::string_view name(e->d_name, ::strnlen(e->d_name, len - kNameAt));
      if (name != "." && name != "..") names.emplace_back(name);
      pos += len;
    }
  }
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void FdWritableFile::WriteAt(uint64_t offset, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  if (direct_ && (offset % kDirectAlignment || reinterpret_cast<uintptr_t>(p) % kDirectAlignment)) StopDirectWrites();
  if (direct_ && n % kDirectAlignment) {
    // The aligned head direct, the tail (the end of the file) through the cache.
    const size_t head = n - n % kDirectAlignment;
    Write(offset, p, head);
    offset += head;
    p += head;
    n -= head;
    StopDirectWrites();
  }
  Write(offset, p, n);
}

void FdWritableFile::Write(uint64_t offset, const char* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pwrite(fd_.get(), data + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {
        // Refused direct (an alignment the file system wants larger, a
        // short write that left the rest unaligned): through the cache.
        StopDirectWrites();
        continue;
      }
      ThrowIo("write " + path_, errno);
    }
    done += static_cast<size_t>(r);
  }
  if (offset + n > pos_) pos_ = offset + n;
  if (direct_) return;  // nothing left in the cache to write back
  dirty_begin_ = std::min(dirty_begin_, offset);
  dirty_end_ = std::max(dirty_end_, offset + n);
  dirty_bytes_ += n;
  if (dirty_bytes_ >= kWritebackBytes) StartWriteback();
}

size_t FdWritableFile::EnableDirectWrites() {
  if (!direct_) {
    const int fl = ::fcntl(fd_.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd_.get(), F_SETFL, fl | O_DIRECT) != 0) return 0;  // not here: stays cached
    direct_ = true;
  }
  return kDirectAlignment;
}

void FdWritableFile::StopDirectWrites() {
  if (!direct_) return;
  const int fl = ::fcntl(fd_.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd_.get(), F_SETFL, fl & ~O_DIRECT) != 0) ThrowIo("fcntl " + path_, errno);
  direct_ = false;
}

void FdWritableFile::StartWriteback() {
  // A hint only: a file system or device that cannot (EINVAL, ESPIPE) is
  // written back by the fsync, and a write error is reported there.
  (void)::sync_file_range(fd_.get(), static_cast<off_t>(dirty_begin_), static_cast<off_t>(dirty_end_ - dirty_begin_),
                          SYNC_FILE_RANGE_WRITE);
  dirty_begin_ = UINT64_MAX;
  dirty_end_ = 0;
  dirty_bytes_ = 0;
}

void FdWritableFile::Truncate(uint64_t size) {
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) ThrowIo("truncate " + path_, errno);
  pos_ = size;
}

void FdWritableFile::Sync() {
  if (::fsync(fd_.get()) != 0) ThrowIo("fsync " + path_, errno);
}

bool FdWritableFile::PunchHole(uint64_t offset, uint64_t len) {
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) == 0)
    return true;
  if (errno == EOPNOTSUPP || errno == ENOSYS) return false;
  ThrowIo("punch a hole in " + path_, errno);
}

void FdWritableFile::Close() {
  int fd = fd_.release();
  if (fd >= 0 && ::close(fd) != 0) ThrowIo("close " + path_, errno);
}

Dir Dir::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    int e = errno;
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR) && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      throw Error(ErrorKind::kConfig, path + " is a symlink; give the directory itself");
    ThrowIo("open directory " + path, e);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + path, errno);
  return Dir(path, std::move(fd), st.st_dev);
}

Dir Dir::OpenOrCreate(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) ThrowIo("mkdir " + path, errno);
  return Open(path);
}

std::string Dir::ChildPath(const std::string& name) const {
  return JoinPath(path_, EscapeForTerminal(name));
}

bool Dir::Stat(const std::string& name, struct stat* st) const {
  if (::fstatat(fd(), name.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowIo("stat " + ChildPath(name), errno);
}

std::vector<std::string> Dir::List() const { return ListDirectory(fd(), path_); }

void Dir::Sync() const {
  if (::fsync(fd()) != 0) ThrowIo("fsync directory " + path_, errno);
}

Dir Dir::OpenDir(const std::string& name, bool allow_mount) const {
  std::string path = ChildPath(name);
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + path);
  UniqueFd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    int e = errno;
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR) && Stat(name, &st) && S_ISLNK(st.st_mode))
      throw Error(ErrorKind::kConfig, path + " is a symlink where a directory was expected; not followed");
    ThrowIo("open directory " + path, e);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + path, errno);
  if (st.st_dev != dev_ && !allow_mount)
    throw Error(ErrorKind::kConfig, path + " is a mount point (another file system); left alone");
  return Dir(path, std::move(fd), st.st_dev);
}

Dir Dir::MakeDir(const std::string& name) const {
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + ChildPath(name));
  if (::mkdirat(fd(), name.c_str(), 0700) != 0 && errno != EEXIST) ThrowIo("mkdir " + ChildPath(name), errno);
  return OpenDir(name);
}

std::unique_ptr<FdWritableFile> Dir::CreateFile(const std::string& name) const {
  std::string path = ChildPath(name);
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + path);
  UniqueFd file(::openat(fd(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (file.get() < 0) ThrowIo("create " + path, errno);
  return std::make_unique<FdWritableFile>(path, std::move(file));
}

std::unique_ptr<FdWritableFile> Dir::OpenFile(const std::string& name) const {
  std::string path = ChildPath(name);
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + path);
  // First an O_PATH descriptor, checked to be a regular file, then that
  // inode reopened for writing: a device or fifo swapped in is never opened
  // (no side effects of opening it), a symlink never followed.
  UniqueFd obj(::openat(fd(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (obj.get() < 0) ThrowIo("open " + path, errno);
  struct stat st;
  if (::fstat(obj.get(), &st) != 0) ThrowIo("stat " + path, errno);
  if (!S_ISREG(st.st_mode))
    throw Error(ErrorKind::kConfig, path + " is not a regular file; nothing was written through it");
  UniqueFd file(::open(ProcFdPath(obj.get()).c_str(), O_WRONLY | O_CLOEXEC));
  if (file.get() < 0) ThrowIo("open " + path, errno);
  return std::make_unique<FdWritableFile>(path, std::move(file));
}

void Dir::Symlink(const std::string& name, const std::string& target) const {
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + ChildPath(name));
  if (::symlinkat(target.c_str(), fd(), name.c_str()) != 0) ThrowIo("symlink " + ChildPath(name), errno);
}

void Dir::MakeNode(const std::string& name, mode_t type, dev_t rdev) const {
  if (!IsSafeName(name)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + ChildPath(name));
  if (::mknodat(fd(), name.c_str(), type | 0600, rdev) != 0) ThrowIo("mknod " + ChildPath(name), errno);
}

void Dir::Link(const Dir& from, const std::string& from_name, const std::string& name) const {
  if (!IsSafeName(name) || !IsSafeName(from_name))
    throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + ChildPath(name));
  // Flags 0: a symlink at from_name is linked itself, never its target.
  if (::linkat(from.fd(), from_name.c_str(), fd(), name.c_str(), 0) != 0)
    ThrowIo("link " + ChildPath(name) + " to " + from.ChildPath(from_name), errno);
}

void Dir::Rename(const std::string& from, const std::string& to) const {
  if (!IsSafeName(from) || !IsSafeName(to)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + ChildPath(to));
  if (::renameat(fd(), from.c_str(), fd(), to.c_str()) != 0)
    ThrowIo("rename " + ChildPath(from) + " to " + ChildPath(to), errno);
}

PendingFile::PendingFile(const Dir& dir, std::string name)
    : dir_(dir), name_(std::move(name)), path_(dir.ChildPath(name_)) {
  if (!IsSafeName(name_)) throw Error(ErrorKind::kCorrupt, "refusing the unsafe name " + path_);
  temp_ = "." + name_.substr(0, 200) + ".tmp-" + RandomHex(6);
  file_ = dir_.CreateFile(temp_);
}

PendingFile::~PendingFile() {
  if (done_) return;
  file_.reset();
  (void)::unlinkat(dir_.fd(), temp_.c_str(), 0);  // best effort: the error, if any, is being told
}

void PendingFile::Commit() {
  file_->Close();
  dir_.Rename(temp_, name_);
  done_ = true;
}

uint64_t Dir::Remove(const std::string& name, const RemovedFn& removed) const {
  struct stat st;
  if (!Stat(name, &st)) return 0;
  if (S_ISDIR(st.st_mode)) {
    // First the whole tree is checked for mount points, so that a refusal
    // leaves everything in place, then it is removed.
    return RemoveTree(name, removed);
  }
  if (removed) removed(st);
  if (::unlinkat(fd(), name.c_str(), 0) != 0) ThrowIo("remove " + ChildPath(name), errno);
  return 1;
}

uint64_t Dir::RemoveTree(const std::string& name, const RemovedFn& removed) const {
  struct Walk {
    // Pass 1: refuse before deleting anything if a mount lies below.
    static void Check(const Dir& d) {
      for (const auto& n : d.List()) {
        struct stat st;
        if (d.Stat(n, &st) && S_ISDIR(st.st_mode)) Check(d.OpenDir(n));
      }
    }
    // A directory copied with a source's read-only mode is opened up
    // (on its descriptor) so that its entries can go.
    static void OpenUp(const Dir& d, const struct stat& st) {
      if ((st.st_mode & 0700) != 0700) (void)::fchmod(d.fd(), (st.st_mode & 07777) | 0700);
    }
    static uint64_t Delete(const Dir& d, const RemovedFn& removed) {
      uint64_t count = 0;
      for (const auto& n : d.List()) {
        struct stat st;
        if (!d.Stat(n, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
          Dir sub = d.OpenDir(n);
          OpenUp(sub, st);
          count += Delete(sub, removed);
          if (::unlinkat(d.fd(), n.c_str(), AT_REMOVEDIR) != 0) ThrowIo("remove " + d.ChildPath(n), errno);
        } else {
          if (removed) removed(st);
          if (::unlinkat(d.fd(), n.c_str(), 0) != 0) ThrowIo("remove " + d.ChildPath(n), errno);
        }
        count++;
      }
      return count;
    }
  };
  Dir top = OpenDir(name);
  Walk::Check(top);
  struct stat st;
  if (::fstat(top.fd(), &st) != 0) ThrowIo("stat " + ChildPath(name), errno);
  Walk::OpenUp(top, st);
  uint64_t count = Walk::Delete(top, removed);
  if (::unlinkat(fd(), name.c_str(), AT_REMOVEDIR) != 0) ThrowIo("remove " + ChildPath(name), errno);
  return count + 1;
}

Dir Dir::OpenBeneath(const std::string& rel) const {
  UniqueFd self(::fcntl(fd(), F_DUPFD_CLOEXEC, 0));
  if (self.get() < 0) ThrowIo("open " + path_, errno);
  Dir d(path_, std::move(self), dev_);
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    std::string comp = rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? rel.size() : slash + 1;
    if (comp.empty()) continue;
    d = d.OpenDir(comp);
  }
  return d;
}

std::vector<std::string> Dir::SetMetadataFd(int fd, const std::string& what, const Metadata& m,
                                            const MetadataPolicy& policy) {
  std::vector<std::string> warnings;
  // chown before chmod: chown clears setuid and setgid.
  if (policy.owner && ::fchown(fd, m.uid, m.gid) != 0) warnings.push_back(Describe("chown " + what, errno));
  mode_t mode = m.mode & 07777;
  if (!policy.privileges) mode &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
  if (::fchmod(fd, mode) != 0) warnings.push_back(Describe("chmod " + what, errno));
  for (const auto& [name, value] : m.xattrs) {
    if (!policy.privileges && name.rfind("security.", 0) == 0) continue;
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
      warnings.push_back(Describe("set xattr " + EscapeForTerminal(name) + " on " + what, errno));
  }
  struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(m.mtime_ns)};
  if (::futimens(fd, times) != 0) warnings.push_back(Describe("set mtime of " + what, errno));
  return warnings;
}

std::vector<std::string> Dir::SetMetadata(const std::string& name, mode_t type, const Metadata& m,
                                          const MetadataPolicy& policy) const {
  std::string what = ChildPath(name);
  UniqueFd obj(::openat(fd(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (obj.get() < 0) ThrowIo("open " + what, errno);
  struct stat st;
  if (::fstat(obj.get(), &st) != 0) ThrowIo("stat " + what, errno);
  // What this restore made is a new inode of one link: anything else was
  // swapped in behind its back.
  if ((st.st_mode & S_IFMT) != (type & S_IFMT) || st.st_nlink != 1)
    throw Error(ErrorKind::kConfig, what + " was replaced while it was being restored; not touched");
  std::vector<std::string> warnings;
  if (policy.owner && ::fchownat(obj.get(), "", m.uid, m.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    warnings.push_back(Describe("chown " + what, errno));
  const bool link = S_ISLNK(type);
  if (!link) {
    // Through the O_PATH descriptor's /proc link: the inode opened above.
    mode_t mode = m.mode & 07777;
    if (!policy.privileges) mode &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
    if (::chmod(ProcFdPath(obj.get()).c_str(), mode) != 0) warnings.push_back(Describe("chmod " + what, errno));
  }
  // xattrs and times by name in this directory, never following a symlink
  // (the name was checked above; this directory's descriptor is ours).
  std::string by_name = ProcFdPath(fd()) + "/" + name;
  for (const auto& [xname, value] : m.xattrs) {
    if (!policy.privileges && xname.rfind("security.", 0) == 0) continue;
    if (::lsetxattr(by_name.c_str(), xname.c_str(), value.data(), value.size(), 0) != 0)
      warnings.push_back(Describe("set xattr " + EscapeForTerminal(xname) + " on " + what, errno));
  }
  struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(m.mtime_ns)};
  if (::utimensat(fd(), name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
    warnings.push_back(Describe("set mtime of " + what, errno));
  return warnings;
}

UniqueFd OpenBlockDeviceExclusive(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_WRONLY | O_EXCL | O_CLOEXEC));
  if (fd.get() < 0) {
    int err = errno;
    if (err == EBUSY)
      throw Error(ErrorKind::kConfig, device + " is in use" + DeviceHolder(device) +
                                          "; vmback does not write onto a device that is in use (unmount it first)");
    ThrowIo("open " + device, err);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) ThrowIo("stat " + device, errno);
  if (!S_ISBLK(st.st_mode)) throw Error(ErrorKind::kConfig, device + " is not a block device; nothing was written");
  return fd;
}

uint64_t RemoveTree(const std::string& path) {
  const std::string parent = CanonicalPath(DirName(path));
  if (Env::Default()->Status(parent).kind != FileKind::kDir) return 0;
  return Dir::Open(parent).Remove(BaseName(path));
}

}  // namespace vmback
