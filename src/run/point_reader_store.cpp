#include "run/point_reader_store.h"

#include <algorithm>
#include <cstring>
#include <list>
#include <unordered_map>
#include <unordered_set>

#include "destination/dump.h"
#include "run/browse.h"
#include "run/restore.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// What one cached item costs beside its payload (list node, map slot,
// shared_ptr control block), so that many small items are not free.
constexpr uint64_t kItemOverhead = 128;
// Warnings remembered (so that a range a program reads again and again is
// logged once); past this many, every failure is logged.
constexpr size_t kMaxWarned = 10000;

struct CacheKey {
  BlobType type;
  Hash id;
  bool operator==(const CacheKey& o) const { return type == o.type && id == o.id; }
};

struct CacheKeyHasher {
  size_t operator()(const CacheKey& k) const { return HashHasher()(k.id) ^ static_cast<size_t>(k.type); }
};

// An LRU cache of decoded blobs charged by (estimated) bytes: a block's
// bytes (std::string), a block list (std::vector<Hash>) or a tree
// (std::vector<Entry>), the type telling which. The total charged never
// exceeds the capacity; an item larger than it is not kept. Items handed
// out stay valid after eviction (shared). Not thread-safe.
class BlobCache {
 public:
  explicit BlobCache(uint64_t capacity) : capacity_(capacity) {}

  template <typename T>
  std::shared_ptr<const T> Find(BlobType type, const Hash& id) {
    const auto it = map_.find(CacheKey{type, id});
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);  // most recent first
    return std::static_pointer_cast<const T>(it->second->value);
  }

  void Insert(BlobType type, const Hash& id, std::shared_ptr<const void> value, uint64_t payload) {
    const uint64_t charge = payload + kItemOverhead;
    const CacheKey key{type, id};
    if (charge > capacity_ || map_.count(key)) return;
    while (charged_ + charge > capacity_) {
      charged_ -= lru_.back().charge;
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Item{key, std::move(value), charge});
    map_[key] = lru_.begin();
    charged_ += charge;
    peak_ = std::max(peak_, charged_);
  }

  uint64_t capacity() const { return capacity_; }
  uint64_t charged() const { return charged_; }
  uint64_t peak() const { return peak_; }
  size_t size() const { return map_.size(); }

 private:
  struct Item {
    CacheKey key;
    std::shared_ptr<const void> value;
    uint64_t charge;
  };
  const uint64_t capacity_;
  uint64_t charged_ = 0;
  uint64_t peak_ = 0;
  std::list<Item> lru_;
  std::unordered_map<CacheKey, std::list<Item>::iterator, CacheKeyHasher> map_;
};

// The memory a decoded tree takes, roughly (for the cache's charge).
uint64_t TreeCharge(const std::vector<Entry>& entries) {
  uint64_t n = sizeof(entries);
  for (const Entry& e : entries) {
    n += sizeof(Entry) + e.name.size() + e.target.size() + e.hardlink.size() + e.content.size() * sizeof(Hash);
    for (const auto& [k, v] : e.xattrs) n += sizeof(std::pair<std::string, std::string>) + k.size() + v.size();
  }
  return n;
}

// What the reader and its files share (they may outlive each other's calls,
// never the store).
struct ReaderState {
  ReaderState(Store* s, std::string p, uint32_t bs, uint64_t cache_bytes, Logger* l)
      : store(s), point(std::move(p)), block_size(bs), cache(cache_bytes), log(l) {}

  Store* const store;
  const std::string point;
  const uint32_t block_size;
  BlobCache cache;
  Logger* const log;
  StoreReaderStats stats;
  std::unordered_set<std::string> warned;

  // Blob id of type read by the store (checked against its id, from any
  // copy). A blob the point names and the store lacks is damage to the
  // point (kCorrupt), not a wrong path.
  std::string Get(const Hash& id, BlobType type, const std::string& what) {
    (type == BlobType::kData ? stats.block_gets : type == BlobType::kList ? stats.list_gets : stats.tree_gets)++;
    try {
      return store->Get(id, type);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot read " + what + ": " + err.what());
      throw;
    }
  }

  template <typename T>
  std::shared_ptr<const T> Cached(BlobType type, const Hash& id) {
    std::shared_ptr<const T> v = cache.Find<T>(type, id);
    if (v) stats.cache_hits++;
    return v;
  }

  // The children of directory entry dir (at path, for messages).
  std::shared_ptr<const std::vector<Entry>> Tree(const Entry& dir, const std::string& path) {
    if (auto v = Cached<std::vector<Entry>>(BlobType::kTree, dir.subtree)) return v;
    const std::string where = "tree of " + EscapeForTerminal(path) + " in point " + point;
    auto v = std::make_shared<const std::vector<Entry>>(DecodeTree(Get(dir.subtree, BlobType::kTree, where), where));
    cache.Insert(BlobType::kTree, dir.subtree, v, TreeCharge(*v));
    return v;
  }

  // Logs message as a warning, once.
  void Warn(const std::string& message) {
    if (warned.count(message)) return;
    if (warned.size() < kMaxWarned) warned.insert(message);
    log->Warn(message);
  }

