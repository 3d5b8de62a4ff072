#include "inplace/target_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "os/dir.h"
#include "scan/file_scanner.h"
#include "scan/metadata.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace vmback {

namespace {

constexpr const char* kTargetLock = ".vmback-lock";

bool IsReservedName(const std::string& name) {
  return name.rfind(".vmback-", 0) == 0 || name == ".zfs" || name == "lost+found";
}


bool IsDir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The description of a point, written into the mirror before the point is taken.
struct PointInfoFile {
  std::string path;
  nlohmann::json json;
};
PointInfoFile ReadPointInfo(Env* env, const std::string& root) {
  std::string path = JoinPath(root, kPointInfo);
  try {
    return {path, nlohmann::json::parse(ReadFileToString(env, path))};
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(path + ": " + e.what());
  }
}

// The volume names of a point, validated here, where they are decoded: each
// one is joined to a destination (--to, the mirror), so a name that is not
// one plain, non-reserved path component ("../x", "a/b", "..", "", NUL) is
// damage or forgery, never used.
std::vector<std::string> VolumeNames(const PointInfoFile& info) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  try {
    const auto& vols = info.json.at("volumes");
    if (!vols.is_array()) ThrowCorrupt(info.path + ": \"volumes\" is not a list");
    for (const auto& v : vols) {
      std::string name = v.at("name").get<std::string>();
      if (!IsValidVolumeName(name) || IsReservedName(name))
        ThrowCorrupt(info.path + ": volume name '" + EscapeForTerminal(name) +
                     "' is not a plain name (damaged or forged); nothing restored from it");
      if (!seen.insert(name).second) ThrowCorrupt(info.path + ": volume name '" + EscapeForTerminal(name) + "' is given twice");
      out.push_back(std::move(name));
    }
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(info.path + ": " + e.what());
  }
  return out;
}

// A path inside a volume (from the command line or a blockmap of a point):
// components that stay below the volume, no symlink among its directories.
void CheckInsidePath(const std::string& base, const std::string& rel, const std::string& what) {
  std::string at = base;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    std::string part = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos)
      ThrowConfig(what + " '" + EscapeForTerminal(rel) + "' leaves its volume");
    at = JoinPath(at, part);
    if (slash == std::string::npos) break;
    struct stat st;
    if (::lstat(at.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      ThrowConfig(at + " is a symlink in the point; restore the directory that holds it");
    start = slash + 1;
  }
}

