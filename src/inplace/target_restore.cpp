#include "inplace/target_ops.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "inplace/checked_read.h"
#include "inplace/point_info.h"
#include "os/dir.h"
#include "scan/file_scanner.h"
#include "scan/metadata.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/tunables.h"

namespace vmback {

namespace {

// Restore never writes through a symlink at --to, except the documented
// /dev/VG/LV case: a link to a block device, with --force (allow_device).
// Returns whether `to` is (a link to) a block device.
bool CheckDestination(Env* env, const std::string& to, Overwrite overwrite, bool allow_device) {
  const FileStatus lst = env->Status(to);
  if (lst.kind == FileKind::kMissing) return false;
  if (overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force to overwrite it");
  if (lst.kind != FileKind::kSymlink) return lst.type == S_IFBLK;
  if (allow_device) {
    try {
      if (env->StatusFollowingLinks(to).type == S_IFBLK) return true;
    } catch (const Error&) {
      // A link that cannot be followed (a loop) leads to no block device.
    }
  }
  ThrowConfig(to + " is a symlink; restore writes through a symlink only to a block device (/dev/VG/LV, with"
                   " --force): give the real path");
}

Metadata MetadataOf(const Entry& e) { return Metadata{e.mode, e.uid, e.gid, e.mtime_ns, e.xattrs}; }

void CountWarnings(const std::vector<std::string>& warnings, RestoreStats* stats, Logger* log) {
  for (const auto& w : warnings) {
    if (stats->warnings++ < 20) log->Warn(w);
  }
}

// The directory that holds `to`, as the user named it (symlinks in it are
// the user's own), and to's last component in it.
std::pair<Dir, std::string> OpenParent(const std::string& to) {
  std::string p = to;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string name = BaseName(p);
  if (!IsSafeName(name)) ThrowConfig("--to " + to + ": give the path of the new file or directory");
  return {Dir::Open(CanonicalPath(DirName(p))), name};
}

MetadataPolicy PolicyOf(const RestoreOptions& options) {
  MetadataPolicy p;
  p.owner = options.owner;
  p.privileges = options.privileges;
  return p;
}

// Restores one regular file of a point (a file volume, or a file inside a
// tree) as `name` in `parent`, under a temporary name renamed over it when
// complete: an existing regular file there is replaced (--force), anything
// else at the name is refused.
void RestoreFile(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                 const Dir& parent, const std::string& name, Overwrite overwrite, const MetadataPolicy& policy,
                 const std::atomic<bool>* cancel, RestoreStats* stats, Logger* log) {
  struct stat dst_st;
  const bool exists = parent.Stat(name, &dst_st);
  if (exists && overwrite == Overwrite::kRefuse) ThrowConfig(parent.ChildPath(name) + " exists; give --force to overwrite it");
  if (exists && S_ISDIR(dst_st.st_mode)) ThrowConfig(parent.ChildPath(name) + " is a directory; give the file's path");
  if (exists && !S_ISREG(dst_st.st_mode))
    ThrowConfig(parent.ChildPath(name) + " is not a regular file; nothing was written through it");
  Entry meta = ReadMetadata(env, src, ExistingStatus(env, src));
  PendingFile out(parent, name);
  out.file()->Truncate(CopyChecked(env, src, map_root, rel, out.file(), false, cancel, stats, log));
  CountWarnings(Dir::SetMetadataFd(out.file()->fd(), out.path(), MetadataOf(meta), policy), stats, log);
  out.file()->Sync();
  out.Commit();
  stats->files++;
}

// A file of a point written onto a block device (the documented /dev/VG/LV
// case, with --force): in full, zeros too; the device keeps its metadata.
void RestoreFileToDevice(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                         const std::string& device, const std::atomic<bool>* cancel, RestoreStats* stats,
                         Logger* log) {
  FdWritableFile out(device, OpenBlockDeviceExclusive(device));
  CopyChecked(env, src, map_root, rel, &out, true, cancel, stats, log);
  out.Sync();
  out.Close();
  stats->files++;
}

// Restores a directory tree of a point into a destination walked with
// directory descriptors (os/dir.h): every name under the destination is
// opened one component at a time, never through a symlink nor across a
// mount, and what is found there in the way (a file where a directory goes,
// a symlink planted where a directory will be made) is removed as itself,
// never followed. Metadata is set on open descriptors. The point side is
// read by path (it is vmback's own, read-only snapshot or 0700 mirror).
class TreeRestorer {
 public:
  // map_root: the tree volume's root in the point (its blockmaps);
  // rel_prefix: where the restored tree lies below it. root: the directory
  // that hard links are resolved from (paths in links_ are relative to it).
  TreeRestorer(Env* env, std::string map_root, std::string rel_prefix, const Dir* root,
               const RestoreOptions& options, RestoreStats* stats, Logger* log)
      : env_(env), map_root_(std::move(map_root)), rel_prefix_(std::move(rel_prefix)), root_(root),
        options_(options), policy_(PolicyOf(options)), stats_(stats), log_(log) {
    src_dev_ = ExistingStatus(env_, map_root_).dev;
  }

  // The point's entry src as `name` in `parent`, replacing what is in the
  // way. rel: src's path below the restored tree ("" for its top); drel:
  // the new entry's path relative to root.
  void RestoreEntry(const std::string& src, const Dir& parent, const std::string& name, const std::string& rel,
                    const std::string& drel) {
    const FileStatus st = ExistingStatus(env_, src);
    Entry e = ReadMetadata(env_, src, st);
    struct stat cur;
    bool exists = parent.Stat(name, &cur);
    if (exists && !(e.type == EntryType::kDir && S_ISDIR(cur.st_mode))) {
      // A file over a file: the new one is renamed over it when complete.
      if (!(e.type == EntryType::kFile && S_ISREG(cur.st_mode) && st.nlink <= 1))
        parent.Remove(name);  // as itself: no symlink followed, no mount crossed
      exists = false;
    }
    switch (e.type) {
      case EntryType::kDir: {
        Dir d = exists ? parent.OpenDir(name) : parent.MakeDir(name);
        RestoreInto(src, st, d, rel, drel);
        return;
      }
      case EntryType::kFile: {
        const InodeKey key{st.dev, st.ino};
        auto it = st.nlink > 1 ? links_.find(key) : links_.end();
        if (it != links_.end()) {
          const std::string& first = it->second;
          const std::string first_dir = DirName(first);
          Dir from = root_->OpenBeneath(first_dir == "." ? "" : first_dir);
          parent.Link(from, BaseName(first), name);
          stats_->files++;
          return;  // the inode's metadata is set already
        }
        {
          // Under a temporary name until complete and checked: an error or
          // a signal leaves no half file under the name (the temporary goes).
          PendingFile out(parent, name);
          out.file()->Truncate(
              CopyChecked(env_, src, map_root_, MapRel(rel), out.file(), false, options_.cancel, stats_, log_));
          CountWarnings(Dir::SetMetadataFd(out.file()->fd(), out.path(), MetadataOf(e), policy_), stats_, log_);
          out.file()->Sync();
          out.Commit();
        }
        stats_->files++;
        if (st.nlink > 1) links_.emplace(key, drel);
        return;
      }
      case EntryType::kSymlink:
        parent.Symlink(name, e.target);
        CountWarnings(parent.SetMetadata(name, S_IFLNK, MetadataOf(e), policy_), stats_, log_);
        stats_->other++;
        return;
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
      case EntryType::kFifo:
      case EntryType::kSocket: {
        if (!options_.special) {
          if (stats_->skipped++ == 0)
            log_->Info("leaving out device nodes, fifos and sockets (--no-special), first " + parent.ChildPath(name));
          return;
        }
        const mode_t type = st.type;
        parent.MakeNode(name, type, st.rdev);
        CountWarnings(parent.SetMetadata(name, type, MetadataOf(e), policy_), stats_, log_);
        stats_->other++;
        return;
      }
    }
  }

  // Restores the point's directory src (lstat st) into the open directory
  // d: its children restored (merged with what is there), entries the point
  // lacks removed with Overwrite::kDelete, then d's own metadata.
  void RestoreInto(const std::string& src, const FileStatus& st, const Dir& d, const std::string& rel,
                   const std::string& drel) {
    // A mount point in the point (one file system, as the backup) is kept
    // as an empty directory.
    std::vector<std::string> names;
    if (st.dev == src_dev_) names = env_->ListDir(src);
    std::sort(names.begin(), names.end());
    const bool top = rel.empty() && rel_prefix_.empty();
    std::set<std::string> keep;
    for (const auto& name : names) {
      if (top && (name == kBlockmapDir || name == ".zfs")) continue;  // the mirror's own
      if (!IsSafeName(name)) ThrowCorrupt(JoinPath(src, EscapeForTerminal(name)) + ": not a plain name");
      RestoreEntry(JoinPath(src, name), d, name, rel.empty() ? name : rel + "/" + name,
                   drel.empty() ? name : drel + "/" + name);
      keep.insert(name);
    }
    if (options_.overwrite == Overwrite::kDelete) {
      for (const auto& name : d.List()) {
        if (keep.count(name) || (drel.empty() && name == ".zfs")) continue;
        stats_->removed += d.Remove(name);  // refuses (naming it) a mount below, before deleting anything
      }
    }
    Entry e = ReadMetadata(env_, src, st);
    CountWarnings(Dir::SetMetadataFd(d.fd(), d.path(), MetadataOf(e), policy_), stats_, log_);
    stats_->dirs++;
  }

 private:
  struct InodeKey {
    dev_t dev;
    ino_t ino;
    bool operator<(const InodeKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
  };

  // A file's path below the volume: the key of its blockmap.
  std::string MapRel(const std::string& rel) const {
    return rel_prefix_.empty() ? rel : rel.empty() ? rel_prefix_ : rel_prefix_ + "/" + rel;
  }

  Env* env_;
  const std::string map_root_;
  const std::string rel_prefix_;
  const Dir* root_;
  const RestoreOptions options_;
  const MetadataPolicy policy_;
  RestoreStats* stats_;
  Logger* log_;
  dev_t src_dev_ = 0;
  std::map<InodeKey, std::string> links_;  // point inode -> its first restored name, relative to root_
};

// Refuses a restore of src into dest when one lies inside the other (a
// restore into the mirror of a dir target would rewrite the point itself).
void CheckApart(const std::string& src, const std::string& dest) {
  auto inside = [](const std::string& a, const std::string& b) {
    return a == b || (b == "/" ? true : a.rfind(b + "/", 0) == 0);
  };
  std::string s = CanonicalPath(src);
  std::string p = dest;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string d = JoinPath(CanonicalPath(DirName(p)), BaseName(p));
  if (inside(s, d)) ThrowConfig("source " + src + " lies inside the destination " + dest);
  if (inside(d, s)) ThrowConfig("destination " + dest + " lies inside the source " + src);
}

// Restores the tree src of a point to `to` (merged into it when it exists,
// with --force; made identical to it with --delete).
void RestoreTree(Env* env, const std::string& src, const std::string& map_root, const std::string& rel_prefix,
                 const std::string& to, const RestoreOptions& options, RestoreStats* stats, Logger* log) {
  const Overwrite overwrite = options.overwrite;
  CheckApart(src, to);
  const FileStatus src_st = ExistingStatus(env, src);
  const FileStatus lst = env->Status(to);
  if (lst.kind != FileKind::kMissing) {
    if (overwrite == Overwrite::kRefuse)
      ThrowConfig(to + " exists; give --force to merge the point into it, or --delete to make it exactly the point");
    CheckDestination(env, to, overwrite, false);
    if (lst.kind != FileKind::kDir) ThrowConfig(to + " exists and is not a directory");
    // The directory the user named (it may be a mount point itself).
    Dir root = Dir::Open(to);
    TreeRestorer r(env, map_root, rel_prefix, &root, options, stats, log);
    r.RestoreInto(src, src_st, root, "", "");
    root.Sync();
  } else {
    auto [parent, name] = OpenParent(to);
    TreeRestorer r(env, map_root, rel_prefix, &parent, options, stats, log);
    r.RestoreEntry(src, parent, name, "", name);
    parent.Sync();
  }
  SyncFileSystem(to);
}

}  // namespace

RestoreStats RestoreFromTarget(InplaceTarget* target, Env* env, const std::string& point_arg,
                               const std::string& path, const std::string& to, const RestoreOptions& options,
                               Logger* log) {
  const Overwrite overwrite = options.overwrite;
  const MetadataPolicy policy = PolicyOf(options);
  const OpenedTargetPoint opened = OpenTargetPoint(target, env, point_arg);
  const std::string& point = opened.name;
  const std::string& root = opened.view->root();
  const std::vector<std::string>& vols = opened.volumes;
  RestoreStats stats;
  Progress::Get().Start("restore of " + point + (path.empty() ? "" : ":" + path), 0, "restored");
  // A whole volume or a part of it, as `name` in `parent` (whole point), or
  // to the path `to` (one volume or a part).
  auto restore_volume_part = [&](const std::string& vol, const std::string& sub, const Dir* parent,
                                 const std::string& name) {
    std::string src = sub.empty() ? JoinPath(root, vol) : JoinPath(JoinPath(root, vol), sub);
    const FileStatus st = env->Status(src);
    if (st.kind == FileKind::kMissing) ThrowNotFound("no " + (sub.empty() ? vol : vol + "/" + sub) + " in point " + point);
    if (options.one_file && st.kind != FileKind::kFile)
      ThrowNotOneImage(path, point, st.kind == FileKind::kDir ? "a directory" : "not a regular file");
    // A file volume's map lives in the mirror's root; a file in a tree, in the tree's.
    const std::string map_root = sub.empty() ? root : JoinPath(root, vol);
    const std::string map_rel = sub.empty() ? vol : sub;
    if (st.kind == FileKind::kFile) {
      if (parent) {
        RestoreFile(env, src, map_root, map_rel, *parent, name, Overwrite::kAllow, policy, options.cancel, &stats,
                    log);
      } else if (CheckDestination(env, to, overwrite, true)) {
        RestoreFileToDevice(env, src, map_root, map_rel, CanonicalPath(to), options.cancel, &stats, log);
      } else {
        auto [dir, base] = OpenParent(to);
        RestoreFile(env, src, map_root, map_rel, dir, base, overwrite, policy, options.cancel, &stats, log);
      }
    } else if (st.kind == FileKind::kDir) {
      if (parent) {
        TreeRestorer r(env, JoinPath(root, vol), sub, parent, options, &stats, log);
        r.RestoreEntry(src, *parent, name, "", name);
      } else {
        RestoreTree(env, src, JoinPath(root, vol), sub, to, options, &stats, log);
      }
    } else {
      ThrowConfig(src + " is neither a file nor a directory; restore the directory that holds it");
    }
  };
  if (options.one_file && path.empty()) ThrowNotOneImage("", point, "");
  if (path.empty()) {
    const bool exists = env->Exists(to);
    if (exists && overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force or a new directory");
    CheckDestination(env, to, overwrite, false);
    CheckApart(root, to);
    Dir dest = exists ? Dir::Open(to) : Dir::OpenOrCreate(to);
    for (const auto& vol : vols) restore_volume_part(vol, "", &dest, vol);
    if (overwrite == Overwrite::kDelete)
      for (const auto& name : dest.List())
        if (std::find(vols.begin(), vols.end(), name) == vols.end()) stats.removed += dest.Remove(name);
    dest.Sync();
    SyncFileSystem(to);
  } else {
    std::string p = path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    auto slash = p.find('/');
    std::string vol = p.substr(0, slash);
    std::string sub = slash == std::string::npos ? "" : p.substr(slash + 1);
    if (std::find(vols.begin(), vols.end(), vol) == vols.end())
      ThrowNoSuchVolume(point, vol, vols);
    if (!sub.empty()) CheckInsidePath(env, root, p, "path");  // the volume itself may not be a symlink either
    restore_volume_part(vol, sub, nullptr, "");
  }
  return stats;
}
}  // namespace vmback