  StoreReaderStats Stats() const {
    StoreReaderStats s = stats;
    s.cache_limit = cache.capacity();
    s.cached_bytes = cache.charged();
    s.peak_cached_bytes = cache.peak();
    s.cached_items = cache.size();
    return s;
  }
};

// One regular file of the point. Its entry was checked by the constructor:
// its block lists are exactly as many as its size needs.
class StoreFile final : public ReadableFile {
 public:
  // where: "VOLUME/dir/file" (raw bytes).
  StoreFile(std::shared_ptr<ReaderState> state, Entry e, const std::string& where)
      : state_(std::move(state)),
        e_(std::move(e)),
        bs_(state_->block_size),
        nblocks_(e_.size / bs_ + (e_.size % bs_ != 0)),
        path_(state_->point + "/" + where),
        what_(EscapeForTerminal(where) + " in point " + state_->point) {
    const uint64_t lists = nblocks_ / kIdsPerList + (nblocks_ % kIdsPerList != 0);
    if (e_.content.size() != lists)
      ThrowCorrupt(what_ + ": " + std::to_string(e_.content.size()) + " block lists for " +
                   std::to_string(e_.size) + " bytes (" + std::to_string(lists) + " expected)");
  }

  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    if (offset >= e_.size || n == 0) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, e_.size - offset));
    char* out = static_cast<char*>(buf);
    const uint64_t end = offset + n;
    const uint64_t last = (end - 1) / bs_;
    for (uint64_t b = offset / bs_; b <= last; b++) {
      const uint64_t start = b * bs_;
      const uint64_t len = std::min<uint64_t>(bs_, e_.size - start);
      const uint64_t from = std::max(offset, start), to = std::min(end, start + len);
      const Hash id = IdOf(b);
      if (id.IsZero()) {
        std::memset(out + (from - offset), 0, to - from);
        continue;
      }
      const std::shared_ptr<const std::string> block = Block(id, start, len);
      std::memcpy(out + (from - offset), block->data() + (from - start), to - from);
    }
    return n;
  }

  uint64_t Size() override { return e_.size; }

  // Holes are runs of all-zero ids, at block granularity. A block list that
  // cannot be read counts as data (its reads then say why).
  uint64_t NextData(uint64_t offset) override { return Next(offset, false); }
  uint64_t NextHole(uint64_t offset) override { return Next(offset, true); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return path_; }

 private:
  // The first offset at or after offset in a hole (hole) or in data
  // (!hole); the size when there is none.
  uint64_t Next(uint64_t offset, bool hole) {
    if (offset >= e_.size) return e_.size;  // as PosixEnv's
    for (uint64_t b = offset / bs_; b < nblocks_; b++) {
      bool zero = false;
      try {
        zero = IdOf(b).IsZero();
      } catch (const Error& err) {
        if (err.kind() != ErrorKind::kCorrupt && err.kind() != ErrorKind::kIo) throw;
        // The rest of that list is data: skip to the next list.
        if (!hole) return std::max(offset, b * bs_);
        b = (b / kIdsPerList + 1) * kIdsPerList - 1;
        continue;
      }
      if (zero == hole) return std::max(offset, b * bs_);
    }
    return e_.size;
  }

  // The id of block b (< nblocks_).
  Hash IdOf(uint64_t b) {
    const size_t i = static_cast<size_t>(b / kIdsPerList);
    if (!list_ || list_index_ != i) {
      list_ = List(i);
      list_index_ = i;
    }
    return (*list_)[b % kIdsPerList];
  }

  // Block list i, checked to hold exactly the ids of its range: kIdsPerList
  // but for the last list (the scanner writes them so; docs/FORMAT.md).
  std::shared_ptr<const std::vector<Hash>> List(size_t i) {
    const Hash& id = e_.content[i];
    const uint64_t first = uint64_t{i} * kIdsPerList;
    const uint64_t count = std::min<uint64_t>(kIdsPerList, nblocks_ - first);
    std::shared_ptr<const std::vector<Hash>> ids = state_->Cached<std::vector<Hash>>(BlobType::kList, id);
    try {
      if (!ids) {
        const std::string where = "block list " + std::to_string(i) + " of " + what_;
        ids = std::make_shared<const std::vector<Hash>>(DecodeIdList(state_->Get(id, BlobType::kList, where), where));
        state_->cache.Insert(BlobType::kList, id, ids, ids->size() * sizeof(Hash));
      }
      if (ids->size() != count)
        ThrowCorrupt("block list " + id.Hex() + " holds " + std::to_string(ids->size()) + " ids, not " +
                     std::to_string(count));
    } catch (const Error& err) {
      const uint64_t last = first + count;
      Fail(first * bs_, last == nblocks_ ? e_.size : last * bs_, "block list: " + std::string(err.what()), err);
    }
    return ids;
  }

  // The block with id at [start, start + len), from the cache or the store.
  std::shared_ptr<const std::string> Block(const Hash& id, uint64_t start, uint64_t len) {
    std::shared_ptr<const std::string> block = state_->Cached<std::string>(BlobType::kData, id);
    try {
      if (!block) {
        block = std::make_shared<const std::string>(state_->Get(id, BlobType::kData, "block of " + what_));
        state_->cache.Insert(BlobType::kData, id, block, block->size());
      }
      if (block->size() != len)
        ThrowCorrupt("block " + id.Hex() + " holds " + std::to_string(block->size()) + " bytes, not " +
                     std::to_string(len));
    } catch (const Error& err) {
      Fail(start, start + len, err.what(), err);
    }
    return block;
  }

  // Bytes [from, to) cannot be read because of err: logged, and thrown as
  // kCorrupt (kIo when err is: no copy could be read at all). Anything
  // else (a signal, an internal error) is rethrown as it is.
  [[noreturn]] void Fail(uint64_t from, uint64_t to, const std::string& why, const Error& err) {
    if (err.kind() != ErrorKind::kCorrupt && err.kind() != ErrorKind::kIo) throw err;
    const std::string message =
        what_ + ": bytes " + std::to_string(from) + ".." + std::to_string(to) + " cannot be read (" + why + ")";
    state_->Warn(message);
    throw Error(err.kind(), message);
  }

  const std::shared_ptr<ReaderState> state_;
  const Entry e_;
  const uint64_t bs_;
  const uint64_t nblocks_;
  const std::string path_;  // "POINT/VOLUME/dir/file"
  const std::string what_;  // "VOLUME/dir/file in point POINT", for messages
  // The list last used (most reads stay within one).
  std::shared_ptr<const std::vector<Hash>> list_;
  size_t list_index_ = 0;
};

