#include "destination/point_diff.h"

#include <algorithm>
#include <cstring>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

bool PathOrderLess(const std::string& a, const std::string& b) {
  // '/' sorts before every byte a name may hold.
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; i++) {
    if (a[i] == b[i]) continue;
    if (a[i] == '/') return true;
    if (b[i] == '/') return false;
    return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
  }
  return a.size() < b.size();
}

std::string ContentVersion(const std::vector<Hash>& ids) {
  Sha256Stream s;
  for (const Hash& h : ids) s.Update(h.bytes.data(), h.bytes.size());
  return s.Finish().Hex();
}

bool PathListed(const std::function<void()>& list) {
  try {
    list();
    return true;
  } catch (const Error& err) {
    if (err.kind() != ErrorKind::kNotFound) throw;
    return false;
  }
}

void ThrowPathInNeither(const std::string& path, const PointDiff& d) {
  ThrowNotFound(path + " is in neither point " + d.from + " nor " + d.to);
}

namespace {

EntryChange Compare(PointEntry a, PointEntry b, const ContentComparer& content) {
  EntryChange c;
  if (a.type != b.type) {
    c.what.push_back("type");
  } else {
    if (a.type == "file") {
      c.content = content(a, b);
      if (c.content) c.what.push_back("content");
    }
    if (a.mode != b.mode) c.what.push_back("mode");
    if (a.uid != b.uid || a.gid != b.gid) c.what.push_back("owner");
    if (a.mtime_ns != b.mtime_ns) c.what.push_back("mtime");
    if (a.target != b.target) c.what.push_back("target");
  }
  c.before = std::move(a);
  c.after = std::move(b);
  return c;
}

}  // namespace

std::vector<EntryChange> DiffPointEntries(std::vector<PointEntry> before, std::vector<PointEntry> after,
                                          const ContentComparer& content) {
  auto less = [](const PointEntry& x, const PointEntry& y) { return PathOrderLess(x.path, y.path); };
  std::stable_sort(before.begin(), before.end(), less);
  std::stable_sort(after.begin(), after.end(), less);
  std::vector<EntryChange> out;
  size_t i = 0, j = 0;
  while (i < before.size() || j < after.size()) {
    EntryChange c;
    if (j == after.size() || (i < before.size() && less(before[i], after[j]))) {
      c.kind = EntryChange::Kind::kRemoved;
      c.before = std::move(before[i++]);
    } else if (i == before.size() || less(after[j], before[i])) {
      c.kind = EntryChange::Kind::kAdded;
      c.after = std::move(after[j++]);
    } else {
      c = Compare(std::move(before[i++]), std::move(after[j++]), content);
      if (c.what.empty()) continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json PointDiffToJson(const PointDiff& d) {
  nlohmann::json out = nlohmann::json::array();
  for (const EntryChange& c : d.changes) {
    const PointEntry& e = c.entry();
    nlohmann::json j;
    j["change"] = c.kind == EntryChange::Kind::kAdded ? "added" : c.kind == EntryChange::Kind::kRemoved ? "removed" : "changed";
    PutBytesField(&j, "path", e.path);
    j["type"] = e.type;
    j["size"] = e.size;
    if (c.kind == EntryChange::Kind::kChanged) {
      j["changes"] = c.what;
      j["before"] = PointEntryToJson(*c.before);
      j["after"] = PointEntryToJson(*c.after);
      if (c.content) {
        j["changed_blocks"] = c.content->known ? nlohmann::json(c.content->blocks) : nlohmann::json();
        j["block_size"] = c.content->known ? nlohmann::json(c.content->block_size) : nlohmann::json();
        j["changed_bytes"] = c.content->known ? nlohmann::json(c.content->bytes()) : nlohmann::json();
      }
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace vmback
