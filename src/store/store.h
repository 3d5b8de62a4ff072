// The built-in store: content-addressed blobs in pack files, a rebuildable
// blob index, and one manifest per point. Layout and byte formats are in
// docs/FORMAT.md.
//
// Write protocol (crash-safe): blobs go into a pack under tmp/; a finished
// pack is fsynced, renamed into packs/XX/ and its directory fsynced before
// any index file or manifest names it; index files and manifests are written
// to a temp name, fsynced, renamed, and their directory fsynced. A crash at
// any step leaves every earlier point intact and no partial point visible;
// at worst some unreferenced packs (reclaimed by garbage collection).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "os/env.h"
#include "store/index.h"
#include "store/pack.h"
#include "util/log.h"

namespace vmback {

inline constexpr int kStoreFormatVersion = 1;
inline constexpr uint32_t kDefaultBlockSize = 64 * 1024;

struct StoreWriteStats {
  uint64_t blobs_written = 0;
  uint64_t raw_bytes_written = 0;     // before compression
  uint64_t stored_bytes_written = 0;  // after compression, with headers
  uint64_t packs_written = 0;
};

// Orders point names by time: "T" < "T.2" < "T.10" < "T2".
bool PointNameLess(const std::string& a, const std::string& b);

class Store {
 public:
  // Creates a new, empty store in dir (created if absent; must be empty).
  static void Init(Env* env, const std::string& dir, uint32_t block_size);

  // Opens a store, taking its lock (kExclusive for writers). Loads the blob
  // index from index files and any pack they do not cover. Throws kNotFound
  // if dir is not a store, kConfig for a newer format, kCorrupt for a damaged config,
  // kLocked if another process holds the lock.
  static std::unique_ptr<Store> Open(Env* env, const std::string& dir, LockMode mode,
                                     Logger* log);
  ~Store();

  const std::string& dir() const { return dir_; }
  uint32_t block_size() const { return block_size_; }
  int zstd_level() const { return zstd_level_; }
  Env* env() const { return env_; }

  // Thread-safe. False for an id known to be damaged in every copy, so that
  // the next Put of the same data writes a fresh copy (self-healing).
  bool Has(const Hash& id) const;
  // True if any of ids is known damaged. Cheap when nothing is.
  bool AnyDamaged(const std::vector<Hash>& ids) const;
  bool HasDamaged() const {
    std::shared_lock l(mu_);
    return !damaged_.empty();
  }
  // Records the ids a full verify found with no good copy (in the file
  // "damaged", replacing what was there), so the next backup that meets
  // their data writes them afresh.
  void SetDamaged(const std::vector<Hash>& ids);
  // Reads, decompresses and re-hashes a blob. Thread-safe. Throws kNotFound
  // for an unknown id, kCorrupt naming the pack file if the bytes are wrong.
  std::string Get(const Hash& id) const;
  // Like Get, and checks the blob's type.
  std::string Get(const Hash& id, BlobType type) const;

  // Appends a blob unless the store has it. Returns true if written.
  // REQUIRES: opened kExclusive; one writer thread.
  bool Put(const EncodedBlob& blob);
  // Hashes, encodes and puts raw bytes; returns the id.
  Hash PutRaw(BlobType type, std::string_view raw);
  // Makes everything put so far durable: finishes the open pack and writes
  // an index file for the packs of this session.
  void Flush();
  const StoreWriteStats& write_stats() const { return stats_; }
  // True once a write failed: the store must not be written again in this
  // session (what reached the disk is unknown; the next Open sorts it out).
  bool broken() const { return broken_; }

  // Point names, sorted oldest first. Never empty because of an error: a
  // failed listing throws.
  std::vector<std::string> ListPoints() const;
  // Reads and checks a manifest; throws kNotFound / kCorrupt naming the file.
  nlohmann::json ReadManifest(const std::string& point) const;
  // REQUIRES: Flush() done, so every blob it names is durable.
  void WriteManifest(const std::string& point, const nlohmann::json& manifest);
  // A fresh name from the current UTC time, e.g. 2026-11-26T180102Z.
  std::string NewPointName() const;

  // For verify.
  std::vector<Hash> ListPackFiles() const;
  std::string PackPath(const Hash& pack) const;
  std::string ManifestPath(const std::string& point) const;
  // A copy of the index (takes the lock).
  BlobIndex IndexSnapshot() const;

 private:
  Store(Env* env, std::string dir, Logger* log);
  void LoadIndex();
  void FinishPack();
  void SaveDamaged();
  bool PutLocked(const EncodedBlob& blob);
  template <typename Fn>
  auto Guard(Fn fn) -> decltype(fn());
  std::shared_ptr<ReadableFile> OpenPack(uint32_t pack) const;

  Env* env_;
  std::string dir_;
  Logger* log_;
  std::unique_ptr<FileLock> lock_;
  bool exclusive_ = false;
  bool broken_ = false;
  int pack_counter_ = 0;
  std::unordered_set<std::string> synced_dirs_;  // packs/XX made durable this session
  uint32_t block_size_ = kDefaultBlockSize;
  int zstd_level_ = 3;
  uint64_t pack_target_ = 32u << 20;

  mutable std::shared_mutex mu_;  // guards index_
  BlobIndex index_;
  // Blobs in the pack being written: readable by Has, not yet by Get.
  std::unordered_map<Hash, bool, HashHasher> pending_;
  // Ids with no good copy (found by reads, or by an earlier verify).
  mutable std::unordered_set<Hash, HashHasher> damaged_;
  bool damaged_changed_ = false;

  std::unique_ptr<PackWriter> writer_;
  IndexFile session_index_;  // packs finished by this session, not yet indexed
  StoreWriteStats stats_;

  mutable std::mutex files_mu_;
  mutable std::unordered_map<uint32_t, std::shared_ptr<ReadableFile>> open_packs_;
};

}  // namespace vmback