class StorePointReader final : public PointReader {
 public:
  StorePointReader(Store* store, const std::string& point, Manifest m, uint64_t cache_bytes, Logger* log)
      : m_(std::move(m)),
        state_(std::make_shared<ReaderState>(store, point, m_.block_size ? m_.block_size : store->block_size(),
                                             cache_bytes, log)) {}

  const std::string& name() const override { return state_->point; }

  PointEntry Stat(const std::string& path) override {
    if (path.empty()) {
      // The point itself: a directory of its volumes, of the point's time.
      PointEntry p;
      p.type = EntryTypeName(EntryType::kDir);
      p.mode = 0755;
      p.mtime_ns = m_.time_ns;
      return p;
    }
    std::string at;
    const Entry e = Find(path, &at);
    return StorePointEntry(e, at);
  }

  std::vector<PointEntry> List(const std::string& path) override {
    std::vector<PointEntry> out;
    if (path.empty()) {
      for (const auto& v : m_.volumes) out.push_back(StorePointEntry(v.root, v.name));
      std::sort(out.begin(), out.end(), [](const PointEntry& a, const PointEntry& b) { return a.path < b.path; });
      return out;
    }
    std::string at;
    const Entry e = Find(path, &at);
    if (e.type != EntryType::kDir)
      ThrowConfig("'" + EscapeForTerminal(at) + "' in point " + state_->point + " is not a directory");
    for (const Entry& child : *state_->Tree(e, at)) out.push_back(StorePointEntry(child, at + "/" + child.name));
    return out;
  }

  std::unique_ptr<ReadableFile> Open(const std::string& path) override {
    if (path.empty()) ThrowNotDumpable("", state_->point, "the point itself, a directory");
    std::string at;
    Entry e = Find(path, &at);
    if (e.type != EntryType::kFile)
      ThrowNotDumpable(at, state_->point, e.type == EntryType::kDir       ? "a directory"
                                          : e.type == EntryType::kSymlink ? "a symlink"
                                                                          : "a device node, fifo or socket");
    return std::make_unique<StoreFile>(state_, std::move(e), at);
  }

  StoreReaderStats Stats() const { return state_->Stats(); }

 private:
  // The entry at path, and in *at its path as listed ("VOLUME/dir/name",
  // empty components left out).
  Entry Find(const std::string& path, std::string* at) {
    std::string rel;
    Entry e = FindInPoint(
        m_, state_->point, path,
        [this](const Entry& dir, const std::string& where) { return state_->Tree(dir, where); }, &rel);
    const std::string volume = path.substr(0, path.find('/'));
    *at = rel.empty() ? volume : volume + "/" + rel;
    return e;
  }

  const Manifest m_;
  const std::shared_ptr<ReaderState> state_;
};

}  // namespace

std::unique_ptr<PointReader> OpenStorePointReader(Store* store, const std::string& point_arg, uint64_t cache_bytes,
                                                  Logger* log) {
  const std::string point = ResolvePoint(store, point_arg);
  return std::make_unique<StorePointReader>(store, point, store->ReadPoint(point), cache_bytes, log);
}

StoreReaderStats StoreReaderStatsOf(const PointReader& reader) {
  const auto* r = dynamic_cast<const StorePointReader*>(&reader);
  if (!r) throw Error(ErrorKind::kOther, "internal: not a store's point reader");
  return r->Stats();
}

}  // namespace vmback