// Restore never writes through a symlink at --to, except the documented
// /dev/VG/LV case: a link to a block device, with --force (allow_device).
// Returns whether `to` is (a link to) a block device.
bool CheckDestination(const std::string& to, Overwrite overwrite, bool allow_device) {
  struct stat lst;
  if (::lstat(to.c_str(), &lst) != 0) {
    if (errno == ENOENT) return false;
    ThrowIo("stat " + to, errno);
  }
  if (overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force to overwrite it");
  if (!S_ISLNK(lst.st_mode)) return S_ISBLK(lst.st_mode);
  struct stat st;
  if (allow_device && ::stat(to.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) return true;
  ThrowConfig(to + " is a symlink; restore writes through a symlink only to a block device (/dev/VG/LV, with"
                   " --force): give the real path");
}

// Claims an empty directory for vmback, or checks it was claimed before.
void ClaimMirror(Env* env, InplaceTarget* target, Logger* log) {
  const std::string& dir = target->mirror_dir();
  std::string marker = JoinPath(dir, kTargetMarker);
  if (env->Exists(marker)) return;
  for (const auto& name : env->ListDir(dir)) {
    if (name == ".zfs" || name == "lost+found" || name == kTargetLock) continue;
    ThrowConfig(target->describe() + " is not empty and was not made by vmback (it holds " + name +
                "); give vmback an empty directory, subvolume or dataset of its own");
  }
  WriteFileAtomic(env, marker, "vmback in-place target (" + target->kind() + "); do not edit by hand\n");
  log->Info("claimed " + target->describe() + " as a vmback target");
}

// Copies the regular file src of a point into out, checking every block
// against the file's blockmap in the point (rel below map_root): wrong data
// is never written silently. All-zero blocks are skipped (the caller sets
// the size, leaving holes) unless dense (a block device: zeros written too).
// Returns the file's size.
uint64_t CopyChecked(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                     WritableFile* out, bool dense, RestoreStats* stats, Logger* log) {
  Blockmap map;
  bool have_map = true;
  try {
    map = ReadBlockmap(env, BlockmapPath(map_root, rel));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNotFound) throw;
    have_map = false;
    log->Warn(src + ": no blockmap in the point; restored without the end-to-end check");
  }
  auto in = env->OpenRead(src);
  uint64_t size = in->Size();
  if (have_map && size != map.file_size)
    ThrowCorrupt(src + ": size " + std::to_string(size) + " differs from its blockmap's " +
                 std::to_string(map.file_size));
  const uint32_t bs = have_map ? map.block_size : 128 * 1024;
  std::vector<char> buf(bs);
  for (uint64_t off = 0, i = 0; off < size; off += bs, i++) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(bs, size - off));
    size_t got = in->ReadAt(off, buf.data(), want);
    if (got < want) ThrowIo(src + ": short read at offset " + std::to_string(off), EIO);
    bool zero = IsAllZero(buf.data(), want);
    if (have_map) {
      Hash h = zero ? Hash{} : Sha256(buf.data(), want);
      if (h != map.blocks[i])
        ThrowCorrupt(src + ": block " + std::to_string(i) + " (offset " + std::to_string(off) +
                     ") differs from its blockmap; the point is damaged (run 'vmback verify')");
    }
    if (!zero || dense) out->WriteAt(off, buf.data(), want);
    stats->bytes += want;
  }
  return size;
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
// tree) as `name` in `parent`: an existing regular file there is written in
// place (--force), anything else at the name is refused.
void RestoreFile(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                 const Dir& parent, const std::string& name, Overwrite overwrite, const MetadataPolicy& policy,
                 RestoreStats* stats, Logger* log) {
  struct stat dst_st;
  const bool exists = parent.Stat(name, &dst_st);
  if (exists && overwrite == Overwrite::kRefuse) ThrowConfig(parent.ChildPath(name) + " exists; give --force to overwrite it");
  if (exists && S_ISDIR(dst_st.st_mode)) ThrowConfig(parent.ChildPath(name) + " is a directory; give the file's path");
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) ThrowIo("stat " + src, errno);
  Entry meta = ReadMetadata(src, st);
  auto out = exists ? parent.OpenFile(name) : parent.CreateFile(name);
  out->Truncate(0);
  out->Truncate(CopyChecked(env, src, map_root, rel, out.get(), false, stats, log));
  CountWarnings(Dir::SetMetadataFd(out->fd(), out->path(), MetadataOf(meta), policy), stats, log);
  out->Sync();
  out->Close();
  stats->files++;
}

