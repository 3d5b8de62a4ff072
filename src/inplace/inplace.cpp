#include "inplace/inplace.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <optional>

#include "inplace/syncer.h"
#include "os/dir.h"
#include "scan/file_scanner.h"
#include "scan/metadata.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace inplace_internal {

void Syncer::SyncSingle(const std::string& src, const std::string& dst) {
  source_ = src;
  single_ = true;
  const FileStatus st = env_->StatusFollowingLinks(src);
  if (st.kind == FileKind::kMissing) ThrowIo("source " + src, ENOENT);
  bool device = st.type == S_IFBLK;
  Entry meta;
  if (!device) meta = FromSource([&] { return ReadMetadata(env_, src, st); });
  const FileStatus dst_st = env_->Status(dst);
  if (dst_st.kind != FileKind::kMissing && dst_st.kind != FileKind::kFile)
    ThrowConfig(dst + " exists and is not a regular file; give the mirror file's path");
  SyncFile(src, dst, BaseName(dst), st, device ? nullptr : &meta);
}

void Syncer::SyncTree(const std::string& src, const std::string& dst, bool scan_mirror) {
  source_ = src;
  const FileStatus st = ExistingStatus(env_, src, "source " + src);
  root_dev_ = st.dev;
  target_dev_ = ExistingStatus(env_, dst).dev;
  Entry meta = FromSource([&] { return ReadMetadata(env_, src, st); });
  if (opts_.read_limit == 0)
    ahead_ = std::make_unique<SourcePrefetch>(
        env_, src, root_dev_, opts_, [this, dst](const std::string& rel, const FileStatus& s) { return ExpectRead(dst, rel, s); });
  // (Walking the mirror ahead at all matters on a cold disk: without it
  // the walk's lstats of the mirror waited on the disk one by one.)
  if (scan_mirror)
    mirror_ = std::make_unique<MirrorScan>(
        env_, dst, map_dir_, target_dev_,
        [this](const std::string& rel, const FileStatus& s) { return IndexedMirrorFile(rel, s); });
  SyncDirContents(src, dst, "", true, true);
  mirror_.reset();
  ahead_.reset();
  if (ApplyMetadata(meta, dst)) MarkDirty(dst);
  stats_->dirs++;
}

void Syncer::Finish() {
  CompleteMaps();
  if (!written_) return;
  env_->SyncFileSystem(map_root_);
  written_ = false;
}

