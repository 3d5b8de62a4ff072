#include "run/browse.h"

#include "run/backup.h"
#include "run/restore.h"
#include "util/error.h"

namespace vmback {

namespace {

std::vector<Entry> ChildrenOf(Store* store, const Entry& dir, const std::string& point, const std::string& path) {
  try {
    return DecodeTree(store->Get(dir.subtree, BlobType::kTree), "tree of " + path + " in point " + point);
  } catch (const Error& err) {
    if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot list " + path + " in point " + point + ": " + err.what());
    throw;
  }
}

// Appends the children of dir (at path), and with recursive everything below.
void ListChildren(Store* store, const Entry& dir, const std::string& point, const std::string& path,
                  bool recursive, std::vector<PointEntry>* out) {
  for (const Entry& child : ChildrenOf(store, dir, point, path)) {
    const std::string child_path = path + "/" + child.name;
    out->push_back(PointEntryOf(child, child_path));
    if (recursive && child.type == EntryType::kDir) ListChildren(store, child, point, child_path, true, out);
  }
}

}  // namespace

Entry FindInPoint(Store* store, const Manifest& m, const std::string& point, const std::string& path,
                  std::string* rel) {
  const std::string volume = path.substr(0, path.find('/'));
  const std::string rest = path.size() > volume.size() ? path.substr(volume.size() + 1) : "";
  const ManifestVolume* vol = m.FindVolume(volume);
  if (!vol) ThrowNotFound("point " + point + " has no volume '" + volume + "'");
  Entry e = vol->root;
  std::string walked;
  size_t pos = 0;
  while (pos < rest.size()) {
    size_t slash = rest.find('/', pos);
    std::string comp = rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? rest.size() : slash + 1;
    if (comp.empty()) continue;
    if (e.type != EntryType::kDir) ThrowNotFound(path + " not found in point " + point);
    bool found = false;
    for (auto& child : ChildrenOf(store, e, point, path)) {
      if (child.name == comp) {
        e = std::move(child);
        found = true;
        break;
      }
    }
    if (!found) ThrowNotFound(path + " not found in point " + point);
    walked = walked.empty() ? comp : walked + "/" + comp;
  }
  if (rel) *rel = walked;
  return e;
}

std::vector<PointEntry> ListPointEntries(Store* store, const std::string& point_arg, const std::string& path,
                                         bool recursive) {
  const std::string point = point_arg == "latest" && !path.empty()
                                ? NewestPointWithVolume(store, path.substr(0, path.find('/')))
                                : ResolvePoint(store, point_arg);
  const Manifest m = store->ReadPoint(point);
  std::vector<PointEntry> out;
  if (path.empty()) {
    for (const auto& v : m.volumes) {
      out.push_back(PointEntryOf(v.root, v.name));
      if (recursive && v.root.type == EntryType::kDir) ListChildren(store, v.root, point, v.name, true, &out);
    }
    return out;
  }
  std::string rel;
  const Entry e = FindInPoint(store, m, point, path, &rel);
  const std::string volume = path.substr(0, path.find('/'));
  const std::string at = rel.empty() ? volume : volume + "/" + rel;
  if (e.type == EntryType::kDir) {
    ListChildren(store, e, point, at, recursive, &out);
  } else {
    out.push_back(PointEntryOf(e, at));
  }
  return out;
}

}  // namespace vmback