// A file of a point written onto a block device (the documented /dev/VG/LV
// case, with --force): in full, zeros too; the device keeps its metadata.
void RestoreFileToDevice(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                         const std::string& device, RestoreStats* stats, Logger* log) {
  FdWritableFile out(device, OpenBlockDeviceExclusive(device));
  CopyChecked(env, src, map_root, rel, &out, true, stats, log);
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
    struct stat st;
    if (::lstat(map_root_.c_str(), &st) != 0) ThrowIo("stat " + map_root_, errno);
    src_dev_ = st.st_dev;
  }

  // The point's entry src as `name` in `parent`, replacing what is in the
  // way. rel: src's path below the restored tree ("" for its top); drel:
  // the new entry's path relative to root.
  void RestoreEntry(const std::string& src, const Dir& parent, const std::string& name, const std::string& rel,
                    const std::string& drel) {
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0) ThrowIo("stat " + src, errno);
    Entry e = ReadMetadata(src, st);
    struct stat cur;
    bool exists = parent.Stat(name, &cur);
    if (exists && !(e.type == EntryType::kDir && S_ISDIR(cur.st_mode))) {
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
        const InodeKey key{st.st_dev, st.st_ino};
        auto it = st.st_nlink > 1 ? links_.find(key) : links_.end();
        if (it != links_.end()) {
          const std::string& first = it->second;
          const std::string first_dir = DirName(first);
          Dir from = root_->OpenBeneath(first_dir == "." ? "" : first_dir);
          parent.Link(from, BaseName(first), name);
          stats_->files++;
          return;  // the inode's metadata is set already
        }
        auto out = parent.CreateFile(name);
        try {
          out->Truncate(CopyChecked(env_, src, map_root_, MapRel(rel), out.get(), false, stats_, log_));
          CountWarnings(Dir::SetMetadataFd(out->fd(), out->path(), MetadataOf(e), policy_), stats_, log_);
          out->Sync();
          out->Close();
        } catch (...) {
          out.reset();
          try {
            parent.Remove(name);  // no unchecked half file left behind
          } catch (...) {
          }
          throw;
        }
        stats_->files++;
        if (st.st_nlink > 1) links_.emplace(key, drel);
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
        const mode_t type = st.st_mode & S_IFMT;
        parent.MakeNode(name, type, st.st_rdev);
        CountWarnings(parent.SetMetadata(name, type, MetadataOf(e), policy_), stats_, log_);
        stats_->other++;
        return;
      }
    }
  }

  // Makes the open directory d identical to the point's directory src
  // (lstat st): its children restored, entries the point lacks removed,
  // then d's own metadata.
  void RestoreInto(const std::string& src, const struct stat& st, const Dir& d, const std::string& rel,
                   const std::string& drel) {
    // A mount point in the point (one file system, as the backup) is kept
    // as an empty directory.
    std::vector<std::string> names;
    if (st.st_dev == src_dev_) names = env_->ListDir(src);
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
    for (const auto& name : d.List()) {
      if (keep.count(name) || (drel.empty() && name == ".zfs")) continue;
      d.Remove(name);  // refuses (naming it) a mount below, before deleting anything
    }
    Entry e = ReadMetadata(src, st);
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

// Restores the tree src of a point to `to` (made identical to it when it
// exists, with --force).
void RestoreTree(Env* env, const std::string& src, const std::string& map_root, const std::string& rel_prefix,
                 const std::string& to, const RestoreOptions& options, RestoreStats* stats, Logger* log) {
  const Overwrite overwrite = options.overwrite;
  CheckApart(src, to);
  struct stat src_st;
  if (::lstat(src.c_str(), &src_st) != 0) ThrowIo("stat " + src, errno);
  struct stat lst;
  if (::lstat(to.c_str(), &lst) == 0) {
    if (overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force to make it identical to the point");
    CheckDestination(to, overwrite, false);
    if (!S_ISDIR(lst.st_mode)) ThrowConfig(to + " exists and is not a directory");
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

TargetBackupResult BackupToTarget(InplaceTarget* target, Env* env, const std::vector<VolumeSpec>& volumes,
                                  const BackupOptions& options, Logger* log) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& mirror = target->mirror_dir();
  std::set<std::string> names;
  for (const auto& v : volumes) {
    if (!IsValidVolumeName(v.name) || IsReservedName(v.name)) ThrowConfig("cannot use '" + v.name + "' as a volume name");
    if (!names.insert(v.name).second) ThrowConfig("volume " + v.name + " is given twice");
  }
  if (volumes.empty()) ThrowConfig("nothing to back up: give sources");
  CheckOwnEntry(JoinPath(mirror, kTargetLock), false);
  auto lock = env->Lock(JoinPath(mirror, kTargetLock), LockMode::kExclusive);
  ClaimMirror(env, target, log);
  // The mirror holds the guests' files with their owners and modes, and
  // blockmaps that name and hash them: root's eyes only.
  struct stat mst;
  if (::stat(mirror.c_str(), &mst) != 0) ThrowIo("stat " + mirror, errno);
  if ((mst.st_mode & 07777) != 0700 && ::chmod(mirror.c_str(), 0700) != 0) ThrowIo("chmod " + mirror, errno);

  // The description goes first: a mirror being changed describes no point.
  std::string info_path = JoinPath(mirror, kPointInfo);
  std::vector<std::string> previous;
  if (env->Exists(info_path)) {
    try {
      previous = VolumeNames(ReadPointInfo(env, mirror));
    } catch (const Error& e) {
      log->Warn(std::string(e.what()) + " (the previous point's description; ignored)");
    }
    env->Remove(info_path);
    env->SyncDir(mirror);
  }

  TargetBackupResult result;
  nlohmann::json vols = nlohmann::json::array();
  for (size_t i = 0; i < volumes.size(); i++) {
    const VolumeSpec& v = volumes[i];
    CheckCancel(options.cancel);
    std::string dest = JoinPath(mirror, v.name);
    struct stat src_st;
    if (::stat(v.source.c_str(), &src_st) != 0)
      ThrowNotFound("volume " + v.name + ": source " + v.source + ": " + std::strerror(errno));
    bool tree = S_ISDIR(src_st.st_mode);
    // A volume that changed kind (file <-> tree) starts afresh.
    if (env->Exists(dest) && IsDir(dest) != tree) {
      log->Info("volume " + v.name + " changed from " + (tree ? "a file" : "a tree") + " to " +
                (tree ? "a tree" : "a file") + "; replacing its mirror");
      Dir::Open(CanonicalPath(mirror)).Remove(v.name);  // as itself, never across a mount
      env->SyncDir(mirror);
    }
    InplaceOptions io;
    io.full_read = options.full_read;
    io.one_file_system = v.one_file_system;
    io.own_prefix = v.own_prefix;
    io.punch_holes = target->punch_holes();
    io.threads = options.threads;
    io.cancel = options.cancel;
    io.read_limit = options.read_limit;
    io.drop_cache = options.drop_cache;
    Progress::Get().StartVolumeAt(v.name, v.source);
    const auto vstart = std::chrono::steady_clock::now();
    InplaceStats s = SyncInPlace(env, v.source, dest, target->block_size(), io, log);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - vstart).count();
    result.volumes.push_back(s);
    VolumeStats vs;
    vs.name = v.name;
    vs.files = s.files;
    vs.dirs = s.dirs;
    vs.other = s.other;
    vs.bytes = s.blocks * target->block_size();
    vs.bytes_read = s.bytes_read;
    vs.files_reused = s.files_skipped;
    vs.blocks = s.blocks;
    vs.new_blocks = s.blocks_written;
    vs.zero_blocks = s.holes_punched;
    vs.errors = s.errors;
    vs.seconds = secs;
    result.summary.volumes.push_back(vs);
    result.summary.errors += s.errors;
    result.summary.store.raw_bytes_written += s.bytes_written;
    result.summary.store.stored_bytes_written += s.bytes_written + s.map_bytes_written;
    result.summary.store.blobs_written += s.blocks_written;
    vols.push_back({{"name", v.name}, {"kind", tree ? "tree" : "file"}, {"source", v.source}});
    if (options.on_volume_done) options.on_volume_done(i);
  }
  if (result.summary.errors)
    throw Error(ErrorKind::kIo, std::to_string(result.summary.errors) +
                                    " source entr(y/ies) could not be read (see above); no point taken");
  for (const auto& old : previous) {
    if (names.count(old) || IsReservedName(old) || !IsValidVolumeName(old)) continue;
    std::string p = JoinPath(mirror, old);
    if (!env->Exists(p)) continue;
    log->Info("volume " + old + " is no longer backed up; removing it from the mirror");
    Dir::Open(CanonicalPath(mirror)).Remove(old);  // as itself, never across a mount
    std::string map = BlockmapPath(mirror, old);
    CheckOwnEntry(map, false);
    if (env->Exists(map)) env->Remove(map);
    env->SyncDir(mirror);
  }
  const int64_t now = env->NowNanos();
  nlohmann::json info = {{"time_ns", now},
                         {"time", FormatTimeUtc(now)},
                         {"block_size", target->block_size()},
                         {"volumes", vols},
                         {"stats", TargetBackupToJson(result)}};
  WriteFileAtomic(env, info_path, info.dump(2) + "\n");
  SyncFileSystem(mirror);
  result.summary.point = target->CreatePoint();
  result.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

nlohmann::json TargetBackupToJson(const TargetBackupResult& r) {
  nlohmann::json j = BackupResultToJson(r.summary);
  nlohmann::json vols = nlohmann::json::array();
  for (size_t i = 0; i < r.volumes.size(); i++) {
    const InplaceStats& s = r.volumes[i];
    vols.push_back({{"name", i < r.summary.volumes.size() ? r.summary.volumes[i].name : ""},
                    {"files", s.files},
                    {"files_unchanged", s.files_skipped},
                    {"blocks", s.blocks},
                    {"blocks_written", s.blocks_written},
                    {"bytes_read", s.bytes_read},
                    {"target_bytes_read", s.target_bytes_read},
                    {"bytes_written", s.bytes_written},
                    {"map_bytes_written", s.map_bytes_written},
                    {"holes_punched", s.holes_punched},
                    {"blockmaps_rebuilt", s.blockmaps_rebuilt},
                    {"deleted", s.deleted},
                    {"errors", s.errors}});
  }
  j["inplace"] = vols;
  return j;
}

std::vector<TargetPointInfo> ListTargetPoints(InplaceTarget* target, Env* env) {
  std::vector<TargetPointInfo> out;
  for (const auto& name : target->ListPoints()) {
    TargetPointInfo p;
    p.name = name;
    p.time_ns = target->PointTime(name);
    // Cheap where the point is a directory (btrfs, dir); a ZFS point is
    // described only through .zfs/snapshot where that exists.
    std::string root = target->kind() == "btrfs" ? JoinPath(DirName(target->mirror_dir()), name)
                       : target->kind() == "dir" ? target->mirror_dir()
                                                 : JoinPath(JoinPath(target->mirror_dir(), ".zfs/snapshot"), name);
    try {
      if (env->Exists(JoinPath(root, kPointInfo))) p.volumes = VolumeNames(ReadPointInfo(env, root));
    } catch (const Error&) {
    }
    out.push_back(p);
  }
  return out;
}

RestoreStats RestoreFromTarget(InplaceTarget* target, Env* env, const std::string& point_arg,
                               const std::string& path, const std::string& to, const RestoreOptions& options,
                               Logger* log) {
  const Overwrite overwrite = options.overwrite;
  const MetadataPolicy policy = PolicyOf(options);
  std::string point = point_arg;
  if (point == "latest") {
    auto points = target->ListPoints();
    if (points.empty()) ThrowNotFound("no points yet in " + target->describe());
    point = points.back();
  }
  auto view = target->OpenPoint(point);
  const std::string& root = view->root();
  if (!env->Exists(JoinPath(root, kPointInfo)))
    ThrowCorrupt("point " + point + " of " + target->describe() + " has no " + kPointInfo);
  std::vector<std::string> vols = VolumeNames(ReadPointInfo(env, root));
  RestoreStats stats;
  // A whole volume or a part of it, as `name` in `parent` (whole point), or
  // to the path `to` (one volume or a part).
  auto restore_volume_part = [&](const std::string& vol, const std::string& sub, const Dir* parent,
                                 const std::string& name) {
    std::string src = sub.empty() ? JoinPath(root, vol) : JoinPath(JoinPath(root, vol), sub);
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0) ThrowNotFound("no " + (sub.empty() ? vol : vol + "/" + sub) + " in point " + point);
    // A file volume's map lives in the mirror's root; a file in a tree, in the tree's.
    const std::string map_root = sub.empty() ? root : JoinPath(root, vol);
    const std::string map_rel = sub.empty() ? vol : sub;
    if (S_ISREG(st.st_mode)) {
      if (parent) {
        RestoreFile(env, src, map_root, map_rel, *parent, name, Overwrite::kAllow, policy, &stats, log);
      } else if (CheckDestination(to, overwrite, true)) {
        RestoreFileToDevice(env, src, map_root, map_rel, CanonicalPath(to), &stats, log);
      } else {
        auto [dir, base] = OpenParent(to);
        RestoreFile(env, src, map_root, map_rel, dir, base, overwrite, policy, &stats, log);
      }
    } else if (S_ISDIR(st.st_mode)) {
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
  if (path.empty()) {
    const bool exists = env->Exists(to);
    if (exists && overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force or a new directory");
    CheckDestination(to, overwrite, false);
    CheckApart(root, to);
    Dir dest = exists ? Dir::Open(to) : Dir::OpenOrCreate(to);
    for (const auto& vol : vols) restore_volume_part(vol, "", &dest, vol);
    dest.Sync();
    SyncFileSystem(to);
  } else {
    std::string p = path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    auto slash = p.find('/');
    std::string vol = p.substr(0, slash);
    std::string sub = slash == std::string::npos ? "" : p.substr(slash + 1);
    if (std::find(vols.begin(), vols.end(), vol) == vols.end())
      ThrowNotFound("point " + point + " has no volume " + vol);
    if (!sub.empty()) CheckInsidePath(JoinPath(root, vol), sub, "path");
    restore_volume_part(vol, sub, nullptr, "");
  }
  return stats;
}

TargetVerifyReport VerifyTarget(InplaceTarget* target, Env* env, Logger* log) {
  TargetVerifyReport r;
  WarnAboutMountOptions(*target, log);
  r.scrub = target->Scrub();
  if (r.scrub.ran) {
    if (r.scrub.ok && r.scrub.repaired) log->Warn(r.scrub.summary);
    else if (r.scrub.ok) log->Info(r.scrub.summary);
    else log->Error(r.scrub.summary);
  }
  for (const auto& point : target->ListPoints()) {
    r.points++;
    std::unique_ptr<PointView> view;
    try {
      view = target->OpenPoint(point);
    } catch (const Error& e) {
      r.problems.push_back(point + ": cannot open: " + e.what());
      continue;
    }
    const std::string& root = view->root();
    std::vector<std::string> vols;
    try {
      vols = VolumeNames(ReadPointInfo(env, root));
    } catch (const Error& e) {
      r.problems.push_back(point + ": " + e.what());
      continue;
    }
    std::set<std::string> file_vols;
    for (const auto& vol : vols) {
      std::string vroot = JoinPath(root, vol);
      if (!IsDir(vroot)) {
        file_vols.insert(vol);
        continue;
      }
      for (const auto& m : ListBlockmaps(env, vroot)) {
        std::string label = point + ": " + vol + "/";
        try {
          Blockmap map = ReadBlockmap(env, m);
          label += EscapeForTerminal(map.path);
          CheckInsidePath(vroot, map.path, "the blockmap " + m + " names a path");
          r.files++;
          for (const auto& p : CheckAgainstBlockmap(env, JoinPath(vroot, map.path), map, &r.blocks, &r.bytes))
            r.problems.push_back(label + ": " + p);
        } catch (const Error& e) {
          r.problems.push_back(label + ": " + e.what());
        }
      }
    }
    for (const auto& vol : file_vols) {
      std::string label = point + ": " + vol;
      try {
        Blockmap map = ReadBlockmap(env, BlockmapPath(root, vol));
        r.files++;
        for (const auto& p : CheckAgainstBlockmap(env, JoinPath(root, vol), map, &r.blocks, &r.bytes))
          r.problems.push_back(label + ": " + p);
      } catch (const Error& e) {
        r.problems.push_back(label + ": " + e.what());
      }
    }
  }
  for (const auto& p : r.problems) log->Error(p);
  return r;
}

nlohmann::json TargetVerifyToJson(const TargetVerifyReport& r) {
  return {{"ok", r.ok()},
          {"scrub",
           {{"ran", r.scrub.ran},
            {"ok", r.scrub.ok},
            {"repaired", r.scrub.repaired},
            {"unrepaired", r.scrub.unrepaired},
            {"summary", r.scrub.summary}}},
          {"points", r.points},
          {"files", r.files},
          {"blocks", r.blocks},
          {"bytes", r.bytes},
          {"problems", r.problems}};
}

TargetPruneResult PruneTarget(InplaceTarget* target, const RetentionPolicy& policy, bool dry_run, Logger* log) {
  TargetPruneResult r;
  if (!target->has_history()) {
    log->Info(target->describe() + " keeps no history: nothing to prune");
    return r;
  }
  if (policy.empty()) ThrowConfig("no retention rules: give --keep-* flags or a [retention] table");
  std::vector<PointInfo> points;
  for (const auto& name : target->ListPoints()) points.push_back({name, target->PointTime(name)});
  r.decisions = ApplyRetention(points, policy);
  if (dry_run) return r;
  for (const auto& d : r.decisions) {
    if (d.keep) continue;
    target->DeletePoint(d.name);
    r.deleted.push_back(d.name);
    log->Info("deleted point " + d.name);
  }
  return r;
}

}  // namespace vmback
