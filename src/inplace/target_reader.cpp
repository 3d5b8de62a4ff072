#include "inplace/target_reader.h"

#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "inplace/blockmap.h"
#include "inplace/checked_read.h"
#include "inplace/target_ops.h"
#include "scan/file_scanner.h"
#include "scan/metadata.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace {

// Entries of a blockmap read per step: a read of many blocks never holds
// more than this many in memory.
constexpr size_t kEntriesPerStep = 1024;
// Distinct bad blocks of one file that are logged; the rest are still
// errors, but silent (a reader retrying a bad block must not flood the log).
constexpr size_t kMaxLoggedBadBlocks = 100;
// What one cached block costs beside its data (an all-zero block keeps
// none), so that a cache of zero blocks stays bounded too.
constexpr uint64_t kCacheItemOverhead = 64;

// The checked blocks of the files of one reader, the least recently used
// dropped first, within a budget of bytes. Not thread-safe.
class BlockCache {
 public:
  explicit BlockCache(uint64_t budget) : budget_(budget) {}

  // The block `index` of file `file`, or null; a hit becomes the most
  // recently used. *zero is set for an all-zero block (data then empty).
  // The pointer lasts until the next Insert or EraseFile.
  const std::string* Find(uint64_t file, uint64_t index, bool* zero) {
    auto it = index_.find({file, index});
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    *zero = it->second->zero;
    return &it->second->data;
  }

  // Keeps a checked block (zero: all zeros, data not kept), dropping the
  // least recently used until it fits; one that cannot fit is not kept.
  void Insert(uint64_t file, uint64_t index, bool zero, const char* data, size_t len) {
    const uint64_t cost = (zero ? 0 : len) + kCacheItemOverhead;
    if (cost > budget_ || index_.count({file, index})) return;
    while (bytes_ + cost > budget_) Drop(std::prev(lru_.end()));
    lru_.push_front(Item{file, index, zero, zero ? std::string() : std::string(data, len)});
    index_[{file, index}] = lru_.begin();
    bytes_ += cost;
  }

  // Drops the blocks of a file that is closed.
  void EraseFile(uint64_t file) {
    for (auto it = index_.lower_bound({file, 0}); it != index_.end() && it->first.first == file;) {
      auto item = it->second;
      ++it;
      Drop(item);
    }
  }

 private:
  struct Item {
    uint64_t file;
    uint64_t index;
    bool zero;
    std::string data;
  };

  void Drop(std::list<Item>::iterator item) {
    bytes_ -= (item->zero ? 0 : item->data.size()) + kCacheItemOverhead;
    index_.erase({item->file, item->index});
    lru_.erase(item);
  }

  const uint64_t budget_;
  uint64_t bytes_ = 0;
  std::list<Item> lru_;  // most recently used first
  std::map<std::pair<uint64_t, uint64_t>, std::list<Item>::iterator> index_;
};

// What a reader's files share with it: they may not outlive it.
struct ReaderState {
  std::string point;
  Logger* log;
  BlockCache cache;
  std::string scratch;  // one block read from disk, before it is checked
  uint64_t next_file = 1;
};

// The blockmap of a file of the point, checked whole (CheckBlockmap: its
// trailer covers every entry) when the file is opened; its entries are then
// read from the map as blocks are, never all held in memory.
struct CheckedMap {
  std::string path;
  Blockmap header;  // blocks left empty
  std::unique_ptr<ReadableFile> file;
};

// The kind of what lstat finds at path, which must be a directory or absent.
bool MapDirThere(Env* env, const std::string& dir, const std::string& what) {
  const FileKind kind = env->Status(dir).kind;
  if (kind == FileKind::kMissing) return false;
  if (kind != FileKind::kDir)
    ThrowCorrupt(dir + " is not a directory (a symlink or a file planted in the point?); the blockmap of " + what +
                 " cannot be read");
  return true;
}

