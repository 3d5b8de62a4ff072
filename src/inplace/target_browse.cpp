// `vmback ls` on an in-place target: the point's mirror, read as it is.
#include <algorithm>

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
    out->push_back(EntryAt(env, file, path + "/" + name));
    if (recursive && out->back().type == "dir") ListDir(env, file, out->back().path, false, true, out);
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

std::vector<PointEntry> ListTargetEntries(InplaceTarget* target, Env* env, const std::string& point_arg,
                                          const std::string& path, bool recursive) {
  const OpenedTargetPoint opened = OpenTargetPoint(target, env, point_arg);
  const std::string& point = opened.name;
  const std::string& root = opened.view->root();
  const std::vector<std::string>& vols = opened.volumes;
  std::vector<PointEntry> out;
  if (path.empty()) {
    for (const auto& vol : vols) {
      out.push_back(EntryAt(env, JoinPath(root, vol), vol));
      if (recursive && out.back().type == "dir") ListDir(env, JoinPath(root, vol), vol, true, true, &out);
    }
    return out;
  }
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  const auto slash = p.find('/');
  const std::string vol = p.substr(0, slash);
  const std::string sub = slash == std::string::npos ? "" : p.substr(slash + 1);
  if (std::find(vols.begin(), vols.end(), vol) == vols.end())
    ThrowNotFound("point " + point + " has no volume '" + vol + "'");
  if (!sub.empty()) {
    CheckInsidePath(env, JoinPath(root, vol), sub, "path");
    if (sub == kBlockmapDir || sub.rfind(std::string(kBlockmapDir) + "/", 0) == 0)
      ThrowNotFound(path + " not found in point " + point);
  }
  const std::string file = sub.empty() ? JoinPath(root, vol) : JoinPath(JoinPath(root, vol), sub);
  PointEntry e = EntryAt(env, file, p);
  if (e.type != "dir") return {e};
  ListDir(env, file, p, sub.empty(), recursive, &out);
  return out;
}

}  // namespace vmback
