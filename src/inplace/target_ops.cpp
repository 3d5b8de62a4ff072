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

#include "inplace/point_info.h"
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

// lstat(2) says a directory; false when path cannot be told (not there, or
// an error: the caller goes on as for a file).
bool IsDir(Env* env, const std::string& path) {
  try {
    return env->Status(path).kind == FileKind::kDir;
  } catch (const Error&) {
    return false;
  }
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

// The volumes' names, checked: plain, not reserved, each once.
std::set<std::string> CheckVolumeNames(const std::vector<VolumeSpec>& volumes) {
  std::set<std::string> names;
  for (const auto& v : volumes) {
    if (!IsValidVolumeName(v.name) || IsReservedName(v.name)) ThrowConfig("cannot use '" + v.name + "' as a volume name");
    if (!names.insert(v.name).second) ThrowConfig("volume " + v.name + " is given twice");
  }
  if (volumes.empty()) ThrowConfig("nothing to back up: give sources");
  return names;
}

// The mirror holds the guests' files with their owners and modes, and
// blockmaps that name and hash them: root's eyes only.
void MakePrivate(Env* env, const std::string& mirror) {
  if (env->StatusFollowingLinks(mirror).mode != 0700) env->SetMode(CanonicalPath(mirror), 0700);
}

// Removes the description of the previous point (a mirror being changed
// describes no point) and returns its volume names (none when unreadable).
std::vector<std::string> RemovePointInfo(Env* env, const std::string& mirror, Logger* log) {
  std::string info_path = JoinPath(mirror, kPointInfo);
  std::vector<std::string> previous;
  if (!env->Exists(info_path)) return previous;
  try {
    previous = VolumeNames(ReadPointInfo(env, mirror));
  } catch (const Error& e) {
    log->Warn(std::string(e.what()) + " (the previous point's description; ignored)");
  }
  env->Remove(info_path);
  env->SyncDir(mirror);
  return previous;
}

InplaceOptions SinkOptions(const VolumeSpec& v, const BackupOptions& options, const InplaceTarget& target,
                           const VolumeExcludes* excludes) {
  InplaceOptions io;
  io.excludes = excludes;
  io.full_read = options.full_read;
  io.one_file_system = v.one_file_system;
  io.own_prefix = v.own_prefix;
  io.punch_holes = target.punch_holes();
  io.threads = options.threads;
  io.cancel = options.cancel;
  io.read_limit = options.read_limit;
  io.drop_cache = options.drop_cache;
  io.changes = v.changes;
  return io;
}

// One volume's figures, as a backup into any destination gives them.
VolumeStats VolumeStatsOf(const std::string& name, const InplaceStats& s, uint32_t block_size, double secs) {
  VolumeStats vs;
  vs.name = name;
  vs.files = s.files;
  vs.dirs = s.dirs;
  vs.other = s.other;
  vs.bytes = s.blocks * block_size;
  vs.bytes_read = s.bytes_read;
  vs.files_reused = s.files_skipped;
  vs.blocks = s.blocks;
  vs.new_blocks = s.blocks_written;
  vs.zero_blocks = s.holes_punched;
  vs.errors = s.errors;
  vs.bytes_written = s.bytes_written;
  vs.files_by_change_list = s.files_by_change_list;
  vs.change_method = s.change_method;
  vs.change_why = s.change_why;
  vs.seconds = secs;
  return vs;
}

// Mirrors volume v into MIRROR/<name> and adds its figures to *result.
// Returns the volume's entry for the point's description.
nlohmann::json BackupVolume(InplaceTarget* target, Env* env, const VolumeSpec& v, const BackupOptions& options,
                            const VolumeExcludes* excludes,
                            Logger* log, BackupResult* result) {
  const std::string& mirror = target->mirror_dir();
  std::string dest = JoinPath(mirror, v.name);
  const FileStatus src_st = env->StatusFollowingLinks(v.source);
  if (src_st.kind == FileKind::kMissing)
    ThrowNotFound("volume " + v.name + ": source " + v.source + ": " + std::strerror(ENOENT));
  bool tree = src_st.kind == FileKind::kDir;
  // A volume that changed kind (file <-> tree) starts afresh.
  if (env->Exists(dest) && IsDir(env, dest) != tree) {
    log->Info("volume " + v.name + " changed from " + (tree ? "a file" : "a tree") + " to " +
              (tree ? "a tree" : "a file") + "; replacing its mirror");
    Dir::Open(CanonicalPath(mirror)).Remove(v.name);  // as itself, never across a mount
    env->SyncDir(mirror);
  }
  Progress::Get().StartVolume(v.name, SizeOrZero(v.source));
  const auto vstart = std::chrono::steady_clock::now();
  InplaceStats s = SyncInPlace(env, v.source, dest, target->block_size(), SinkOptions(v, options, *target, excludes), log);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - vstart).count();
  result->inplace.push_back(s);
  result->volumes.push_back(VolumeStatsOf(v.name, s, target->block_size(), secs));
  result->errors += s.errors;
  result->data_bytes_written += s.bytes_written;
  result->bytes_written += s.bytes_written + s.map_bytes_written;
  result->blocks_written += s.blocks_written;
  return {{"name", v.name}, {"kind", tree ? "tree" : "file"}, {"source", v.source}};
}

