#include "run/browse.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "run/backup.h"
#include "run/restore.h"
#include "util/error.h"

namespace vmback {

namespace {

// Blob id of type, for what (a path in point): one the point names and the
// store lacks is damage to the point, not a wrong path.
std::string GetBlob(Store* store, const Hash& id, BlobType type, const std::string& what, const std::string& point) {
  try {
    return store->Get(id, type);
  } catch (const Error& err) {
    if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot read " + what + " in point " + point + ": " + err.what());
    throw;
  }
}

std::vector<Entry> ChildrenOf(Store* store, const Entry& dir, const std::string& point, const std::string& path) {
  return DecodeTree(GetBlob(store, dir.subtree, BlobType::kTree, path, point), "tree of " + path + " in point " + point);
}

// Appends the children of dir (at path), and with recursive everything
// below; with raw, each one's Entry too (raw parallel to out).
void ListChildren(Store* store, const Entry& dir, const std::string& point, const std::string& path,
                  bool recursive, std::vector<PointEntry>* out, std::vector<Entry>* raw) {
  for (Entry& child : ChildrenOf(store, dir, point, path)) {
    const std::string child_path = path + "/" + child.name;
    out->push_back(StorePointEntry(child, child_path));
    const bool descend = recursive && child.type == EntryType::kDir;
    if (raw) raw->push_back(child);
    if (descend) ListChildren(store, child, point, child_path, true, out, raw);
  }
}

// ListPointEntries of the point m (named point) read already.
void ListIn(Store* store, const Manifest& m, const std::string& point, const std::string& path, bool recursive,
            std::vector<PointEntry>* out, std::vector<Entry>* raw) {
  if (path.empty()) {
    for (const auto& v : m.volumes) {
      out->push_back(StorePointEntry(v.root, v.name));
      if (raw) raw->push_back(v.root);
      if (recursive && v.root.type == EntryType::kDir) ListChildren(store, v.root, point, v.name, true, out, raw);
    }
    return;
  }
  std::string rel;
  const Entry e = FindInPoint(store, m, point, path, &rel);
  const std::string volume = path.substr(0, path.find('/'));
  const std::string at = rel.empty() ? volume : volume + "/" + rel;
  if (e.type == EntryType::kDir) {
    ListChildren(store, e, point, at, recursive, out, raw);
  } else {
    out->push_back(StorePointEntry(e, at));
    if (raw) raw->push_back(e);
  }
}

// One point's side of a diff: its entries, and each one's Entry.
struct Side {
  std::vector<PointEntry> out;
  std::vector<Entry> raw;
};

// Lists what lies below the directories among a's entries from a_begin and
// b's from b_begin (the same directory's children in two points, or the
// tops): a directory in both with the same tree holds the same below and is
// not entered; one in both with different trees is entered in step; one on
// one side only (or a file on the other) is listed whole.
void Descend(Store* store, const PointDiff& d, Side* a, size_t a_begin, Side* b, size_t b_begin) {
  const size_t a_end = a->out.size(), b_end = b->out.size();
  std::unordered_map<std::string, size_t> in_b;
  for (size_t j = b_begin; j < b_end; j++) in_b[b->out[j].path] = j;
  std::unordered_set<std::string> dir_in_both;
  for (size_t i = a_begin; i < a_end; i++) {
    if (a->raw[i].type != EntryType::kDir) continue;
    const std::string path = a->out[i].path;  // a copy: the lists grow below
    const Entry ea = a->raw[i];
    const auto it = in_b.find(path);
    if (it == in_b.end() || b->raw[it->second].type != EntryType::kDir) {
      ListChildren(store, ea, d.from, path, true, &a->out, &a->raw);
      continue;
    }
    dir_in_both.insert(path);
    const Entry eb = b->raw[it->second];
    if (ea.subtree == eb.subtree) continue;
    const size_t na = a->out.size(), nb = b->out.size();
    ListChildren(store, ea, d.from, path, false, &a->out, &a->raw);
    ListChildren(store, eb, d.to, path, false, &b->out, &b->raw);
    Descend(store, d, a, na, b, nb);
  }
  for (size_t j = b_begin; j < b_end; j++) {
    if (b->raw[j].type != EntryType::kDir || dir_in_both.count(b->out[j].path)) continue;
    const std::string path = b->out[j].path;
    const Entry eb = b->raw[j];
    ListChildren(store, eb, d.to, path, true, &b->out, &b->raw);
  }
}

// How the block lists of two files differ: lists with equal ids hold equal
// blocks; the others are decoded (metadata blobs, no data read) and
// compared id by id.
std::optional<ContentDelta> CompareContent(Store* store, const Entry& a, const Entry& b, uint32_t block_size,
                                           const std::string& path, const PointDiff& d) {
  if (a.content == b.content) return std::nullopt;
  ContentDelta delta;
  delta.known = block_size != 0;
  delta.block_size = block_size;
  auto list = [&](const Entry& e, size_t i, const std::string& point) {
    if (i >= e.content.size()) return std::vector<Hash>();
    const std::string where = "block list " + std::to_string(i) + " of " + path;
    return DecodeIdList(GetBlob(store, e.content[i], BlobType::kList, where, point), where + " in point " + point);
  };
  for (size_t i = 0; i < std::max(a.content.size(), b.content.size()); i++) {
    if (i < a.content.size() && i < b.content.size() && a.content[i] == b.content[i]) continue;
    const std::vector<Hash> la = list(a, i, d.from), lb = list(b, i, d.to);
    for (size_t k = 0; k < std::max(la.size(), lb.size()); k++)
      if (k >= la.size() || k >= lb.size() || la[k] != lb[k]) delta.blocks++;
  }
  return delta;
}

}  // namespace

PointEntry StorePointEntry(const Entry& e, const std::string& path) {
  PointEntry p = PointEntryOf(e, path);
  if (e.type == EntryType::kFile) p.version = ContentVersion(e.content);
  return p;
}

Entry FindInPoint(Store* store, const Manifest& m, const std::string& point, const std::string& path,
                  std::string* rel) {
  return FindInPoint(
      m, point, path,
      [&](const Entry& dir, const std::string& at) {
        return std::make_shared<const std::vector<Entry>>(ChildrenOf(store, dir, point, at));
      },
      rel);
}

Entry FindInPoint(const Manifest& m, const std::string& point, const std::string& path, const TreeSource& children,
                  std::string* rel) {
  const std::string volume = path.substr(0, path.find('/'));
  const std::string rest = path.size() > volume.size() ? path.substr(volume.size() + 1) : "";
  const ManifestVolume* vol = m.FindVolume(volume);
  if (!vol) {
    std::vector<std::string> names;
    for (const auto& v : m.volumes) names.push_back(v.name);
    ThrowNoSuchVolume(point, volume, names);
  }
  Entry e = vol->root;
  std::string walked;
  size_t pos = 0;
  while (pos < rest.size()) {
    size_t slash = rest.find('/', pos);
    std::string comp = rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? rest.size() : slash + 1;
    if (comp.empty()) continue;
    if (e.type != EntryType::kDir) ThrowNotFound(path + " not found in point " + point);
    const std::shared_ptr<const std::vector<Entry>> kids = children(e, path);
    // Tree entries are sorted by name (DecodeTree checks it).
    const auto it = std::lower_bound(kids->begin(), kids->end(), comp,
                                     [](const Entry& a, const std::string& name) { return a.name < name; });
    if (it == kids->end() || it->name != comp) ThrowNotFound(path + " not found in point " + point);
    e = *it;
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
  std::vector<PointEntry> out;
  ListIn(store, store->ReadPoint(point), point, path, recursive, &out, nullptr);
  return out;
}

namespace {

// The matches below dir (at path): from memo when this subtree was walked at
// this path already (in another point: unchanged directories are shared),
// else read and remembered.
void FindBelow(Store* store, const Entry& dir, const std::string& point, const std::string& path,
               const PathMatcher& match, FindMemo* memo, std::vector<PointEntry>* out) {
  std::string key(reinterpret_cast<const char*>(dir.subtree.bytes.data()), dir.subtree.bytes.size());
  key += path;
  if (auto it = memo->found.find(key); it != memo->found.end()) {
    out->insert(out->end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<PointEntry> found;
  std::string at = path + "/";  // each child's path in turn
  const size_t dir_len = at.size();
  for (const Entry& child : ChildrenOf(store, dir, point, path)) {
    at.resize(dir_len);
    at += child.name;
    if (match(at)) found.push_back(StorePointEntry(child, at));
    if (child.type == EntryType::kDir) FindBelow(store, child, point, at, match, memo, &found);
  }
  out->insert(out->end(), found.begin(), found.end());
  memo->entries += found.size() + 1;
  if (memo->entries > kFindMemoEntries) {  // a bound, not a cache policy: start over
    memo->found.clear();
    memo->entries = 0;
  }
  memo->found.emplace(std::move(key), std::move(found));
}

}  // namespace

std::vector<PointEntry> FindPointEntries(Store* store, const std::string& point_arg, const PathMatcher& match,
                                         std::string* resolved, FindMemo* memo) {
  // A name is checked by reading its manifest (ResolvePoint would read it twice).
  *resolved = point_arg == "latest" ? ResolvePoint(store, point_arg) : point_arg;
  FindMemo local;
  if (memo == nullptr) memo = &local;
  const Manifest m = store->ReadPoint(*resolved);
  std::vector<PointEntry> out;
  for (const ManifestVolume& v : m.volumes) {
    if (match(v.name)) out.push_back(StorePointEntry(v.root, v.name));
    if (v.root.type == EntryType::kDir) FindBelow(store, v.root, *resolved, v.name, match, memo, &out);
  }
  std::sort(out.begin(), out.end(), [](const PointEntry& a, const PointEntry& b) { return a.path < b.path; });
  return out;
}

PointDiff DiffPoints(Store* store, const std::string& from, const std::string& to, const std::string& path) {
  PointDiff d;
  d.from = ResolvePoint(store, from);
  d.to = ResolvePoint(store, to);
  const Manifest ma = store->ReadPoint(d.from), mb = store->ReadPoint(d.to);
  Side a, b;
  const bool in_a = PathListed([&] { ListIn(store, ma, d.from, path, false, &a.out, &a.raw); });
  const bool in_b = PathListed([&] { ListIn(store, mb, d.to, path, false, &b.out, &b.raw); });
  if (!in_a && !in_b) ThrowPathInNeither(path, d);
  Descend(store, d, &a, 0, &b, 0);
  std::unordered_map<std::string, const Entry*> by_a, by_b;
  for (size_t i = 0; i < a.out.size(); i++) by_a[a.out[i].path] = &a.raw[i];
  for (size_t i = 0; i < b.out.size(); i++) by_b[b.out[i].path] = &b.raw[i];
  const uint32_t bs_a = ma.block_size ? ma.block_size : store->block_size();
  const uint32_t bs_b = mb.block_size ? mb.block_size : store->block_size();
  d.changes = DiffPointEntries(std::move(a.out), std::move(b.out), [&](const PointEntry& x, const PointEntry& y) {
    return CompareContent(store, *by_a.at(x.path), *by_b.at(y.path), bs_a == bs_b ? bs_a : 0, x.path, d);
  });
  return d;
}

}  // namespace vmback
