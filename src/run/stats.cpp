#include "run/stats.h"

#include <algorithm>
#include <sstream>
#include <unordered_map>

#include "run/restore.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr uint32_t kNoPoint = UINT32_MAX;

struct BlockUse {
  uint32_t first = kNoPoint;  // the first point (number) that references it
  uint32_t slot = kNoPoint;   // the first volume of a point (a number over all points) that does
  bool shared = false;        // referenced by another point too
  bool shared_slot = false;   // referenced by another volume, of any point
  bool asked = false;         // referenced by a point asked for
};

// Where Walk counts: point number p, volume slot number slot, into *vs.
struct WalkAt {
  uint32_t p;
  uint32_t slot;
  bool asked;
  const std::string& point;
  StoreUsage* vs;
};

// Sums the sizes of the regular files below dir of a store copy.
uint64_t TreeBytes(Env* env, const std::string& dir) {
  uint64_t n = 0;
  if (env->Status(dir).kind != FileKind::kDir) return 0;
  for (const auto& name : env->ListDir(dir)) {
    const std::string p = JoinPath(dir, name);
    const FileStatus st = env->Status(p);
    if (st.kind == FileKind::kDir) n += TreeBytes(env, p);
    else if (st.kind == FileKind::kFile) n += st.size;
  }
  return n;
}

std::string Blob(Store* store, const Hash& id, BlobType type, const std::string& point) {
  try {
    return store->Get(id, type);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kNotFound) ThrowCorrupt("point " + point + ": " + e.what());
    throw;
  }
}

// Walks entry e of a volume of a point: its files' sizes into *at.vs, its
// blocks into uses.
void Walk(Store* store, const Entry& e, const WalkAt& at, std::unordered_map<Hash, BlockUse, HashHasher>* uses) {
  if (e.type == EntryType::kDir) {
    for (const Entry& child :
         DecodeTree(Blob(store, e.subtree, BlobType::kTree, at.point), "tree in point " + at.point))
      Walk(store, child, at, uses);
    return;
  }
  if (e.type != EntryType::kFile) return;
  at.vs->files++;
  at.vs->logical += e.size;
  for (const Hash& list : e.content) {
    for (const Hash& id :
         DecodeIdList(Blob(store, list, BlobType::kList, at.point), "block list in point " + at.point)) {
      if (id.IsZero()) continue;
      BlockUse& u = (*uses)[id];
      if (u.first == kNoPoint) {
        u.first = at.p;
        u.slot = at.slot;
      }
      u.shared = u.shared || u.first != at.p;
      u.shared_slot = u.shared_slot || u.slot != at.slot;
      u.asked = u.asked || at.asked;
    }
  }
}

nlohmann::json UsageJson(const StoreUsage& u) {
  return {{"name", u.name},
          {"files", u.files},
          {"logical_bytes", u.logical},
          {"unique_blocks", u.unique_blocks},
          {"unique_raw_bytes", u.unique_raw},
          {"unique_stored_bytes", u.unique_stored}};
}

std::string Ratio(uint64_t a, uint64_t b) {
  if (b == 0) return "-";
  std::ostringstream o;
  o.precision(2);
  o << std::fixed << static_cast<double>(a) / static_cast<double>(b);
  return o.str();
}

}  // namespace

