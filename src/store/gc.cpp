#include "store/gc.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "store/manifest.h"
#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

using HashSet = std::unordered_set<Hash, HashHasher>;

// Every blob id any point names. Throws on anything unreadable.
HashSet LiveBlobs(Store* store, const std::vector<std::string>& ignore) {
  HashSet live;
  std::vector<Hash> trees;
  auto add_entry = [&](const Entry& e) {
    if (e.type == EntryType::kDir) {
      if (live.insert(e.subtree).second) trees.push_back(e.subtree);
    } else if (e.type == EntryType::kFile) {
      for (const auto& list : e.content) {
        if (!live.insert(list).second) continue;
        for (const auto& id : DecodeIdList(store->Get(list, BlobType::kList), "block list " + list.Hex()))
          if (!id.IsZero()) live.insert(id);
      }
    }
  };
  for (const auto& point : store->ListPoints()) {
    if (std::find(ignore.begin(), ignore.end(), point) != ignore.end()) continue;
    for (const auto& v : store->ReadPoint(point).volumes) add_entry(v.root);
  }
  while (!trees.empty()) {
    Hash t = trees.back();
    trees.pop_back();
    for (const auto& e : DecodeTree(store->Get(t, BlobType::kTree), "tree " + t.Hex())) add_entry(e);
  }
  return live;
}

}  // namespace

uint64_t RepackAndDrop(Store* store, const std::vector<Hash>& doomed,
                       const std::vector<std::pair<Hash, BlobType>>& keep) {
  HashSet moved;
  for (const auto& [id, type] : keep) {
    if (!moved.insert(id).second) continue;
    store->Rewrite(type, store->Get(id, type));
  }
  store->Flush();  // the moved blobs are durable and indexed first
  if (!doomed.empty()) store->DropPacks(doomed);
  return moved.size();
}

GcStats CollectGarbage(Store* store, const GcOptions& options, Logger* log) {
  if (!(options.repack_below >= 0 && options.repack_below <= 1))
    ThrowConfig("the repack threshold must be between 0 and 1, not " + std::to_string(options.repack_below));
  // Deleting packs under a reader (or beside an appending backup) would
  // pull blobs from under it.
  if (!options.dry_run && !store->sole())
    throw Error(ErrorKind::kOther, "internal: garbage collection of " + store->dir() + " without the exclusive lock");
  GcStats stats;
  HashSet live;
  try {
    live = LiveBlobs(store, options.ignore_points);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCrash) throw;
    throw Error(e.kind(), std::string("garbage collection stopped before changing anything: ") +
                              e.what() + " (run 'vmback verify')");
  }
  stats.blobs_live = live.size();

  BlobIndex index = store->IndexSnapshot();
  struct PackUse {
    uint64_t live_bytes = 0, total_bytes = 0;
    std::vector<std::pair<Hash, BlobLocation>> live_blobs;
  };
  std::vector<PackUse> use(index.packs().size());
  auto account = [&](const Hash& id, const BlobLocation& loc) {
    uint64_t n = loc.stored_len + kBlobHeaderSize;
    use[loc.pack].total_bytes += n;
    if (live.count(id)) {
      use[loc.pack].live_bytes += n;
      use[loc.pack].live_blobs.emplace_back(id, loc);
    }
  };
  for (const auto& [id, loc] : index.entries()) account(id, loc);
  for (const auto& [id, locs] : index.alternates())
    for (const auto& loc : locs) account(id, loc);

  std::vector<Hash> doomed;
  std::vector<std::pair<Hash, BlobType>> keep;
  stats.packs = index.packs().size();
  for (size_t i = 0; i < use.size(); i++) {
    const PackUse& u = use[i];
    if (u.live_bytes == 0) {
      doomed.push_back(index.packs()[i]);
      stats.packs_deleted++;
      stats.bytes_freed += u.total_bytes;
    } else if (static_cast<double>(u.live_bytes) < options.repack_below * static_cast<double>(u.total_bytes)) {
      doomed.push_back(index.packs()[i]);
      stats.packs_repacked++;
      stats.bytes_freed += u.total_bytes - u.live_bytes;
      for (const auto& [id, loc] : u.live_blobs) keep.emplace_back(id, loc.type);
    }
  }
  if (options.dry_run || doomed.empty()) return stats;
  stats.blobs_moved = RepackAndDrop(store, doomed, keep);
  log->Info("garbage collection: " + Counted(stats.packs_deleted, "pack") + " deleted, " +
            std::to_string(stats.packs_repacked) + " repacked (" + std::to_string(stats.blobs_moved) +
            " live blobs moved)");
  return stats;
}

}  // namespace vmback
