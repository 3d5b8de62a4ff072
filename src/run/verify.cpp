#include "run/verify.h"

#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "store/tree.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace vmback {

namespace {

using HashSet = std::unordered_set<Hash, HashHasher>;

struct PackResult {
  std::vector<Hash> good;
  uint64_t blobs = 0, bytes = 0, bad_blobs = 0;
  std::vector<std::string> problems;
};

// Reads a whole pack: its own hash (the file name), its entry table, and
// every blob re-hashed. Blobs that check out are good even in a damaged pack.
PackResult CheckPack(Env* env, const std::string& path, const Hash& name) {
  PackResult r;
  auto file = env->OpenRead(path);
  std::string data(file->Size(), '\0');
  if (file->ReadAt(0, data.data(), data.size()) != data.size()) {
    r.problems.push_back(path + ": short read");
    return r;
  }
  r.bytes = data.size();
  if (Sha256(data) != name) r.problems.push_back(path + ": file does not match its name (damaged)");
  std::vector<PackEntry> entries;
  try {
    entries = ReadPackEntries(file.get());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    r.problems.push_back(e.what());
    entries = ScanPackBlobs(file.get());
  }
  for (const auto& e : entries) {
    r.blobs++;
    try {
      if (e.offset + e.stored_len > data.size()) ThrowCorrupt(path + ": blob beyond end of file");
      DecodeBlob(e, std::string_view(data).substr(e.offset, e.stored_len), path);
      r.good.push_back(e.id);
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::kCorrupt) throw;
      r.bad_blobs++;
      r.problems.push_back(err.what());
    }
  }
  return r;
}

// Problems found under one entry: (path relative to it, reason).
using Problems = std::vector<std::pair<std::string, std::string>>;

class PointChecker {
 public:
  PointChecker(Store* store, const HashSet& good, const BlobIndex& index, VerifyReport* report)
      : store_(store), good_(good), index_(index), report_(report) {}

  void Check(const std::string& point) {
    nlohmann::json m;
    try {
      m = store_->ReadManifest(point);
    } catch (const Error& e) {
      report_->problems.push_back({point, store_->ManifestPath(point), e.what()});
      return;
    }
    for (const auto& v : m.at("volumes")) {
      std::string name = v.at("name").get<std::string>();
      Problems found;
      try {
        CheckEntry(EntryFromJson(v.at("root"), store_->ManifestPath(point)), "", &found);
      } catch (const Error& e) {
        found.emplace_back("", e.what());
      }
      for (const auto& [rel, reason] : found)
        report_->problems.push_back({point, rel.empty() ? name : name + "/" + rel, reason});
    }
  }

 private:
  static std::string Join(const std::string& a, const std::string& b) {
    return a.empty() ? b : b.empty() ? a : a + "/" + b;
  }

  void CheckEntry(const Entry& e, const std::string& rel, Problems* out) {
    if (e.type == EntryType::kDir) {
      if (!good_.count(e.subtree)) {
        out->emplace_back(rel, "directory listing (tree " + e.subtree.Hex().substr(0, 16) + ") is " +
                                   State(e.subtree) + "; everything below it is affected");
        return;
      }
      // Unchanged directories are shared between points: check each tree
      // once, and report its problems under every path that holds it.
      for (const auto& [sub, reason] : CheckTree(e.subtree)) out->emplace_back(Join(rel, sub), reason);
    } else if (e.type == EntryType::kFile) {
      report_->files_checked++;
      uint64_t bad = 0;
      std::string first_bad;
      for (const auto& list : e.content) {
        if (!good_.count(list)) {
          bad++;
          if (first_bad.empty()) first_bad = "block list " + list.Hex().substr(0, 16) + " is " + State(list);
          continue;
        }
        for (const auto& id : DecodeIdList(store_->Get(list, BlobType::kList), rel)) {
          if (id.IsZero() || good_.count(id)) continue;
          bad++;
          if (first_bad.empty()) first_bad = "block " + id.Hex().substr(0, 16) + " is " + State(id);
        }
      }
      if (bad) out->emplace_back(rel, std::to_string(bad) + " bad or missing block(s); " + first_bad);
    }
  }

  const Problems& CheckTree(const Hash& id) {
    if (auto it = trees_.find(id); it != trees_.end()) return it->second;
    Problems found;
    for (const auto& child : DecodeTree(store_->Get(id, BlobType::kTree), "tree " + id.Hex()))
      CheckEntry(child, child.name, &found);
    return trees_.emplace(id, std::move(found)).first->second;
  }

  std::string State(const Hash& id) const { return index_.Find(id) ? "damaged" : "missing"; }

  Store* store_;
  const HashSet& good_;
  const BlobIndex& index_;
  VerifyReport* report_;
  std::unordered_map<Hash, Problems, HashHasher> trees_;
};

}  // namespace

VerifyReport Verify(Store* store, Logger* log) {
  VerifyReport report;
  HashSet good;
  std::vector<Hash> packs = store->ListPackFiles();
  {
    ThreadPool pool(0);
    std::deque<std::future<PackResult>> in_flight;
    auto drain = [&] {
      PackResult r = in_flight.front().get();
      in_flight.pop_front();
      report.packs++;
      report.blobs += r.blobs;
      report.bytes += r.bytes;
      report.bad_blobs += r.bad_blobs;
      if (!r.problems.empty()) report.bad_packs++;
      for (auto& p : r.problems) report.problems.push_back({"", "", p});
      good.insert(r.good.begin(), r.good.end());
    };
    for (const auto& p : packs) {
      Env* env = store->env();
      std::string path = store->PackPath(p);
      in_flight.push_back(pool.Submit([env, path, p] { return CheckPack(env, path, p); }));
      if (in_flight.size() > pool.size()) drain();
    }
    while (!in_flight.empty()) drain();
  }
  BlobIndex index = store->IndexSnapshot();
  PointChecker checker(store, good, index, &report);
  for (const auto& point : store->ListPoints()) {
    report.points++;
    checker.Check(point);
  }
  // Remember blobs with no good copy, so the next backup that reads their
  // data writes them afresh.
  std::vector<Hash> damaged;
  for (const auto& [id, loc] : index.entries())
    if (!good.count(id)) damaged.push_back(id);
  store->SetDamaged(damaged);
  for (const auto& p : report.problems)
    log->Error((p.point.empty() ? "" : p.point + ": ") + (p.path.empty() ? "" : p.path + ": ") + p.reason);
  return report;
}

nlohmann::json VerifyReportToJson(const VerifyReport& r) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : r.problems)
    problems.push_back({{"point", p.point}, {"path", p.path}, {"reason", p.reason}});
  return {{"ok", r.ok()},           {"packs", r.packs},         {"blobs", r.blobs},
          {"bytes", r.bytes},       {"bad_packs", r.bad_packs}, {"bad_blobs", r.bad_blobs},
          {"points", r.points},     {"files_checked", r.files_checked},
          {"problems", problems}};
}

}  // namespace vmback