StoreStats ComputeStoreStats(Store* store, const std::vector<std::string>& points) {
  const std::vector<std::string> all = store->ListPoints();
  std::vector<bool> asked(all.size(), points.empty());
  for (const auto& p : points) {
    const auto it = std::find(all.begin(), all.end(), ResolvePoint(store, p));
    if (it == all.end()) ThrowNotFound("point " + p + " is not in store " + store->dir());
    asked[it - all.begin()] = true;
  }
  StoreStats s;
  std::unordered_map<Hash, BlockUse, HashHasher> uses;
  std::vector<StorePointStats> per(all.size());
  std::vector<std::pair<uint32_t, uint32_t>> slots;  // slot -> (point, volume)
  for (uint32_t i = 0; i < all.size(); i++) {
    per[i].name = all[i];
    const Manifest m = store->ReadPoint(all[i]);
    per[i].volumes.resize(m.volumes.size());
    for (uint32_t v = 0; v < m.volumes.size(); v++) {
      per[i].volumes[v].name = m.volumes[v].name;
      Walk(store, m.volumes[v].root,
           {i, static_cast<uint32_t>(slots.size()), asked[i], all[i], &per[i].volumes[v]}, &uses);
      slots.emplace_back(i, v);
      per[i].files += per[i].volumes[v].files;
      per[i].logical += per[i].volumes[v].logical;
    }
  }
  const BlobIndex index = store->IndexSnapshot();
  for (const auto& [id, u] : uses) {
    const BlobLocation* loc = index.Find(id);
    const uint64_t stored = loc ? loc->stored_len : 0, raw = loc ? loc->raw_len : 0;
    if (u.asked) {
      s.blocks++;
      s.raw += raw;
      s.stored += stored;
    }
    if (!u.shared) {
      per[u.first].unique_blocks++;
      per[u.first].unique_stored += stored;
      per[u.first].unique_raw += raw;
    }
    if (!u.shared_slot) {
      StoreUsage& vs = per[slots[u.slot].first].volumes[slots[u.slot].second];
      vs.unique_blocks++;
      vs.unique_stored += stored;
      vs.unique_raw += raw;
    }
  }
  for (uint32_t i = 0; i < all.size(); i++) {
    if (!asked[i]) continue;
    s.logical += per[i].logical;
    s.points.push_back(per[i]);
  }
  for (const auto& dir : store->copies()) {
    StoreCopyStats c{dir, 0};
    for (const char* sub : {"packs", "index", "points"}) c.bytes += TreeBytes(store->env(), JoinPath(dir, sub));
    s.copies.push_back(c);
  }
  return s;
}

nlohmann::json StoreStatsToJson(const StoreStats& s) {
  nlohmann::json j;
  j["copies"] = nlohmann::json::array();
  for (const auto& c : s.copies) j["copies"].push_back({{"dir", c.dir}, {"bytes", c.bytes}});
  j["logical_bytes"] = s.logical;
  j["blocks"] = s.blocks;
  j["raw_bytes"] = s.raw;
  j["stored_bytes"] = s.stored;
  j["points"] = nlohmann::json::array();
  for (const auto& p : s.points) {
    nlohmann::json point = UsageJson(p);
    point["volumes"] = nlohmann::json::array();
    for (const auto& v : p.volumes) point["volumes"].push_back(UsageJson(v));
    j["points"].push_back(std::move(point));
  }
  return j;
}

std::string StoreStatsText(const StoreStats& s) {
  std::ostringstream o;
  for (const auto& c : s.copies) o << "copy " << EscapeForTerminal(c.dir) << ": " << FormatBytes(c.bytes) << "\n";
  o << Counted(s.points.size(), "point") << ": " << FormatBytes(s.logical) << " of files, " << s.blocks
    << " distinct blocks, " << FormatBytes(s.raw) << " plain, " << FormatBytes(s.stored) << " stored\n";
  o << "compression " << Ratio(s.raw, s.stored) << "x, deduplication " << Ratio(s.logical, s.raw) << "x\n";
  for (const auto& p : s.points) {
    o << "  " << p.name << ": " << FormatBytes(p.logical) << " in " << Counted(p.files, "file") << "; unique to it "
      << Counted(p.unique_blocks, "block") << ", " << FormatBytes(p.unique_stored) << " stored (freed by deleting it)\n";
    for (const auto& v : p.volumes)
      o << "    " << EscapeForTerminal(v.name) << ": " << FormatBytes(v.logical) << " in " << Counted(v.files, "file")
        << "; in this volume alone " << Counted(v.unique_blocks, "block") << ", " << FormatBytes(v.unique_stored)
        << " stored\n";
  }
  return o.str();
}

}  // namespace vmback