// Removes from the mirror the volumes of the previous point that are no
// longer given (names), with their maps.
void RemoveDroppedVolumes(Env* env, const std::string& mirror, const std::vector<std::string>& previous,
                          const std::set<std::string>& names, Logger* log) {
  for (const auto& old : previous) {
    if (names.count(old) || IsReservedName(old) || !IsValidVolumeName(old)) continue;
    std::string p = JoinPath(mirror, old);
    if (!env->Exists(p)) continue;
    log->Info("volume " + old + " is no longer backed up; removing it from the mirror");
    Dir::Open(CanonicalPath(mirror)).Remove(old);  // as itself, never across a mount
    std::string map = BlockmapPath(mirror, old);
    CheckOwnEntry(env, map, false);
    if (env->Exists(map)) env->Remove(map);
    env->SyncDir(mirror);
  }
}

}  // namespace

BackupResult BackupToTarget(InplaceTarget* target, Env* env, const std::vector<VolumeSpec>& volumes,
                            const BackupOptions& options, Logger* log, const BackupExcludes& excludes) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& mirror = target->mirror_dir();
  const std::set<std::string> names = CheckVolumeNames(volumes);
  CheckOwnEntry(env, JoinPath(mirror, kTargetLock), false);
  auto lock = env->Lock(JoinPath(mirror, kTargetLock), LockMode::kExclusive);
  ClaimMirror(env, target, log);
  MakePrivate(env, mirror);
  // The description goes first: a mirror being changed describes no point.
  const std::vector<std::string> previous = RemovePointInfo(env, mirror, log);

  BackupResult result;
  nlohmann::json vols = nlohmann::json::array();
  for (size_t i = 0; i < volumes.size(); i++) {
    CheckCancel(options.cancel);
    auto ex = excludes.find(volumes[i].name);
    vols.push_back(BackupVolume(target, env, volumes[i], options, ex == excludes.end() ? nullptr : &ex->second, log,
                                &result));
    if (options.on_volume_done) options.on_volume_done(i);
  }
  if (result.errors)
    throw Error(ErrorKind::kIo, Counted(result.errors, "source entry", "source entries") +
                                    " could not be read (see above); no point taken");
  RemoveDroppedVolumes(env, mirror, previous, names, log);
  const int64_t now = env->NowNanos();
  nlohmann::json info = {{"time_ns", now},
                         {"time", FormatTimeUtc(now)},
                         {"block_size", target->block_size()},
                         {"volumes", vols},
                         {"stats", BackupResultToJson(result)}};
  if (!options.vms.empty()) info["vms"] = VmRecordsToJson(options.vms);
  WriteFileAtomic(env, JoinPath(mirror, kPointInfo), info.dump(2) + "\n");
  SyncFileSystem(mirror);
  result.point = target->CreatePoint();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
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
      if (!IsDir(env, vroot)) {
        file_vols.insert(vol);
        continue;
      }
      for (const auto& m : ListBlockmaps(env, vroot)) {
        std::string label = point + ": " + vol + "/";
        try {
          Blockmap map = ReadBlockmap(env, m);
          label += EscapeForTerminal(map.path);
          CheckInsidePath(env, vroot, map.path, "the blockmap " + m + " names a path");
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
  const std::set<std::string> held = target->HeldPoints();
  for (auto& d : r.decisions) {
    if (d.keep || !held.count(d.name)) continue;
    d.keep = true;
    d.reasons = {"held (zfs hold: the base of a replica's next send)"};
  }
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
