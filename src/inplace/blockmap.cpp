#include "inplace/blockmap.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string_view>

#include "os/large_memory.h"
#include "scan/file_scanner.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// The format (docs/FORMAT.md, "In-place targets: blockmaps").
constexpr char kMagic[8] = {'V', 'M', 'B', 'K', 'M', 'A', 'P', '\n'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kStateComplete = 1;
constexpr uint32_t kStateWriting = 2;
constexpr uint64_t kHeaderSize = 64;
constexpr uint64_t kStateOffset = 12;
constexpr uint64_t kEntrySize = kBlockmapEntrySize;
constexpr uint64_t kMaxPathLen = 1 << 20;
constexpr uint64_t kMapChunkBytes = 1u << 20;  // map bytes read per step when checking
constexpr size_t kSmallMapBytes = 8 * 1024;  // a map smaller than this is read whole at once

// Feeds the entries of the map in f (from entries_off, n of them) to sum,
// a chunk at a time. Returns false when the file ends before them.
bool HashEntries(ReadableFile* f, uint64_t entries_off, uint64_t n, Sha256Stream* sum) {
  std::string buf;
  for (uint64_t done = 0; done < n * kEntrySize;) {
    size_t step = static_cast<size_t>(std::min(n * kEntrySize - done, kMapChunkBytes));
    buf.resize(step);
    if (f->ReadAt(entries_off + done, buf.data(), step) != step) return false;
    sum->Update(buf.data(), step);
    done += step;
  }
  return true;
}

// lstat(2) says a directory; false when path cannot be told.
bool IsDir(Env* env, const std::string& path) {
  try {
    return env->Status(path).kind == FileKind::kDir;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

Hash BlockEntry(const char* data, size_t len) { return IsAllZero(data, len) ? Hash{} : Sha256(data, len); }

std::string BlockmapPath(const std::string& map_root, const std::string& rel) {
  return BlockmapPathOf(map_root, Sha256(rel));
}

std::string BlockmapPathOf(const std::string& map_root, const Hash& rel_hash) {
  const std::string hex = rel_hash.Hex();
  return JoinPath(JoinPath(JoinPath(map_root, kBlockmapDir), hex.substr(0, 2)), hex + ".map");
}

std::string EncodeBlockmapHeader(const Blockmap& m) {
  std::string s(kMagic, sizeof kMagic);
  PutU32(&s, kVersion);
  PutU32(&s, kStateComplete);
  PutU32(&s, m.block_size);
  PutU32(&s, static_cast<uint32_t>(m.path.size()));
  PutU64(&s, m.file_size);
  PutU64(&s, static_cast<uint64_t>(m.source_mtime_ns));
  PutU64(&s, m.target_ino);
  PutU64(&s, static_cast<uint64_t>(m.target_mtime_ns));
  PutU64(&s, static_cast<uint64_t>(m.target_ctime_ns));
  s += m.path;
  return s;
}

// --- Reading ---

std::string CheckBlockmap(ReadableFile* f, Blockmap* m) {
  // The map of a file of up to about 250 blocks (almost every file of a
  // root file system) comes in one read and is checked from memory; a
  // bigger one is read a chunk at a time.
  std::string head(kSmallMapBytes, '\0');
  head.resize(f->ReadAt(0, head.data(), head.size()));
  const bool whole = head.size() < kSmallMapBytes;
  const uint64_t fsize = whole ? head.size() : f->Size();
  // Bytes [off, off + n) of the map into out, from memory when read.
  auto read = [&](uint64_t off, char* out, size_t n) {
    if (off + n <= head.size()) {
      std::memcpy(out, head.data() + off, n);
      return true;
    }
    return f->ReadAt(off, out, n) == n;
  };
  if (fsize < kHeaderSize + kEntrySize) return "is truncated";
  char hdr[kHeaderSize];
  if (!read(0, hdr, kHeaderSize)) return "is truncated";
  if (std::memcmp(hdr, kMagic, sizeof kMagic) != 0) return "is not a blockmap";
  if (GetU32(hdr + 8) != kVersion) return "has unknown version " + std::to_string(GetU32(hdr + 8));
  if (GetU32(hdr + 12) != kStateComplete) return "was left incomplete (its update was interrupted)";
  m->block_size = GetU32(hdr + 16);
  uint64_t path_len = GetU32(hdr + 20);
  m->file_size = GetU64(hdr + 24);
  m->source_mtime_ns = static_cast<int64_t>(GetU64(hdr + 32));
  m->target_ino = GetU64(hdr + 40);
  m->target_mtime_ns = static_cast<int64_t>(GetU64(hdr + 48));
  m->target_ctime_ns = static_cast<int64_t>(GetU64(hdr + 56));
  if (m->block_size == 0 || (m->block_size & (m->block_size - 1)) != 0)
    return "has a bad block size " + std::to_string(m->block_size);
  if (path_len > kMaxPathLen || kHeaderSize + path_len + kEntrySize > fsize) return "is truncated";
  m->path.assign(path_len, '\0');
  if (!read(kHeaderSize, m->path.data(), path_len)) return "is truncated";
  const uint64_t n = BlockCount(m->file_size, m->block_size);
  const uint64_t room = fsize - kHeaderSize - path_len - kEntrySize;
  if (n > room / kEntrySize || n * kEntrySize != room) return "has a length that does not fit its file size";
  Sha256Stream sum;
  if (whole) {
    sum.Update(head.data() + kHeaderSize + path_len, n * kEntrySize);
  } else if (!HashEntries(f, kHeaderSize + path_len, n, &sum)) {
    return "is truncated";
  }
  sum.Update(hdr, kHeaderSize);
  sum.Update(m->path.data(), path_len);
  Hash want = sum.Finish();
  Hash have;
  if (!read(kHeaderSize + path_len + n * kEntrySize, reinterpret_cast<char*>(have.bytes.data()), kEntrySize))
    return "is truncated";
  if (have != want) return "has a wrong checksum";
  return "";
}

Blockmap ReadBlockmap(Env* env, const std::string& map_path) {
  if (!env->Exists(map_path)) ThrowNotFound("blockmap " + map_path + " does not exist");
  auto f = env->OpenRead(map_path);
  Blockmap m;
  std::string why = CheckBlockmap(f.get(), &m);
  if (!why.empty()) ThrowCorrupt("blockmap " + map_path + " " + why);
  m.blocks.resize(BlockCount(m.file_size, m.block_size));
  size_t len = m.blocks.size() * kEntrySize;
  if (f->ReadAt(kHeaderSize + m.path.size(), m.blocks.data(), len) != len)
    ThrowCorrupt("blockmap " + map_path + " is truncated");
  return m;
}

void ReadBlockmapEntries(ReadableFile* f, const std::string& map_path, const Blockmap& m, uint64_t first,
                         size_t count, std::string* out) {
  out->resize(count * kEntrySize);
  if (f->ReadAt(kHeaderSize + m.path.size() + first * kEntrySize, out->data(), out->size()) != out->size())
    ThrowCorrupt("blockmap " + map_path + " shrank while in use");
}

// --- Writing ---

BlockmapWriter::BlockmapWriter(Env* env, const std::string& map_path, const std::string& rel, Start start,
                               uint64_t* bytes_written)
    : map_path_(map_path), entries_off_(kHeaderSize + rel.size()), bytes_written_(bytes_written) {
  if (start == Start::kLater) {
    later_ = true;
    invalidated_ = true;  // (nothing on disk to invalidate)
    return;
  }
  if (start == Start::kUpdate || start == Start::kInvalidated) {
    out_ = env->OpenWrite(map_path, CreateMode::kExisting);
    invalidated_ = start == Start::kInvalidated;
    return;
  }
  out_ = env->OpenWrite(map_path, start == Start::kNew ? CreateMode::kExclusive : CreateMode::kTruncate, 0600);
  // A map that was there may be complete on disk (its emptying not yet
  // written): it is emptied durably before its file is touched. A new one
  // has no header on disk until completed.
  if (start == Start::kFresh) out_->Sync();
  invalidated_ = true;
}

void BlockmapWriter::Invalidate() {
  if (invalidated_) return;
  std::string state;
  PutU32(&state, kStateWriting);
  out_->WriteAt(kStateOffset, state.data(), state.size());
  out_->Sync();
  *bytes_written_ += state.size();
  invalidated_ = true;
}

void BlockmapWriter::WriteEntries(uint64_t first, const char* entries, size_t count) {
  Invalidate();
  if (later_) {
    const size_t at = static_cast<size_t>(first * kEntrySize), len = count * kEntrySize;
    if (later_entries_.size() < at + len) later_entries_.resize(at + len, '\0');
    std::memcpy(later_entries_.data() + at, entries, len);
    return;  // counted when written (WriteBlockmapCompletion)
  }
  out_->WriteAt(entries_off_ + first * kEntrySize, entries, count * kEntrySize);
  *bytes_written_ += count * kEntrySize;
}

void BlockmapWriter::AddToTrailer(const char* entries, size_t count) { trailer_.Update(entries, count * kEntrySize); }

BlockmapCompletion BlockmapWriter::Finish(const Blockmap& m, bool resize, bool keep_open) {
  BlockmapCompletion c;
  c.map_path = map_path_;
  c.header = EncodeBlockmapHeader(m);
  trailer_.Update(c.header.data(), c.header.size());
  c.trailer = trailer_.Finish();
  c.trailer_offset = entries_off_ + BlockCount(m.file_size, m.block_size) * kEntrySize;
  c.path = m.path;
  if (later_) {
    // (Entries never written read as zeros, as in a map file.)
    later_entries_.resize(static_cast<size_t>(c.trailer_offset - entries_off_), '\0');
    c.whole.reserve(c.header.size() + later_entries_.size() + kEntrySize);
    c.whole = c.header;
    c.whole += later_entries_;
    c.whole.append(reinterpret_cast<const char*>(c.trailer.bytes.data()), kEntrySize);
    return c;
  }
  if (resize) out_->Truncate(c.trailer_offset + kEntrySize);
  if (keep_open) {
    c.open = std::move(out_);
  } else {
    out_->Close();
  }
  return c;
}

void BlockmapWriter::Close() {
  if (out_) out_->Close();
}

uint64_t SetBlockmapState(Env* env, const std::string& map_path, MapState to) {
  std::string state;
  PutU32(&state, to == MapState::kComplete ? kStateComplete : kStateWriting);
  auto w = env->OpenWrite(map_path, CreateMode::kExisting);
  w->WriteAt(kStateOffset, state.data(), state.size());
  w->Close();
  return state.size();
}

uint64_t WriteBlockmapCompletion(Env* env, BlockmapCompletion* c, FileStatus* after) {
  std::unique_ptr<WritableFile> w = std::move(c->open);
  uint64_t written;
  if (!c->whole.empty()) {  // started kLater: made now, in one write
    w = env->OpenWrite(c->map_path, CreateMode::kExclusive, 0600);
    w->WriteAt(0, c->whole.data(), c->whole.size());
    written = c->whole.size();
  } else {
    if (!w) w = env->OpenWrite(c->map_path, CreateMode::kExisting);
    w->WriteAt(0, c->header.data(), c->header.size());
    w->WriteAt(c->trailer_offset, c->trailer.bytes.data(), kEntrySize);
    written = c->header.size() + kEntrySize;
  }
  if (after) *after = w->MetadataByDescriptor() ? w->Status() : FileStatus{};
  w->Close();
  return written;
}

uint64_t RewriteBlockmapHeader(Env* env, ReadableFile* f, const std::string& map_path, const Blockmap& m) {
  const std::string hdr = EncodeBlockmapHeader(m);
  const uint64_t entries_off = kHeaderSize + m.path.size();
  const uint64_t n = BlockCount(m.file_size, m.block_size);
  Sha256Stream sum;
  if (!HashEntries(f, entries_off, n, &sum)) ThrowCorrupt("blockmap " + map_path + " shrank while in use");
  sum.Update(hdr.data(), hdr.size());
  const Hash t = sum.Finish();
  auto w = env->OpenWrite(map_path, CreateMode::kExisting);
  w->WriteAt(0, hdr.data(), hdr.size());
  w->WriteAt(entries_off + n * kEntrySize, t.bytes.data(), kEntrySize);
  w->Close();
  return hdr.size() + kEntrySize;
}

// --- The map index ---

namespace {

constexpr char kIndexMagic[8] = {'V', 'M', 'B', 'K', 'I', 'D', 'X', '\n'};
constexpr uint32_t kIndexVersion = 1;
constexpr size_t kIndexHeaderSize = 32;
constexpr uint32_t kIndexExact = 1;  // flags: the map directory held exactly these maps
constexpr size_t kIndexRecordSize = 84;  // before the path

}  // namespace

const Blockmap* MapIndex::Find(std::string_view path) const {
  if (slots_.empty()) return nullptr;
  uint64_t tag = 0;
  const uint64_t slot = slots_[SlotOf(path, &tag)];
  return slot == 0 ? nullptr : &records_[RecordOf(slot)];
}

void MapIndex::clear() {
  records_.clear();
  slots_.clear();
}

void MapIndex::Reserve(size_t n) {
  clear();
  records_.reserve(n);
  // Huge pages for the records (15 MB for 100,000 files), filled at once:
  // with 4 KiB pages, faulting them in cost about as much as parsing.
  AdviseHugePages(records_.data(), n * sizeof(Blockmap));
  size_t slots = 16;
  while (slots < 2 * n) slots *= 2;
  slots_.assign(slots, 0);
}

size_t MapIndex::SlotOf(std::string_view path, uint64_t* tag) const {
  const size_t mask = slots_.size() - 1;
  const uint64_t h = std::hash<std::string_view>{}(path);
  *tag = h & kTagBits;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint64_t slot = slots_[i];
    if (slot == 0 || ((slot & kTagBits) == *tag && records_[RecordOf(slot)].path == path)) return i;
  }
}

bool MapIndex::IndexLast() {
  uint64_t tag = 0;
  const size_t slot = SlotOf(records_.back().path, &tag);
  if (slots_[slot] != 0) {
    records_.pop_back();
    return false;
  }
  slots_[slot] = tag | records_.size();
  return true;
}

std::string ReadMapIndex(Env* env, const std::string& path, uint32_t block_size, MapIndex* out, bool* exact) {
  out->clear();
  if (exact) *exact = false;
  if (!env->Exists(path)) return "is missing";
  LargeMemory file;
  try {
    file = ReadFileToMemory(env, path, kMaxMapIndexSize);
  } catch (const Error& err) {
    if (err.kind() != ErrorKind::kCorrupt) throw;
    return "is larger than " + std::to_string(kMaxMapIndexSize) + " bytes";
  }
  const std::string_view s = file.view();
  if (s.size() < kIndexHeaderSize + kEntrySize) return "is truncated";
  if (std::memcmp(s.data(), kIndexMagic, sizeof kIndexMagic) != 0) return "is not a map index";
  if (GetU32(s.data() + 8) != kIndexVersion) return "has unknown version " + std::to_string(GetU32(s.data() + 8));
  const size_t body = s.size() - kEntrySize;
  Hash have;
  std::memcpy(have.bytes.data(), s.data() + body, kEntrySize);
  if (Sha256(s.data(), body) != have) return "has a wrong checksum";
  if (GetU32(s.data() + 12) != block_size)
    return "was written for blocks of " + std::to_string(GetU32(s.data() + 12)) + " bytes";
  const uint32_t flags = GetU32(s.data() + 16);
  const uint64_t n = GetU64(s.data() + 24);
  // (At most about 3 million records: the size is bounded.)
  if (n > (body - kIndexHeaderSize) / kIndexRecordSize) return "has a count that does not fit its size";
  out->Reserve(static_cast<size_t>(n));
  size_t off = kIndexHeaderSize;
  for (uint64_t i = 0; i < n; i++) {
    if (body - off < kIndexRecordSize) break;
    const char* p = s.data() + off;
    const uint64_t path_len = GetU32(p);
    if (path_len == 0 || path_len > kMaxPathLen || body - off - kIndexRecordSize < path_len) break;
    if (GetU64(p + 52) == 0) break;  // map_ino 0: never written so
    Blockmap& m = out->records_.emplace_back();
    m.block_size = block_size;
    m.file_size = GetU64(p + 4);
    m.source_mtime_ns = static_cast<int64_t>(GetU64(p + 12));
    m.target_ino = GetU64(p + 20);
    m.target_mtime_ns = static_cast<int64_t>(GetU64(p + 28));
    m.target_ctime_ns = static_cast<int64_t>(GetU64(p + 36));
    m.source_ctime_ns = static_cast<int64_t>(GetU64(p + 44));
    m.map_ino = GetU64(p + 52);
    m.map_size = GetU64(p + 60);
    m.map_mtime_ns = static_cast<int64_t>(GetU64(p + 68));
    m.map_ctime_ns = static_cast<int64_t>(GetU64(p + 76));
    m.path.assign(p + kIndexRecordSize, path_len);
    off += kIndexRecordSize + path_len;
    if (!out->IndexLast()) break;  // a path twice
  }
  if (out->size() != n || off != body) {
    out->clear();
    return "has records that do not fit its count";
  }
  if (exact) *exact = (flags & kIndexExact) != 0;
  return "";
}

LargeMemory EncodeMapIndex(std::vector<const Blockmap*> maps, uint32_t block_size, bool exact) {
  auto by_path = [](const Blockmap* a, const Blockmap* b) { return a->path < b->path; };
  if (!std::is_sorted(maps.begin(), maps.end(), by_path)) std::stable_sort(maps.begin(), maps.end(), by_path);
  // Each path once (the first of those given).
  auto same_path = [](const Blockmap* a, const Blockmap* b) { return a->path == b->path; };
  maps.erase(std::unique(maps.begin(), maps.end(), same_path), maps.end());
  size_t size = kIndexHeaderSize + kEntrySize;
  for (const Blockmap* m : maps) size += kIndexRecordSize + m->path.size();
  // Filled in place, sized first: with an append per field (a million
  // appends for 100,000 files) the encoding took about five times as long.
  // In memory of its own (huge pages where the kernel gives them): with 4 KiB
  // pages, faulting the 15 MB of that tree's index in took longer than
  // filling it.
  LargeMemory s(size, "the map index");
  char* p = s.data();
  std::memcpy(p, kIndexMagic, sizeof kIndexMagic);
  StoreU32(p + 8, kIndexVersion);
  StoreU32(p + 12, block_size);
  StoreU32(p + 16, exact ? kIndexExact : 0);
  StoreU32(p + 20, 0);
  StoreU64(p + 24, maps.size());
  p += kIndexHeaderSize;
  for (const Blockmap* m : maps) {
    StoreU32(p, static_cast<uint32_t>(m->path.size()));
    StoreU64(p + 4, m->file_size);
    StoreU64(p + 12, static_cast<uint64_t>(m->source_mtime_ns));
    StoreU64(p + 20, m->target_ino);
    StoreU64(p + 28, static_cast<uint64_t>(m->target_mtime_ns));
    StoreU64(p + 36, static_cast<uint64_t>(m->target_ctime_ns));
    StoreU64(p + 44, static_cast<uint64_t>(m->source_ctime_ns));
    StoreU64(p + 52, m->map_ino);
    StoreU64(p + 60, m->map_size);
    StoreU64(p + 68, static_cast<uint64_t>(m->map_mtime_ns));
    StoreU64(p + 76, static_cast<uint64_t>(m->map_ctime_ns));
    std::memcpy(p + kIndexRecordSize, m->path.data(), m->path.size());
    p += kIndexRecordSize + m->path.size();
  }
  const size_t body = size - kEntrySize;
  const Hash sum = Sha256(s.data(), body);
  std::memcpy(s.data() + body, sum.bytes.data(), kEntrySize);
  return s;
}

bool SameMapHeader(const Blockmap& a, const Blockmap& b) {
  return a.block_size == b.block_size && a.file_size == b.file_size && a.source_mtime_ns == b.source_mtime_ns &&
         a.target_ino == b.target_ino && a.target_mtime_ns == b.target_mtime_ns &&
         a.target_ctime_ns == b.target_ctime_ns && a.source_ctime_ns == b.source_ctime_ns && a.path == b.path &&
         a.map_ino == b.map_ino && a.map_size == b.map_size && a.map_mtime_ns == b.map_mtime_ns &&
         a.map_ctime_ns == b.map_ctime_ns;
}

bool MapFileUnchanged(const Blockmap& m, const FileStatus& st) {
  return m.map_ino != 0 && st.kind == FileKind::kFile && m.map_ino == static_cast<uint64_t>(st.ino) &&
         m.map_size == st.size && m.map_mtime_ns == st.mtime_ns && m.map_ctime_ns == st.ctime_ns;
}

void RecordMapFile(Blockmap* m, const FileStatus& st) {
  m->map_ino = static_cast<uint64_t>(st.ino);
  m->map_size = st.size;
  m->map_mtime_ns = st.mtime_ns;
  m->map_ctime_ns = st.ctime_ns;
}

// --- Checking and listing ---

std::vector<std::string> CheckAgainstBlockmap(Env* env, const std::string& file, const Blockmap& map,
                                              uint64_t* blocks, uint64_t* bytes) {
  std::vector<std::string> problems;
  auto f = env->OpenRead(file);
  uint64_t size = f->Size();
  if (size != map.file_size)
    problems.push_back("size " + std::to_string(size) + " differs from its blockmap's " +
                       std::to_string(map.file_size));
  std::vector<char> buf(map.block_size);
  uint64_t n = (map.file_size + map.block_size - 1) / map.block_size;
  if (map.blocks.size() != n) {
    problems.push_back("blockmap holds " + std::to_string(map.blocks.size()) + " blocks for " +
                       std::to_string(n));
    return problems;
  }
  for (uint64_t i = 0; i < n; i++) {
    uint64_t off = i * map.block_size;
    size_t want = static_cast<size_t>(std::min<uint64_t>(map.block_size, map.file_size - off));
    size_t got = off < size ? f->ReadAt(off, buf.data(), want) : 0;
    if (got < want) std::memset(buf.data() + got, 0, want - got);
    (*blocks)++;
    *bytes += want;
    if (BlockEntry(buf.data(), want) != map.blocks[i])
      problems.push_back("block " + std::to_string(i) + " (offset " + std::to_string(off) +
                         ") differs from its blockmap");
  }
  return problems;
}

std::vector<std::string> ListBlockmaps(Env* env, const std::string& map_root) {
  std::vector<std::string> out;
  std::string dir = JoinPath(map_root, kBlockmapDir);
  if (!IsDir(env, dir)) return out;
  for (const auto& sub : env->ListDir(dir)) {
    std::string d = JoinPath(dir, sub);
    if (!IsDir(env, d)) continue;
    for (const auto& m : env->ListDir(d))
      if (EndsWith(m, ".map")) out.push_back(JoinPath(d, m));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace vmback