// The map of the file at `at` (what: "VOLUME/dir/file in point P", for
// messages), or nullopt when it has none. Throws kCorrupt when it is there
// but unsound, or describes another file or another size than size.
std::optional<CheckedMap> OpenMap(Env* env, const TargetPath& at, uint64_t size, const std::string& what) {
  CheckedMap m;
  m.path = BlockmapPath(at.map_root, at.rel);
  const std::string dir = JoinPath(at.map_root, kBlockmapDir);
  if (!MapDirThere(env, dir, what) || !MapDirThere(env, DirName(m.path), what)) return std::nullopt;
  const FileKind kind = env->Status(m.path).kind;
  if (kind == FileKind::kMissing) return std::nullopt;
  const std::string name = "blockmap " + m.path + " of " + what;
  if (kind != FileKind::kFile) ThrowCorrupt(name + " is not a regular file");
  m.file = env->OpenRead(m.path);
  const std::string why = CheckBlockmap(m.file.get(), &m.header);
  if (!why.empty()) ThrowCorrupt(name + " " + why);
  if (!IsValidBlockSize(m.header.block_size, kMinInplaceBlockSize))
    ThrowCorrupt(name + " has a block size out of range: " + std::to_string(m.header.block_size));
  if (m.header.path != at.rel)
    ThrowCorrupt(name + " describes another file ('" + EscapeForTerminal(m.header.path) + "')");
  if (m.header.file_size != size)
    ThrowCorrupt(what + ": size " + std::to_string(size) + " differs from its blockmap's " +
                 std::to_string(m.header.file_size));
  return m;
}

class TargetFile final : public ReadableFile {
 public:
  TargetFile(std::string path, std::unique_ptr<ReadableFile> in, std::optional<CheckedMap> map, ReaderState* state)
      : path_(std::move(path)),
        in_(std::move(in)),
        size_(in_->Size()),
        map_(std::move(map)),
        state_(state),
        id_(state->next_file++) {}
  ~TargetFile() override { state_->cache.EraseFile(id_); }

  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    if (offset >= size_) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
    if (n == 0) return 0;
    if (!map_) return ReadUnchecked(offset, buf, n);
    const uint64_t bs = map_->header.block_size;
    char* out = static_cast<char*>(buf);
    for (uint64_t i = offset / bs, end = offset + n; i * bs < end; i++) {
      const uint64_t block_off = i * bs;
      const size_t len = static_cast<size_t>(std::min<uint64_t>(bs, size_ - block_off));
      bool zero = false;
      const std::string* cached = state_->cache.Find(id_, i, &zero);
      const char* data;
      if (cached) {
        data = cached->data();
      } else {
        zero = ReadBlock(i, len);
        data = state_->scratch.data();
        state_->cache.Insert(id_, i, zero, data, len);
      }
      const uint64_t from = std::max(offset, block_off);
      const uint64_t to = std::min(end, block_off + len);
      if (zero)
        std::memset(out + (from - offset), 0, to - from);
      else
        std::memcpy(out + (from - offset), data + (from - block_off), to - from);
    }
    return n;
  }

  uint64_t Size() override { return size_; }
  uint64_t NextData(uint64_t offset) override { return in_->NextData(offset); }
  uint64_t NextHole(uint64_t offset) override { return in_->NextHole(offset); }
  void DropCache(uint64_t offset, uint64_t len) override { in_->DropCache(offset, len); }
  void DisableReadahead() override { in_->DisableReadahead(); }
  const std::string& path() const override { return path_; }

 private:
  std::string Where(uint64_t from, uint64_t to) const {
    return EscapeForTerminal(path_) + " in point " + state_->point + ": bytes " + std::to_string(from) + ".." +
           std::to_string(to);
  }

  // Logs (the first few distinct blocks of this file) and throws kCorrupt.
  [[noreturn]] void Bad(uint64_t block, const std::string& message) {
    if (warned_.size() < kMaxLoggedBadBlocks && warned_.insert(block).second) state_->log->Warn(message);
    ThrowCorrupt(message);
  }

  // Reads block i (len bytes) into the scratch buffer and checks it against
  // its entry. Returns whether it is all zeros.
  bool ReadBlock(uint64_t i, size_t len) {
    const uint64_t off = i * map_->header.block_size;
    const std::string where = Where(off, off + len) + " (block " + std::to_string(i) + ")";
    std::string& buf = state_->scratch;
    buf.resize(len);
    size_t got = 0;
    try {
      got = in_->ReadAt(off, buf.data(), len);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo) throw;
      Bad(i, where + " cannot be read: " + e.what());
    }
    if (got < len) Bad(i, where + " cannot be read: the file ends at " + std::to_string(off + got));
    const bool zero = IsAllZero(buf.data(), len);
    if ((zero ? Hash{} : Sha256(buf.data(), len)) != Entry(i))
      Bad(i, where + " differs from its blockmap; the point is damaged (run 'vmback verify')");
    return zero;
  }

  // The blockmap's entry of block i, read a step of entries at a time.
  Hash Entry(uint64_t i) {
    if (i < entries_first_ || i >= entries_first_ + entries_.size() / kBlockmapEntrySize) {
      const uint64_t count = BlockCount(size_, map_->header.block_size);
      entries_first_ = i;
      ReadBlockmapEntries(map_->file.get(), map_->path, map_->header, i,
                          static_cast<size_t>(std::min<uint64_t>(kEntriesPerStep, count - i)), &entries_);
    }
    Hash h;
    std::memcpy(h.bytes.data(), entries_.data() + (i - entries_first_) * kBlockmapEntrySize, kBlockmapEntrySize);
    return h;
  }

  size_t ReadUnchecked(uint64_t offset, void* buf, size_t n) {
    try {
      return in_->ReadAt(offset, buf, n);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo) throw;
      ThrowCorrupt(Where(offset, offset + n) + " cannot be read: " + e.what());
    }
  }

  const std::string path_;
  const std::unique_ptr<ReadableFile> in_;
  const uint64_t size_;
  const std::optional<CheckedMap> map_;
  ReaderState* const state_;
  const uint64_t id_;
  uint64_t entries_first_ = 0;
  std::string entries_;  // the entries from entries_first_ on
  std::set<uint64_t> warned_;
};