void Syncer::SyncDirContents(const std::string& src, const std::string& dst, const std::string& rel, bool enter,
                             bool scanned) {
  // Listed, and its children lstat'ed, through one descriptor of the
  // directory: one name looked up each, not the whole path again. Or by the
  // read-ahead's thread, when it listed the directory open here (the same
  // device and inode): the walk's thread makes none of these calls then.
  std::unique_ptr<ReadableDir> dir;
  std::shared_ptr<const SourcePrefetch::Listing> listed;
  std::vector<std::string> own_names;
  if (enter) {
    dir = FromSource([&] { return env_->OpenDirectory(src); });
    if (ahead_) {
      listed = ahead_->Take(rel);
      if (listed) {
        const FileStatus self = FromSource([&] { return dir->Self(); });
        if (self.dev != listed->self.dev || self.ino != listed->self.ino) listed.reset();
      }
    }
    if (!listed) {
      own_names = FromSource([&] { return dir->List(); });
      std::sort(own_names.begin(), own_names.end());
    }
  }
  const std::vector<std::string>& names = listed ? listed->names : own_names;
  // The same for the mirror's entries, where it can be opened (else they
  // are looked up by their paths, which say what is wrong).
  std::unique_ptr<ReadableDir> dst_dir;
  if (!names.empty()) {
    try {
      dst_dir = env_->OpenDirectory(dst);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kCrash) throw;
    }
  }
  // What the mirror scan found there (asked in the walk's order), when it
  // is the directory the scan looked at.
  std::unique_ptr<MirrorScan::Dir> seen;
  if (mirror_ && enter && scanned) seen = mirror_->Take(rel);
  // keep[i]: names[i] stays in the mirror (found by binary search below).
  std::vector<char> keep(names.size(), 0);
  const bool cache_dir = enter && filter_.IsCacheDir(src, rel);
  for (size_t i = 0; i < names.size(); i++) {
    const std::string& name = names[i];
    CheckCancel(opts_.cancel);
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    if (ahead_) ahead_->Passed(child_rel);
    if (rel.empty() && name == kZfsDir) {
      log_->Info(JoinPath(src, name) + ": ZFS's control directory is not mirrored");
      continue;
    }
    if (rel.empty() && name == kBlockmapDir) {
      if (opts_.source_is_mirror) continue;
      stats_->errors++;
      log_->Error(JoinPath(src, name) + ": a source entry may not be named " + kBlockmapDir +
                  " (left out of the mirror)");
      continue;
    }
    if (rel.empty() && LeaveOutOwnEntry(opts_.own_prefix, name, JoinPath(src, name), log_)) continue;
    try {
      // An entry left out is not kept: what the mirror has of it is
      // deleted below (rsync --delete-excluded).
      std::optional<FileStatus> st;
      auto status = [&]() -> const FileStatus& {
        if (!st) st = listed && listed->known[i] ? listed->st[i] : FromSource([&] { return dir->Status(name); });
        return *st;
      };
      if (filter_.active()) {
        const bool is_dir = filter_.NeedsKind() && status().kind == FileKind::kDir;
        if (filter_.LeaveOut(JoinPath(src, name), child_rel, is_dir, cache_dir)) continue;
      }
      if (SyncChild(JoinPath(src, name), status(), JoinPath(dst, name), child_rel, dir.get(), dst_dir.get(),
                    seen ? seen->Find(name) : nullptr))
        keep[i] = 1;
    } catch (const SourceError& err) {
      // The mirror keeps what it had for this entry.
      keep[i] = 1;
      stats_->errors++;
      log_->Error(std::string(err.what()) + " (left as it was in the mirror)");
    }
  }
  // What the mirror holds and the source no longer does.
  std::vector<std::string> gone;
  auto note = [&](const std::string& name) {
    auto at = std::lower_bound(names.begin(), names.end(), name);
    if ((at != names.end() && *at == name && keep[at - names.begin()]) ||
        (rel.empty() && (name == kBlockmapDir || name == kZfsDir)))
      return;
    gone.push_back(name);
  };
  if (!dst_dir) {  // (not opened for an empty source directory)
    try {
      dst_dir = env_->OpenDirectory(dst);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kCrash) throw;
    }
  }
  // Listed now (not as the scan found it: what was added since goes too),
  // through the descriptor open here, else by its path (which says what is
  // wrong). Removed by their paths, each only while dst still names the
  // directory open here (not a symlink or another directory put there
  // since).
  for (const auto& name : dst_dir ? dst_dir->List() : env_->ListDir(dst)) note(name);
  if (gone.empty()) return;
  const FileStatus open = dst_dir ? dst_dir->Self() : FileStatus{};
  for (const auto& name : gone) {
    if (dst_dir) {
      const FileStatus now = env_->Status(dst);
      if (now.kind != FileKind::kDir || now.dev != open.dev || now.ino != open.ino)
        throw Error(ErrorKind::kIo, dst + " was replaced during the sync; nothing more in it is deleted");
    }
    RemoveTree(JoinPath(dst, name));
    MarkDirty(dst);
  }
}

