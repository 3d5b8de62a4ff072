// `vmback ls` on an in-place target: the point's mirror, read as it is.
#include <algorithm>
#include <optional>

#include "inplace/blockmap.h"
#include "inplace/point_info.h"
#include "inplace/target.h"
#include "inplace/target_ops.h"
#include "scan/metadata.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

PointEntry EntryAt(Env* env, const std::string& file, const std::string& path) {
  const FileStatus st = env->Status(file);
  if (st.kind == FileKind::kMissing) ThrowNotFound(path + ": not there");
  return PointEntryOf(ReadMetadata(env, file, st), path);
}

// Appends the entries of directory dir (at path), and everything below with
// recursive. At a volume's top, its blockmaps are vmback's, not the volume's.
void ListDir(Env* env, const std::string& dir, const std::string& path, bool top, bool recursive,
             std::vector<PointEntry>* out) {
  std::vector<std::string> names = env->ListDir(dir);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (top && name == kBlockmapDir) continue;
    const std::string file = JoinPath(dir, name);
    const std::string child = path + "/" + name;  // not out->back().path: out grows below
    out->push_back(EntryAt(env, file, child));
    if (recursive && out->back().type == "dir") ListDir(env, file, child, false, true, out);
  }
}

}  // namespace

OpenedTargetPoint OpenTargetPoint(InplaceTarget* target, Env* env, const std::string& point) {
  OpenedTargetPoint p;
  p.name = point;
  if (point == "latest") {
    auto points = target->ListPoints();
    if (points.empty()) ThrowNotFound("no points yet in " + target->describe());
    p.name = points.back();
  }
  p.view = target->OpenPoint(p.name);
  const std::string& root = p.view->root();
  if (!env->Exists(JoinPath(root, kPointInfo)))
    ThrowCorrupt("point " + p.name + " of " + target->describe() + " has no " + kPointInfo);
  p.volumes = VolumeNames(ReadPointInfo(env, root));
  return p;
}

TargetPath ResolveTargetPath(Env* env, const OpenedTargetPoint& p, const std::string& path) {
  const std::string& root = p.view->root();
  const auto slash = path.find('/');
  const std::string vol = path.substr(0, slash);
  const std::string sub = slash == std::string::npos ? "" : path.substr(slash + 1);
  if (std::find(p.volumes.begin(), p.volumes.end(), vol) == p.volumes.end())
    ThrowNoSuchVolume(p.name, vol, p.volumes);
  if (sub.empty()) return {JoinPath(root, vol), root, vol};
  // From the root: the volume itself must not be a symlink either.
  CheckInsidePath(env, root, path, "path");
  if (sub == kBlockmapDir || sub.rfind(std::string(kBlockmapDir) + "/", 0) == 0)
    ThrowNotFound(EscapeForTerminal(path) + " not found in point " + p.name);
  return {JoinPath(JoinPath(root, vol), sub), JoinPath(root, vol), sub};
}

PointEntry TargetEntryAt(Env* env, const OpenedTargetPoint& p, const std::string& path) {
  return EntryAt(env, ResolveTargetPath(env, p, path).file, path);
}

std::vector<PointEntry> ListOpenedTargetPoint(Env* env, const OpenedTargetPoint& opened, const std::string& path,
                                              bool recursive) {
  const std::string& root = opened.view->root();
  std::vector<PointEntry> out;
  if (path.empty()) {
    for (const auto& vol : opened.volumes) {
      out.push_back(EntryAt(env, JoinPath(root, vol), vol));
      if (recursive && out.back().type == "dir") ListDir(env, JoinPath(root, vol), vol, true, true, &out);
    }
    return out;
  }
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  const TargetPath at = ResolveTargetPath(env, opened, p);
  PointEntry e = EntryAt(env, at.file, p);
  if (e.type != "dir") return {e};
  ListDir(env, at.file, p, p.find('/') == std::string::npos, recursive, &out);
  return out;
}

namespace {

// The blockmap of the file at path ("VOLUME" or "VOLUME/dir/file") in the
// opened point, or nullopt when it is missing or unsound. A file volume's
// map lives in the point's root; a file in a tree, in the tree's.
std::optional<Blockmap> MapOf(Env* env, const OpenedTargetPoint& opened, const PointEntry& e) {
  const std::string& root = opened.view->root();
  const auto slash = e.path.find('/');
  const std::string map_root = slash == std::string::npos ? root : JoinPath(root, e.path.substr(0, slash));
  const std::string rel = slash == std::string::npos ? e.path : e.path.substr(slash + 1);
  try {
    Blockmap m = ReadBlockmap(env, BlockmapPath(map_root, rel));
    if (m.file_size != e.size || m.blocks.size() != BlockCount(m.file_size, m.block_size)) return std::nullopt;
    return m;
  } catch (const Error& err) {
    if (err.kind() != ErrorKind::kNotFound && err.kind() != ErrorKind::kCorrupt) throw;
    return std::nullopt;
  }
}

}  // namespace

std::vector<PointEntry> ListTargetEntries(InplaceTarget* target, Env* env, const std::string& point_arg,
                                          const std::string& path, bool recursive) {
  return ListOpenedTargetPoint(env, OpenTargetPoint(target, env, point_arg), path, recursive);
}

std::vector<PointEntry> FindTargetEntries(InplaceTarget* target, Env* env, const std::string& point,
                                          const PathMatcher& match, std::string* resolved) {
  const OpenedTargetPoint opened = OpenTargetPoint(target, env, point);
  *resolved = opened.name;
  std::vector<PointEntry> out = ListOpenedTargetPoint(env, opened, "", true);
  std::erase_if(out, [&](const PointEntry& e) { return !match(e.path); });
  for (PointEntry& e : out) {
    if (e.type != "file") continue;
    if (const std::optional<Blockmap> m = MapOf(env, opened, e)) e.version = ContentVersion(m->blocks);
  }
  return out;
}

PointDiff DiffTargetPoints(InplaceTarget* target, Env* env, const std::string& from, const std::string& to,
                           const std::string& path) {
  const OpenedTargetPoint a = OpenTargetPoint(target, env, from);
  const OpenedTargetPoint b = OpenTargetPoint(target, env, to);
  PointDiff d;
  d.from = a.name;
  d.to = b.name;
  std::vector<PointEntry> ea, eb;
  const bool in_a = PathListed([&] { ea = ListOpenedTargetPoint(env, a, path, true); });
  const bool in_b = PathListed([&] { eb = ListOpenedTargetPoint(env, b, path, true); });
  if (!in_a && !in_b) ThrowPathInNeither(path, d);
  d.changes = DiffPointEntries(std::move(ea), std::move(eb),
                               [&](const PointEntry& x, const PointEntry& y) -> std::optional<ContentDelta> {
    const std::optional<Blockmap> mx = MapOf(env, a, x), my = MapOf(env, b, y);
    if (!mx || !my || mx->block_size != my->block_size) {
      if (x.size == y.size && x.mtime_ns == y.mtime_ns) return std::nullopt;
      return ContentDelta{};
    }
    ContentDelta delta;
    delta.known = true;
    delta.block_size = mx->block_size;
    for (size_t k = 0; k < std::max(mx->blocks.size(), my->blocks.size()); k++)
      if (k >= mx->blocks.size() || k >= my->blocks.size() || mx->blocks[k] != my->blocks[k]) delta.blocks++;
    if (delta.blocks == 0 && x.size == y.size) return std::nullopt;
    return delta;
  });
  return d;
}

}  // namespace vmback