class TargetPointReader final : public PointReader {
 public:
  TargetPointReader(Env* env, OpenedTargetPoint opened, uint64_t cache_bytes, Logger* log)
      : env_(env), opened_(std::move(opened)), state_{opened_.name, log, BlockCache(cache_bytes), {}, 1} {}

  const std::string& name() const override { return opened_.name; }

  PointEntry Stat(const std::string& path) override {
    if (path.empty()) {
      const std::string& root = opened_.view->root();
      PointEntry e = PointEntryOf(ReadMetadata(env_, root, ExistingStatus(env_, root)), "");
      if (e.type != "dir") ThrowCorrupt("the root of point " + name() + " (" + root + ") is not a directory");
      return e;
    }
    return InPoint(path, [&] { return TargetEntryAt(env_, opened_, path); });
  }

  std::vector<PointEntry> List(const std::string& path) override {
    if (!path.empty() && Stat(path).type != "dir")
      ThrowConfig(EscapeForTerminal(path) + " in point " + name() + " is not a directory");
    std::vector<PointEntry> out = InPoint(path, [&] { return ListOpenedTargetPoint(env_, opened_, path, false); });
    std::sort(out.begin(), out.end(), [](const PointEntry& a, const PointEntry& b) { return a.path < b.path; });
    return out;
  }

  std::unique_ptr<ReadableFile> Open(const std::string& path) override {
    const TargetPath at = InPoint(path, [&] { return ResolveTargetPath(env_, opened_, path); });
    CheckRegularFile(env_->Status(at.file), path, name());
    // Never through a symlink: OpenRead does not follow one in the last
    // component (ResolveTargetPath refused them in the others).
    auto in = env_->OpenRead(at.file);
    const std::string what = EscapeForTerminal(path) + " in point " + name();
    std::optional<CheckedMap> map = OpenMap(env_, at, in->Size(), what);
    if (!map && unchecked_.insert(path).second)
      state_.log->Warn(what + ": no blockmap in the point; read without the end-to-end check");
    return std::make_unique<TargetFile>(path, std::move(in), std::move(map), &state_);
  }

 private:
  // f(), with a path that is not in the point (leaves its volume, passes a
  // symlink, is not there) reported as not found, naming the point.
  template <typename F>
  auto InPoint(const std::string& path, F f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kConfig && e.kind() != ErrorKind::kNotFound) throw;
      ThrowNotFound(EscapeForTerminal(path) + " not found in point " + name() + " (" + e.what() + ")");
    }
  }

  Env* const env_;
  const OpenedTargetPoint opened_;
  ReaderState state_;
  std::set<std::string> unchecked_;  // files warned about for having no blockmap
};

}  // namespace

std::unique_ptr<PointReader> OpenTargetPointReader(InplaceTarget* target, Env* env, const std::string& point,
                                                   uint64_t cache_bytes, Logger* log) {
  return std::make_unique<TargetPointReader>(env, OpenTargetPoint(target, env, point), cache_bytes, log);
}

}  // namespace vmback
