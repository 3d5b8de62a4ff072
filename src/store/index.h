// The store-wide blob index: blob id -> (pack, offset, length). It is a
// cache: everything in it can be rebuilt from the packs' own entry tables.
// On disk it is a set of index files (index/<sha256>.idx), each covering the
// packs one run wrote; see docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/pack.h"
#include "util/sha256.h"

namespace vmback {

struct BlobLocation {
  uint32_t pack = 0;  // number into BlobIndex::packs()
  BlobType type = BlobType::kData;
  Compression comp = Compression::kNone;
  uint64_t offset = 0;
  uint32_t stored_len = 0;
  uint32_t raw_len = 0;

  PackEntry ToEntry(const Hash& id) const {
    return PackEntry{id, type, comp, offset, stored_len, raw_len};
  }
};

// Not thread-safe; the Store guards it.
class BlobIndex {
 public:
  // Returns the pack's number; adding a pack twice returns the same number.
  uint32_t AddPack(const Hash& pack_id);
  void AddEntries(uint32_t pack, const std::vector<PackEntry>& entries);
  // The first location recorded for an id is its primary one; copies in
  // other packs (a repair wrote a new copy, or a crashed run's pack) are kept
  // as alternates for reads to fall back on.
  void Insert(const Hash& id, const BlobLocation& loc);
  // Room for `blobs` entries without rehashing (a hint: Insert still grows).
  void Reserve(size_t blobs) { map_.reserve(blobs); }
  const BlobLocation* Find(const Hash& id) const;
  // Primary first; empty if unknown.
  std::vector<BlobLocation> Locations(const Hash& id) const;
  const std::unordered_map<Hash, std::vector<BlobLocation>, HashHasher>& alternates() const {
    return alternates_;
  }
  bool HasPack(const Hash& pack_id) const { return pack_numbers_.count(pack_id) > 0; }
  const std::vector<Hash>& packs() const { return packs_; }
  size_t size() const { return map_.size(); }
  const std::unordered_map<Hash, BlobLocation, HashHasher>& entries() const { return map_; }

 private:
  std::vector<Hash> packs_;
  std::unordered_map<Hash, uint32_t, HashHasher> pack_numbers_;
  std::unordered_map<Hash, BlobLocation, HashHasher> map_;
  std::unordered_map<Hash, std::vector<BlobLocation>, HashHasher> alternates_;
};

// One index file: the entry tables of a set of packs.
struct IndexFile {
  std::vector<std::pair<Hash, std::vector<PackEntry>>> packs;
};

// With a sealer (an encrypted store) the file is sealed whole (SealFile,
// associated data kIndexAd) and its entries have sealed lengths.
inline constexpr std::string_view kIndexAd = "vmback index v1";
std::string EncodeIndexFile(const IndexFile& f, const Sealer* sealer = nullptr);
// Throws kCorrupt (naming `where`) on a bad magic, version or checksum, a
// count the file's size cannot hold, or an entry no pack could hold (see
// DecodeValidPackEntry: lengths beyond the format's maxima). Whether an entry
// fits in its pack is checked when the blob is read (ReadBlob).
IndexFile DecodeIndexFile(std::string_view data, const std::string& where, const Sealer* sealer = nullptr);

}  // namespace vmback
