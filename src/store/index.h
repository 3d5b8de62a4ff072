// The store-wide blob index: blob id -> (pack, offset, length). It is a
// cache: everything in it can be rebuilt from the packs' own entry tables.
// On disk it is a set of index files (index/<sha256>.idx), each covering the
// packs one run wrote; see docs/FORMAT.md.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "os/large_memory.h"
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

// Blob id -> location, in one array (open addressing, linear probing): no
// allocation per blob, as a store indexes a few hundred thousand to millions
// of them (the node per entry of a std::unordered_map, and freeing it, were
// a tenth of opening a store). Slots are not stable: a pointer Find returns
// is good until the next Emplace. Iterates in no particular order.
class BlobTable {
 public:
  BlobTable();
  size_t size() const { return size_; }
  // Room for `n` ids without growing.
  void Reserve(size_t n);
  // The location recorded for id, and whether it was new (false: the one
  // already there, unchanged).
  std::pair<const BlobLocation*, bool> Emplace(const Hash& id, const BlobLocation& loc);
  const BlobLocation* Find(const Hash& id) const;
  // The slots a lookup of id looks at (1: its first); for tests.
  size_t Probes(const Hash& id) const;

  struct Slot {
    Hash id;
    BlobLocation loc;  // type kEmptySlot: no id here
  };
  class Iterator {
   public:
    Iterator(const Slot* at, const Slot* end) : at_(at), end_(end) { Skip(); }
    std::pair<const Hash&, const BlobLocation&> operator*() const { return {at_->id, at_->loc}; }
    Iterator& operator++() {
      ++at_;
      Skip();
      return *this;
    }
    bool operator!=(const Iterator& o) const { return at_ != o.at_; }

   private:
    void Skip() {
      while (at_ != end_ && at_->loc.type == kEmptySlot) ++at_;
    }
    const Slot* at_;
    const Slot* end_;
  };
  Iterator begin() const { return {slots_.data(), slots_.data() + slots_.size()}; }
  Iterator end() const { return {slots_.data() + slots_.size(), slots_.data() + slots_.size()}; }

 private:
  static constexpr BlobType kEmptySlot = static_cast<BlobType>(0xff);
  // Where id's probe starts: KeyedHash (util/sha256.h), so that a planted
  // index of ids chosen to share a start cannot make every insert walk a
  // long run.
  size_t Home(const Hash& id, size_t capacity) const;
  void Rehash(size_t capacity);
  LargeArray<Slot> slots_;
  size_t size_ = 0;
  std::array<uint64_t, 4> key_;
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
  void Reserve(size_t blobs) { map_.Reserve(blobs); }
  const BlobLocation* Find(const Hash& id) const;
  // Primary first; empty if unknown.
  std::vector<BlobLocation> Locations(const Hash& id) const;
  const std::unordered_map<Hash, std::vector<BlobLocation>, HashHasher>& alternates() const {
    return alternates_;
  }
  bool HasPack(const Hash& pack_id) const { return pack_numbers_.count(pack_id) > 0; }
  const std::vector<Hash>& packs() const { return packs_; }
  size_t size() const { return map_.size(); }
  const BlobTable& entries() const { return map_; }

 private:
  std::vector<Hash> packs_;
  std::unordered_map<Hash, uint32_t, HashHasher> pack_numbers_;
  BlobTable map_;
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
// The same checks, then each pack's entries in the file's order, one pack at
// a time (the vector is reused between calls). Nothing is handed out unless
// the whole file passes.
void VisitIndexFile(std::string_view data, const std::string& where, const Sealer* sealer,
                    const std::function<void(const Hash& pack, const std::vector<PackEntry>& entries)>& each);

}  // namespace vmback
