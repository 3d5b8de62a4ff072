#include "run/target_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include "scan/file_scanner.h"
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

// A name as it may appear in a message: printable bytes as they are, the
// rest as \xHH.
std::string Printable(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
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
        ThrowCorrupt(info.path + ": volume name '" + Printable(name) +
                     "' is not a plain name (damaged or forged); nothing restored from it");
      if (!seen.insert(name).second) ThrowCorrupt(info.path + ": volume name '" + Printable(name) + "' is given twice");
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
      ThrowConfig(what + " '" + Printable(rel) + "' leaves its volume");
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

// Hashes the file at `file` block by block and compares with its map.
// Returns problems ("" prefix added by the caller); counts into blocks/bytes.
std::vector<std::string> CheckAgainstMap(Env* env, const std::string& file, const Blockmap& map,
                                         uint64_t* blocks, uint64_t* bytes) {
  std::vector<std::string> problems;
  auto f = env->OpenRead(file);
  uint64_t size = f->Size();
  if (size != map.file_size)
    problems.push_back("size " + std::to_string(size) + " differs from its blockmap's " +
                       std::to_string(map.file_size));
  std::vector<char> buf(map.block_size);
  uint64_t n = (map.file_size + map.block_size - 1) / map.block_size;
  if (map.blocks.size() != n) {
    problems.push_back("blockmap holds " + std::to_string(map.blocks.size()) + " blocks for " +
                       std::to_string(n));
    return problems;
  }
  for (uint64_t i = 0; i < n; i++) {
    uint64_t off = i * map.block_size;
    size_t want = static_cast<size_t>(std::min<uint64_t>(map.block_size, map.file_size - off));
    size_t got = off < size ? f->ReadAt(off, buf.data(), want) : 0;
    if (got < want) std::memset(buf.data() + got, 0, want - got);
    Hash h = IsAllZero(buf.data(), want) ? Hash{} : Sha256(buf.data(), want);
    (*blocks)++;
    *bytes += want;
    if (h != map.blocks[i])
      problems.push_back("block " + std::to_string(i) + " (offset " + std::to_string(off) +
                         ") differs from its blockmap");
  }
  return problems;
}

// Every blockmap below map_root (its .vmback-blockmaps directory).
std::vector<std::string> MapFiles(Env* env, const std::string& map_root) {
  std::vector<std::string> out;
  std::string dir = JoinPath(map_root, kBlockmapDir);
  if (!IsDir(dir)) return out;
  for (const auto& sub : env->ListDir(dir)) {
    std::string d = JoinPath(dir, sub);
    if (!IsDir(d)) continue;
    for (const auto& m : env->ListDir(d))
      if (EndsWith(m, ".map")) out.push_back(JoinPath(d, m));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The file a restore writes: `to` opened through its parent's descriptor,
// never through a symlink (CheckDestination allowed only the /dev/VG/LV case,
// opened by path). Metadata is set on this descriptor, not by path.
class RestoreOutput {
 public:
  RestoreOutput(const std::string& to, bool device, bool exists) : path_(to) {
    if (device) {
      fd_ = ::open(to.c_str(), O_WRONLY | O_CLOEXEC);
    } else {
      const std::string parent = DirName(to);
      int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) ThrowIo("open " + parent, errno);
      const std::string name = BaseName(to);
      fd_ = ::openat(dir, name.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (exists ? 0 : O_CREAT | O_EXCL), 0600);
      int err = errno;
      ::close(dir);
      errno = err;
    }
    if (fd_ < 0) ThrowIo("open " + to, errno);
    struct stat st;
    if (::fstat(fd_, &st) != 0) ThrowIo("stat " + to, errno);
    if (device ? !S_ISBLK(st.st_mode) : !S_ISREG(st.st_mode))
      ThrowConfig(to + " is not a " + (device ? "block device" : "regular file") + "; nothing was written");
  }
  ~RestoreOutput() {
    if (fd_ >= 0) ::close(fd_);
  }
  RestoreOutput(const RestoreOutput&) = delete;
  RestoreOutput& operator=(const RestoreOutput&) = delete;

  void WriteAt(uint64_t off, const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) ThrowIo("write " + path_, errno);
      p += w;
      n -= static_cast<size_t>(w);
      off += static_cast<uint64_t>(w);
    }
  }
  void Truncate(uint64_t size) {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) ThrowIo("truncate " + path_, errno);
  }
  // Mode and times of the point's file, on the open descriptor.
  void SetMetadata(const struct stat& st) {
    if (::fchmod(fd_, st.st_mode & 07777) != 0) ThrowIo("chmod " + path_, errno);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(fd_, times) != 0) ThrowIo("set the mtime of " + path_, errno);
  }
  void SyncAndClose() {
    if (::fsync(fd_) != 0) ThrowIo("fsync " + path_, errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) ThrowIo("close " + path_, errno);
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Copies one regular file out of a point, checking every block against its map.
void RestoreFile(Env* env, const std::string& src, const std::string& map_root, const std::string& rel,
                 const std::string& to, Overwrite overwrite, RestoreStats* stats, Logger* log) {
  struct stat dst_st;
  const bool exists = ::lstat(to.c_str(), &dst_st) == 0;
  const bool device = CheckDestination(to, overwrite, true);
  if (exists && S_ISDIR(dst_st.st_mode)) ThrowConfig(to + " is a directory; give the file's path");
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
  RestoreOutput out(to, device, exists);
  if (!device) out.Truncate(0);
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
    if (!zero || device) out.WriteAt(off, buf.data(), want);
    stats->bytes += want;
  }
  if (!device) {
    out.Truncate(size);
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0) ThrowIo("stat " + src, errno);
    out.SetMetadata(st);
  }
  out.SyncAndClose();
  stats->files++;
}

