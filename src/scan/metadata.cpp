#include "scan/metadata.h"

#include <fcntl.h>

#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "util/error.h"

namespace vmback {

struct stat LStat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) ThrowIo("stat " + path, errno);
  return st;
}

static std::vector<std::pair<std::string, std::string>> ReadXattrs(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENODATA) return out;
    ThrowIo("list xattrs of " + path, errno);
  }
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) ThrowIo("list xattrs of " + path, errno);
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty()) continue;
    ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENODATA) continue;  // removed meanwhile
      ThrowIo("read xattr " + name + " of " + path, errno);
    }
    std::string value(static_cast<size_t>(len), '\0');
    len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) ThrowIo("read xattr " + name + " of " + path, errno);
    value.resize(static_cast<size_t>(len));
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Entry ReadMetadata(const std::string& path, const struct stat& st) {
  Entry e;
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      e.type = EntryType::kFile;
      e.size = static_cast<uint64_t>(st.st_size);
      e.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
      e.ino = st.st_ino;
      break;
    case S_IFDIR: e.type = EntryType::kDir; break;
    case S_IFLNK: {
      e.type = EntryType::kSymlink;
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) ThrowIo("readlink " + path, errno);
      target.resize(static_cast<size_t>(n));
      e.target = std::move(target);
      break;
    }
    case S_IFCHR: e.type = EntryType::kCharDevice; e.rdev = st.st_rdev; break;
    case S_IFBLK: e.type = EntryType::kBlockDevice; e.rdev = st.st_rdev; break;
    case S_IFIFO: e.type = EntryType::kFifo; break;
    case S_IFSOCK: e.type = EntryType::kSocket; break;
    default: throw Error(ErrorKind::kIo, path + ": unknown file type");
  }
  e.xattrs = ReadXattrs(path);
  return e;
}

bool SetMtimeNs(const std::string& path, int64_t mtime_ns) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = mtime_ns / 1000000000;
  times[1].tv_nsec = mtime_ns % 1000000000;
  if (times[1].tv_nsec < 0) {  // before 1970: round down
    times[1].tv_nsec += 1000000000;
    times[1].tv_sec -= 1;
  }
  return ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0;
}

}  // namespace vmback