bool Syncer::SyncChild(const std::string& src, const FileStatus& st, const std::string& dst, const std::string& rel,
                       ReadableDir* src_dir, ReadableDir* dst_dir, const MirrorScan::Seen* seen) {
  if (st.kind == FileKind::kMissing) {
    log_->Info(src + " vanished during the sync");
    return false;
  }
  if (st.type == S_IFREG && st.nlink == 1 && SkipUnchangedFile(dst, rel, st, dst_dir, seen)) return true;
  Entry e = FromSource([&] { return ReadMetadata(env_, src, st); });
  switch (e.type) {
    case EntryType::kDir: {
      const FileStatus dst_st = env_->Status(dst);
      bool exists = dst_st.kind != FileKind::kMissing;
      if (exists && dst_st.kind != FileKind::kDir) {
        RemoveTree(dst);
        exists = false;
      }
      // Never write into (nor delete inside) another file system mounted
      // in the destination.
      if (exists && target_dev_ != 0 && dst_st.dev != target_dev_)
        throw Error(ErrorKind::kConfig, "will not write into " + dst + ": another file system is mounted there");
      if (!exists) {
        env_->MakeDir(dst);
        MarkDirty(DirName(dst));
      }
      bool enter = !(opts_.one_file_system && st.dev != root_dev_);  // a mount point: kept empty
      // The scan's findings in it are used only when it is the directory
      // the scan saw (not one made here, nor one replaced since).
      const bool scanned = exists && seen && seen->st.kind == FileKind::kDir && seen->st.dev == dst_st.dev &&
                           seen->st.ino == dst_st.ino;
      SyncDirContents(src, dst, rel, enter, scanned);
      if (ApplyMetadata(e, dst)) MarkDirty(dst);
      stats_->dirs++;
      return true;
    }
    case EntryType::kFile: {
      if (st.nlink > 1) {
        auto it = links_.find(InodeKey{st.dev, st.ino});
        if (it != links_.end()) {
          SyncHardLink(it->second, dst);
          stats_->files++;
          return true;
        }
      }
      SyncFile(src, dst, rel, st, &e, src_dir, dst_dir);
      if (st.nlink > 1) links_.emplace(InodeKey{st.dev, st.ino}, dst);
      return true;
    }
    case EntryType::kSymlink:
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
    case EntryType::kFifo:
    case EntryType::kSocket:
      SyncSpecial(e, dst);
      stats_->other++;
      return true;
  }
  return true;
}

void Syncer::SyncHardLink(const std::string& first, const std::string& dst) {
  const FileStatus a = ExistingStatus(env_, first);
  const FileStatus b = env_->Status(dst);
  bool exists = b.kind != FileKind::kMissing;
  if (exists && b.kind == FileKind::kFile && a.dev == b.dev && a.ino == b.ino) return;
  if (exists) RemoveTree(dst);
  env_->Link(first, dst);
  relinked_.insert(InodeKey{a.dev, a.ino});
  MarkDirty(DirName(dst));
}

void Syncer::SyncSpecial(const Entry& e, const std::string& dst) {
  const FileStatus st = env_->Status(dst);
  bool exists = st.kind != FileKind::kMissing;
  mode_t type = e.type == EntryType::kSymlink       ? S_IFLNK
                : e.type == EntryType::kCharDevice  ? S_IFCHR
                : e.type == EntryType::kBlockDevice ? S_IFBLK
                : e.type == EntryType::kFifo        ? S_IFIFO
                                                    : S_IFSOCK;
  bool same = exists && st.type == type;
  if (same && (type == S_IFCHR || type == S_IFBLK)) same = st.rdev == static_cast<dev_t>(e.rdev);
  if (same && type == S_IFLNK) {
    same = env_->ReadLink(dst) == e.target;
  }
  if (!same) {
    if (exists) RemoveTree(dst);
    if (type == S_IFLNK) {
      env_->Symlink(e.target, dst);
    } else {
      env_->MakeNode(dst, type, static_cast<dev_t>(e.rdev));
    }
    MarkDirty(DirName(dst));
  }
  // No fsync reaches the inode of a symlink or device node: Finish's syncfs does.
  if (ApplyMetadata(e, dst) || !same) written_ = true;
}

void Syncer::RemoveTree(const std::string& path) {
  const FileStatus st = env_->Status(path);
  if (st.kind == FileKind::kMissing) return;
  written_ = true;
  if (st.kind == FileKind::kDir) {
    // Deletions stay on the mirror's file system.
    if (target_dev_ != 0 && st.dev != target_dev_)
      throw Error(ErrorKind::kConfig, "will not delete " + path + ": another file system is mounted there");
    // From the parent down through descriptors: no symlink followed, and
    // a mount anywhere below refused before anything is deleted.
    stats_->deleted += Dir::Open(DirName(path)).Remove(BaseName(path), [this](const struct stat& s) {
      // The other names' inode gets a new ctime: its map is restamped.
      if (S_ISREG(s.st_mode) && s.st_nlink > 1) relinked_.insert(InodeKey{s.st_dev, s.st_ino});
    });
    return;
  }
  env_->Remove(path);
  if (st.kind == FileKind::kFile && st.nlink > 1) relinked_.insert(InodeKey{st.dev, st.ino});
  stats_->deleted++;
}