// Copies a tree out of a point with the in-place sink, then compares the maps
// the sink computed from what it read with the maps stored in the point.
void RestoreTree(Env* env, const std::string& src, const std::string& map_root, const std::string& rel_prefix,
                 const std::string& to, Overwrite overwrite, RestoreStats* stats, Logger* log) {
  if (env->Exists(to)) {
    if (overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force to make it identical to the point");
    CheckDestination(to, overwrite, false);
    if (!IsDir(to)) ThrowConfig(to + " exists and is not a directory");
  }
  InplaceOptions opts;
  opts.source_is_mirror = true;
  opts.full_read = true;
  Logger quiet(LogLevel::kWarning);
  InplaceStats s = SyncInPlace(env, src, to, 128 * 1024, opts, &quiet);
  if (s.errors) ThrowIo("restore of " + src + ": " + std::to_string(s.errors) + " entries could not be read", EIO);
  for (const auto& m : MapFiles(env, to)) {
    Blockmap got = ReadBlockmap(env, m);
    std::string point_rel = rel_prefix.empty() ? got.path : rel_prefix + "/" + got.path;
    Blockmap want;
    try {
      want = ReadBlockmap(env, BlockmapPath(map_root, point_rel));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kNotFound) throw;
      log->Warn(JoinPath(src, got.path) + ": no blockmap in the point; restored without the end-to-end check");
      continue;
    }
    // Same data read <=> same hashes at the point's block size.
    uint64_t blocks = 0, bytes = 0;
    auto problems = CheckAgainstMap(env, JoinPath(to, got.path), want, &blocks, &bytes);
    if (!problems.empty())
      ThrowCorrupt(JoinPath(src, got.path) + ": " + problems.front() + "; the point is damaged (run 'vmback verify')");
  }
  // Removing the restore's own maps touched the root's mtime: put it back.
  RemoveTreeNoFollow(JoinPath(to, kBlockmapDir));
  struct stat st;
  if (::lstat(src.c_str(), &st) == 0) {
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) ThrowIo("set the mtime of " + to, errno);
  }
  SyncFileSystem(to);
  stats->files += s.files;
  stats->dirs += s.dirs;
  stats->other += s.other;
  stats->bytes += s.bytes_read;
  stats->warnings += s.warnings;
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
      RemoveTreeNoFollow(dest);
      env->SyncDir(mirror);
    }
    InplaceOptions io;
    io.full_read = options.full_read;
    io.one_file_system = v.one_file_system;
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
    RemoveTreeNoFollow(p);
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
                               const std::string& path, const std::string& to, Overwrite overwrite,
                               Logger* log) {
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
  auto restore_volume_part = [&](const std::string& vol, const std::string& sub, const std::string& dest) {
    std::string src = sub.empty() ? JoinPath(root, vol) : JoinPath(JoinPath(root, vol), sub);
    struct stat st;
    if (::lstat(src.c_str(), &st) != 0) ThrowNotFound("no " + (sub.empty() ? vol : vol + "/" + sub) + " in point " + point);
    if (S_ISREG(st.st_mode)) {
      // A file volume's map lives in the mirror's root; a file in a tree, in the tree's.
      RestoreFile(env, src, sub.empty() ? root : JoinPath(root, vol), sub.empty() ? vol : sub, dest, overwrite,
                  &stats, log);
    } else if (S_ISDIR(st.st_mode)) {
      RestoreTree(env, src, JoinPath(root, vol), sub, dest, overwrite, &stats, log);
    } else {
      ThrowConfig(src + " is neither a file nor a directory; restore the directory that holds it");
    }
  };
  if (path.empty()) {
    if (env->Exists(to) && overwrite == Overwrite::kRefuse) ThrowConfig(to + " exists; give --force or a new directory");
    CheckDestination(to, overwrite, false);
    env->MakeDir(to);
    for (const auto& vol : vols) restore_volume_part(vol, "", JoinPath(to, vol));
    env->SyncDir(to);
  } else {
    std::string p = path;
    while (!p.empty() && p.back() == '/') p.pop_back();
    auto slash = p.find('/');
    std::string vol = p.substr(0, slash);
    std::string sub = slash == std::string::npos ? "" : p.substr(slash + 1);
    if (std::find(vols.begin(), vols.end(), vol) == vols.end())
      ThrowNotFound("point " + point + " has no volume " + vol);
    if (!sub.empty()) CheckInsidePath(JoinPath(root, vol), sub, "path");
    restore_volume_part(vol, sub, to);
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
      for (const auto& m : MapFiles(env, vroot)) {
        std::string label = point + ": " + vol + "/";
        try {
          Blockmap map = ReadBlockmap(env, m);
          label += Printable(map.path);
          CheckInsidePath(vroot, map.path, "the blockmap " + m + " names a path");
          r.files++;
          for (const auto& p : CheckAgainstMap(env, JoinPath(vroot, map.path), map, &r.blocks, &r.bytes))
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
        for (const auto& p : CheckAgainstMap(env, JoinPath(root, vol), map, &r.blocks, &r.bytes))
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
