#include "scan/metadata.h"

#include <fcntl.h>

#include <cerrno>

#include "os/dir.h"
#include "util/error.h"

namespace vmback {

Entry ReadMetadata(Env* env, const std::string& path, const FileStatus& st) {
  return ReadMetadata(env, path, st, nullptr);
}

namespace {

// ReadMetadata's body: read_link() and read_xattrs() read what st does not
// hold; `what` names the entry in errors.
template <typename ReadLink, typename ReadXattrs>
Entry MetadataOf(const std::string& what, const FileStatus& st, const Entry* prev, ReadLink read_link,
                 ReadXattrs read_xattrs) {
  Entry e;
  e.mode = st.mode;
  e.uid = st.uid;
  e.gid = st.gid;
  e.mtime_ns = st.mtime_ns;
  switch (st.type) {
    case S_IFREG:
      e.type = EntryType::kFile;
      e.size = st.size;
      e.ctime_ns = st.ctime_ns;
      e.ino = st.ino;
      break;
    case S_IFDIR: e.type = EntryType::kDir; break;
    case S_IFLNK:
      e.type = EntryType::kSymlink;
      e.target = read_link();
      break;
    case S_IFCHR: e.type = EntryType::kCharDevice; e.rdev = st.rdev; break;
    case S_IFBLK: e.type = EntryType::kBlockDevice; e.rdev = st.rdev; break;
    case S_IFIFO: e.type = EntryType::kFifo; break;
    case S_IFSOCK: e.type = EntryType::kSocket; break;
    default: throw Error(ErrorKind::kIo, what + ": unknown file type");
  }
  if (prev && e.type == EntryType::kFile && prev->type == EntryType::kFile && prev->ino != 0 &&
      prev->ino == e.ino && prev->ctime_ns == e.ctime_ns) {
    e.xattrs = prev->xattrs;
  } else {
    e.xattrs = read_xattrs();
  }
  return e;
}

}  // namespace

Entry ReadMetadata(Env* env, const std::string& path, const FileStatus& st, const Entry* prev) {
  return MetadataOf(
      path, st, prev, [&] { return env->ReadLink(path); }, [&] { return env->ReadXattrs(path); });
}

Entry ReadMetadata(ReadableDir* dir, const std::string& name, const FileStatus& st, const Entry* prev) {
  return MetadataOf(
      name.empty() ? dir->path() : dir->ChildPath(name), st, prev, [&] { return dir->ReadLink(name); },
      [&] { return dir->ReadXattrs(name); });
}

Entry ReadMetadata(WritableFile* f, const FileStatus& st) {
  return MetadataOf(
      f->path(), st, nullptr, [&]() -> std::string { ThrowIo("read link " + f->path(), EINVAL); },
      [&] { return f->ReadXattrs(); });
}

Entry ReadMetadata(const std::string& path, const struct stat& st) {
  return ReadMetadata(Env::Default(), path, ToFileStatus(st));
}

}  // namespace vmback