bool Syncer::ApplyMetadata(const Entry& e, const std::string& dst, const FileStatus* dst_st, WritableFile* open) {
  WritableFile* const f = open && open->MetadataByDescriptor() ? open : nullptr;
  Entry cur = f ? ReadMetadata(f, dst_st ? *dst_st : f->Status())
                : ReadMetadata(env_, dst, dst_st ? *dst_st : ExistingStatus(env_, dst));
  bool changed = false;
  // A step that fails is a warning (EPERM as non-root, xattrs the file
  // system lacks), the message naming the step and dst; a crash is not.
  auto step = [&](const std::function<void()>& f) {
    try {
      f();
      changed = true;
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kCrash) throw;
      Warn(err.what());
    }
  };
  bool force = false;  // chown clears setuid/setgid bits and capabilities
  if (cur.uid != e.uid || cur.gid != e.gid) {
    step([&] {
      if (!(f ? f->SetOwner(e.uid, e.gid) : env_->SetOwner(dst, e.uid, e.gid))) ThrowIo("chown " + dst, EPERM);
    });
    force = true;
  }
  if (e.type != EntryType::kSymlink && (force || cur.mode != e.mode))
    step([&] { f ? f->SetMode(e.mode) : env_->SetModeNoFollow(dst, e.mode); });
  std::map<std::string, std::string> have(cur.xattrs.begin(), cur.xattrs.end());
  for (const auto& [name, value] : e.xattrs) {
    auto it = have.find(name);
    if (!force && it != have.end() && it->second == value) continue;
    step([&, &name = name, &value = value] { f ? f->SetXattr(name, value) : env_->SetXattr(dst, name, value); });
  }
  std::set<std::string> want;
  for (const auto& x : e.xattrs) want.insert(x.first);
  for (const auto& [name, value] : have) {
    if (want.count(name)) continue;
    step([&, &name = name] { f ? f->RemoveXattr(name) : env_->RemoveXattr(dst, name); });
  }
  if (cur.mtime_ns != e.mtime_ns)
    step([&] { f ? f->SetMtime(e.mtime_ns) : env_->SetTimes(dst, std::nullopt, e.mtime_ns); });
  if (changed) written_ = true;
  return changed;
}

void Syncer::Warn(const std::string& message) {
  stats_->warnings++;
  if (stats_->warnings <= 20) log_->Warn(message);
}

}  // namespace inplace_internal

namespace {

bool Inside(const std::string& a, const std::string& b) {  // a is b or below it
  return a == b || (b == "/" ? true : a.rfind(b + "/", 0) == 0);
}

}  // namespace

void CheckOwnEntry(Env* env, const std::string& path, bool want_dir) {
  CheckOwnEntry(path, env->Status(path), want_dir);
}

void CheckOwnEntry(const std::string& path, const FileStatus& st, bool want_dir) {
  if (st.kind == FileKind::kMissing) return;
  if (st.kind == FileKind::kSymlink)
    ThrowConfig(path + " is a symlink where vmback keeps its own " + (want_dir ? "directory" : "file") +
                "; nothing was written through it (remove it, or check who planted it)");
  if (st.kind != (want_dir ? FileKind::kDir : FileKind::kFile))
    ThrowConfig(path + " is not a " + (want_dir ? "directory" : "regular file") +
                " although vmback keeps its own there; nothing was written");
}

namespace {

// dest with only its parent resolved: dest itself is never followed when it
// is a symlink (a planted MIRROR/<volume> -> /etc/passwd is refused here).
std::string ResolveDestination(Env* env, const std::string& dest) {
  std::string dst = dest;
  while (dst.size() > 1 && dst.back() == '/') dst.pop_back();
  dst = JoinPath(CanonicalPath(DirName(dst)), BaseName(dst));
  if (env->Status(dst).kind == FileKind::kSymlink)
    ThrowConfig("destination " + dst + " is a symlink; vmback writes only into its own files and directories"
                " (nothing was written)");
  return dst;
}

// Refuses a source and destination (resolved: src, dst) that overlap or do
// not match in kind. Returns whether dst exists.
bool CheckSourceAndDestination(Env* env, const std::string& source, const std::string& dest,
                               const std::string& src, const std::string& dst, const FileStatus& src_st,
                               const InplaceOptions& options) {
  const bool tree = src_st.kind == FileKind::kDir;
  // The mirror inside the source is fine only across a mount the walk does
  // not enter or in an own path it leaves out; the source inside the
  // mirror never (it would be deleted).
  if (Inside(src, dst)) ThrowConfig("source " + source + " lies inside the destination " + dest);
  if (Inside(dst, src)) {
    bool other_fs = false;
    if (options.one_file_system && tree) {
      const FileStatus d = env->StatusFollowingLinks(env->Exists(dst) ? dst : DirName(dst));
      other_fs = d.kind != FileKind::kMissing && d.dev != src_st.dev;
    }
    // Or inside a path of vmback's own the walk leaves out (the target
    // under a backed-up tree).
    bool left_out = false;
    if (options.excludes)
      for (const auto& own : options.excludes->own) left_out = left_out || Inside(dst, JoinPath(src, own.rel));
    if (!other_fs && !left_out) ThrowConfig("destination " + dest + " lies inside the source " + source);
  }
  const FileStatus dst_st = env->StatusFollowingLinks(dst);
  const bool dst_exists = dst_st.kind != FileKind::kMissing;
  if (tree && dst_exists && dst_st.kind != FileKind::kDir)
    ThrowConfig("destination " + dest + " exists and is not a directory (the source is a tree)");
  if (!tree && dst_exists && dst_st.kind == FileKind::kDir)
    ThrowConfig("destination " + dest + " is a directory; give the mirror file's path");
  return dst_exists;
}

// Makes MAPROOT/.vmback-blockmaps (0700) when missing; refuses one that is
// not vmback's own or has another file system mounted on it.
void PrepareMapDir(Env* env, const std::string& map_root, inplace_internal::Syncer* syncer) {
  const std::string map_dir = JoinPath(map_root, kBlockmapDir);
  CheckOwnEntry(env, map_dir, true);
  if (!env->Exists(map_dir)) {
    env->MakeDir(map_dir);
    // Blockmaps name the files and hash their blocks: for root's eyes only.
    env->SetMode(map_dir, 0700);
    syncer->MarkDirty(map_root);
  }
  const FileStatus root_st = env->Status(map_root);
  const FileStatus map_st = env->Status(map_dir);
  if (root_st.kind != FileKind::kMissing && map_st.kind != FileKind::kMissing && root_st.dev != map_st.dev)
    ThrowConfig("will not write into " + map_dir + ": another file system is mounted there");
}

}  // namespace

InplaceStats SyncInPlace(Env* env, const std::string& source, const std::string& dest, uint32_t block_size,
                         const InplaceOptions& options, Logger* log) {
  if (!IsValidBlockSize(block_size, kMinInplaceBlockSize))
    ThrowConfig("block size " + std::to_string(block_size) + " is not a power of two from 512 bytes to 16 MiB");
  if (dest.empty()) ThrowConfig("no destination given");
  // The source may be a symlink (to an image, or /dev/VG/LV): resolve it.
  const std::string src = RealPath(source, "source " + source);
  const FileStatus src_st = env->StatusFollowingLinks(src);
  if (src_st.kind == FileKind::kMissing) ThrowIo("source " + src, ENOENT);
  const bool tree = src_st.kind == FileKind::kDir;
  if (!tree && src_st.kind != FileKind::kFile && src_st.type != S_IFBLK)
    ThrowConfig("source " + source + " is not a directory, regular file or block device");
  const std::string dst = ResolveDestination(env, dest);
  const bool dst_exists = CheckSourceAndDestination(env, source, dest, src, dst, src_st, options);

  InplaceStats stats;
  const std::string map_root = tree ? dst : DirName(dst);
  inplace_internal::Syncer syncer(env, block_size, options, log, &stats, map_root);
  if (tree && !dst_exists) {
    env->MakeDir(dst);
    syncer.MarkDirty(DirName(dst));
  }
  PrepareMapDir(env, map_root, &syncer);
  const std::string lock_path = JoinPath(JoinPath(map_root, kBlockmapDir), "lock");
  CheckOwnEntry(env, lock_path, false);
  auto lock = env->Lock(lock_path, LockMode::kExclusive);
  syncer.LoadIndex(tree);
  if (tree) {
    syncer.SyncTree(src, dst, dst_exists);
    // The maps are completed before the link changes of their inodes are
    // stamped into them.
    syncer.CompleteMaps();
    syncer.RestampRelinkedMaps();
    syncer.SweepMaps();
    syncer.WriteIndex();
  } else {
    syncer.SyncSingle(src, dst);
  }
  syncer.Finish();
  return stats;
}

}  // namespace vmback
