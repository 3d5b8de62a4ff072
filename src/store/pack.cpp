#include "store/pack.h"

#include <zstd.h>

#include <cstring>
#include <memory>

#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

static_assert(kMaxListBlobSize == kIdsPerList * sizeof(Hash::bytes), "a list blob is kIdsPerList ids");

static bool ValidKinds(BlobType t, Compression c) {
  return static_cast<uint8_t>(t) <= 2 && static_cast<uint8_t>(c) <= 1;
}

uint32_t MaxRawLen(BlobType t) {
  switch (t) {
    case BlobType::kData: return kMaxBlockSize;
    case BlobType::kList: return kMaxListBlobSize;
    case BlobType::kTree: return kMaxTreeBlobSize;
  }
  return 0;
}

uint64_t MaxStoredLen(BlobType t, Compression c, uint32_t raw_len) {
  if (!ValidKinds(t, c)) return 0;
  if (c == Compression::kNone) return raw_len;
  return ZSTD_COMPRESSBOUND(uint64_t{MaxRawLen(t)});
}

bool BlobLengthsValid(const PackEntry& e, const Sealer* sealer) {
  if (!ValidKinds(e.type, e.comp) || e.raw_len > MaxRawLen(e.type)) return false;
  const uint64_t overhead = sealer ? kSealOverhead : 0;
  if (e.stored_len < overhead) return false;
  const uint64_t inner = e.stored_len - overhead;
  if (e.comp == Compression::kNone) return inner == e.raw_len;
  return inner <= MaxStoredLen(e.type, e.comp, e.raw_len);
}

std::string BlobAd(const Hash& id, BlobType type, Compression comp, uint32_t raw_len) {
  std::string ad = "vmback blob v1";
  ad.push_back('\0');
  ad.push_back(static_cast<char>(type));
  ad.push_back(static_cast<char>(comp));
  PutU32(&ad, raw_len);
  ad.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  return ad;
}

namespace {

// A zstd context and an output buffer per thread, kept between blobs: a
// fresh context per blob costs its allocation and the zeroing of its tables,
// a fresh output buffer its zero-fill. The buffer serves blobs up to
// kScratchBytes (the store's blocks); larger ones (trees) get their own.
constexpr size_t kScratchBytes = 1u << 20;

struct ZstdScratch {
  ZstdScratch() : ctx(ZSTD_createCCtx()) {
    if (!ctx) throw Error(ErrorKind::kOther, "out of memory for a zstd compression context");
  }
  ~ZstdScratch() { ZSTD_freeCCtx(ctx); }
  ZstdScratch(const ZstdScratch&) = delete;
  ZstdScratch& operator=(const ZstdScratch&) = delete;
  // n bytes to write into, or null when n is beyond kScratchBytes.
  char* Buffer(size_t n) {
    if (n > kScratchBytes) return nullptr;
    if (n > size) {
      buf.reset(new char[n]);
      size = n;
    }
    return buf.get();
  }

  ZSTD_CCtx* ctx;
  std::unique_ptr<char[]> buf;
  size_t size = 0;
};

ZstdScratch& ThreadZstd() {
  thread_local ZstdScratch z;
  return z;
}

}  // namespace

EncodedBlob EncodeBlob(const Hash& id, BlobType type, std::string_view raw, int level, const Sealer* sealer) {
  if (raw.size() > MaxRawLen(type))
    throw Error(ErrorKind::kOther, "a " + std::string(type == BlobType::kTree ? "directory listing" : "blob") +
                                       " of " + std::to_string(raw.size()) + " bytes is larger than the store " +
                                       "format allows (" + std::to_string(MaxRawLen(type)) + " bytes)");
  EncodedBlob b;
  b.id = id;
  b.type = type;
  b.raw_len = static_cast<uint32_t>(raw.size());
  // Only a frame smaller than raw is kept: zstd writes at most raw.size() - 1
  // bytes and fails (a raw blob) when the frame would be larger.
  ZstdScratch& z = ThreadZstd();
  const size_t cap = raw.empty() ? 0 : raw.size() - 1;
  char* out = z.Buffer(cap);
  std::string big;  // for blobs above kScratchBytes: not kept per thread
  if (!out) {
    big.resize(cap);
    out = big.data();
  }
  size_t n = ZSTD_compressCCtx(z.ctx, out, cap, raw.data(), raw.size(), level);
  const bool compressed = !ZSTD_isError(n) && n < raw.size();
  b.comp = compressed ? Compression::kZstd : Compression::kNone;
  const std::string_view body = compressed ? std::string_view(out, n) : raw;
  if (sealer) {
    // Sealed straight from the frame (or from raw): one copy, the sealed one.
    b.stored.reserve(body.size() + kSealOverhead);
    sealer->Seal(body, BlobAd(b.id, b.type, b.comp, b.raw_len), &b.stored);
  } else if (compressed && out == big.data()) {
    big.resize(n);
    b.stored = std::move(big);
  } else {
    b.stored.assign(body);
  }
  return b;
}

namespace {

// This thread's zstd decompression context, made once and reused:
// ZSTD_decompress would make and free one for every blob.
ZSTD_DCtx* ThreadDecompressor() {
  thread_local std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) throw Error(ErrorKind::kOther, "zstd: cannot make a decompression context");
  return ctx.get();
}

// DecodeBlob; a blob stored raw is taken over from *stored instead of copied.
std::string DecodeBlobFrom(const PackEntry& e, std::string_view stored, std::string* owned,
                           const std::string& where, const Sealer* sealer) {
  // The lengths come from a disk: bounded before the output is allocated.
  if (!ValidKinds(e.type, e.comp))
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " has an unknown type or compression");
  const uint64_t overhead = sealer ? kSealOverhead : 0;
  if (stored.size() < overhead)
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " is shorter than its seal (" + std::to_string(stored.size()) +
                 " bytes stored)");
  if (e.raw_len > MaxRawLen(e.type) || stored.size() - overhead > MaxStoredLen(e.type, e.comp, e.raw_len))
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " is larger than the format allows (" +
                 std::to_string(stored.size()) + " bytes stored, " + std::to_string(e.raw_len) + " raw)");
  std::string opened;  // the stored bytes out of their seal
  if (sealer) {
    if (!sealer->Open(stored, BlobAd(e.id, e.type, e.comp, e.raw_len), &opened))
      ThrowCorrupt(where + ": blob " + e.id.Hex() + " does not open (damaged, moved or sealed with another key)");
    stored = opened;
    owned = &opened;
  }
  std::string raw;
  if (e.comp == Compression::kNone) {
    if (owned) raw = std::move(*owned);
    else raw.assign(stored);
  } else {
    // A frame that declares its size must declare raw_len.
    unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR)
      ThrowCorrupt(where + ": blob " + e.id.Hex() + " is not a zstd frame");
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != e.raw_len)
      ThrowCorrupt(where + ": blob " + e.id.Hex() + " does not match its hash (zstd frame of " +
                   std::to_string(declared) + " bytes, " + std::to_string(e.raw_len) + " expected)");
    raw.resize(e.raw_len);
    size_t n = ZSTD_decompressDCtx(ThreadDecompressor(), raw.data(), raw.size(), stored.data(), stored.size());
    if (ZSTD_isError(n))
      ThrowCorrupt(where + ": blob " + e.id.Hex() + " does not decompress (" +
                   ZSTD_getErrorName(n) + ")");
    raw.resize(n);
  }
  if (raw.size() != e.raw_len || (sealer ? sealer->Id(raw) : Sha256(raw)) != e.id)
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " does not match its hash");
  return raw;
}

}  // namespace

std::string DecodeBlob(const PackEntry& e, std::string_view stored, const std::string& where,
                       const Sealer* sealer) {
  return DecodeBlobFrom(e, stored, nullptr, where, sealer);
}

PackWriter::PackWriter(Env* env, const std::string& tmp_path, const Sealer* sealer)
    : file_(env->OpenWrite(tmp_path, CreateMode::kExclusive, 0644)), tmp_path_(tmp_path), sealer_(sealer) {
  std::string header(kPackMagic, 8);
  PutU32(&header, kPackVersion);
  Write(header);
}

void PackWriter::Write(const std::string& bytes) {
  hash_.Update(bytes.data(), bytes.size());
  size_ += bytes.size();
  if (buffer_.size() + bytes.size() > kWriteBufferBytes) FlushBuffer();
  if (bytes.size() >= kWriteBufferBytes) {
    file_->Append(bytes.data(), bytes.size());
  } else {
    buffer_.append(bytes);
  }
}

void PackWriter::FlushBuffer() {
  if (buffer_.empty()) return;
  file_->Append(buffer_.data(), buffer_.size());
  buffer_.clear();
}

static void PutEntryHead(std::string* dst, BlobType type, Compression comp) {
  dst->push_back(static_cast<char>(type));
  dst->push_back(static_cast<char>(comp));
  dst->append(2, '\0');
}

PackEntry PackWriter::Add(const EncodedBlob& blob) {
  PackEntry e;
  e.id = blob.id;
  e.type = blob.type;
  e.comp = blob.comp;
  e.stored_len = static_cast<uint32_t>(blob.stored.size());
  e.raw_len = blob.raw_len;
  std::string header;
  PutEntryHead(&header, e.type, e.comp);
  PutU32(&header, e.stored_len);
  PutU32(&header, e.raw_len);
  header.append(reinterpret_cast<const char*>(e.id.bytes.data()), 32);
  Write(header);
  e.offset = size_;
  Write(blob.stored);
  entries_.push_back(e);
  return e;
}

Hash PackWriter::Finish() {
  std::string table;
  for (const auto& e : entries_) EncodePackEntry(&table, e);
  if (sealer_) table = sealer_->Seal(table, kPackTableAd);
  uint64_t table_offset = size_;
  std::string footer;
  PutU32(&footer, static_cast<uint32_t>(entries_.size()));
  Hash table_hash = Sha256(table);
  footer.append(reinterpret_cast<const char*>(table_hash.bytes.data()), 32);
  PutU64(&footer, table_offset);
  footer.append(kPackEndMagic, 8);
  Write(table + footer);
  FlushBuffer();
  file_->Sync();
  file_->Close();
  return hash_.Finish();
}

void EncodePackEntry(std::string* dst, const PackEntry& e) {
  dst->append(reinterpret_cast<const char*>(e.id.bytes.data()), 32);
  PutEntryHead(dst, e.type, e.comp);
  PutU32(dst, e.stored_len);
  PutU32(dst, e.raw_len);
  PutU64(dst, e.offset);
}

PackEntry DecodePackEntry(const char* p) {
  PackEntry e;
  std::memcpy(e.id.bytes.data(), p, 32);
  e.type = static_cast<BlobType>(p[32]);
  e.comp = static_cast<Compression>(p[33]);
  e.stored_len = GetU32(p + 36);
  e.raw_len = GetU32(p + 40);
  e.offset = GetU64(p + 44);
  return e;
}

bool DecodeValidPackEntry(const char* p, PackEntry* e, const Sealer* sealer) {
  *e = DecodePackEntry(p);
  return BlobLengthsValid(*e, sealer) && p[34] == 0 && p[35] == 0 && e->offset >= kPackHeaderSize + kBlobHeaderSize &&
         e->offset <= UINT64_MAX - e->stored_len;
}

std::string ReadBlob(ReadableFile* file, const PackEntry& e, const Sealer* sealer) {
  const std::string where = file->path() + " offset " + std::to_string(e.offset);
  if (!BlobLengthsValid(e, sealer))
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " has impossible lengths (" + std::to_string(e.stored_len) +
                 " bytes stored, " + std::to_string(e.raw_len) + " raw)");
  // After the pack header and within the file; no sums of values read, so
  // no wrap-around. Not short of the footer: a pack cut after its blobs has
  // none, and every blob ScanPackBlobs finds in it must be readable (in a
  // whole pack, bytes of the footer do not hash to an id).
  const uint64_t end = file->Size();
  if (e.offset < kPackHeaderSize + kBlobHeaderSize || e.offset > end || e.stored_len > end - e.offset)
    ThrowCorrupt(where + ": blob " + e.id.Hex() + " of " + std::to_string(e.stored_len) +
                 " bytes lies beyond the end of the pack (" + std::to_string(end) + " bytes)");
  std::string stored(e.stored_len, '\0');
  if (file->ReadAt(e.offset, stored.data(), stored.size()) != stored.size())
    ThrowCorrupt(file->path() + ": truncated at offset " + std::to_string(e.offset));
  return DecodeBlobFrom(e, stored, &stored, where, sealer);
}

std::vector<PackEntry> ReadPackEntries(ReadableFile* file, const Sealer* sealer) {
  const std::string& where = file->path();
  uint64_t size = file->Size();
  if (size < kPackHeaderSize + kPackFooterSize) ThrowCorrupt(where + ": pack too short");
  char header[kPackHeaderSize];
  if (file->ReadAt(0, header, sizeof header) != sizeof header ||
      std::memcmp(header, kPackMagic, 8) != 0)
    ThrowCorrupt(where + ": not a vmback pack (bad magic)");
  if (GetU32(header + 8) != kPackVersion)
    ThrowCorrupt(where + ": unsupported pack version " + std::to_string(GetU32(header + 8)));
  char footer[kPackFooterSize];
  if (file->ReadAt(size - kPackFooterSize, footer, sizeof footer) != sizeof footer ||
      std::memcmp(footer + 44, kPackEndMagic, 8) != 0)
    ThrowCorrupt(where + ": pack footer damaged or truncated");
  uint32_t count = GetU32(footer);
  uint64_t table_offset = GetU64(footer + 36);
  // No sums of the values read: a damaged offset could wrap around. A
  // sealed table is kSealOverhead bytes longer.
  const uint64_t overhead = sealer ? kSealOverhead : 0;
  if (table_offset < kPackHeaderSize || table_offset > size - kPackFooterSize ||
      size - kPackFooterSize - table_offset != uint64_t{count} * kPackEntrySize + overhead)
    ThrowCorrupt(where + ": pack entry table out of bounds");
  std::string table(uint64_t{count} * kPackEntrySize + overhead, '\0');
  if (file->ReadAt(table_offset, table.data(), table.size()) != table.size())
    ThrowCorrupt(where + ": pack entry table truncated");
  Hash want;
  std::memcpy(want.bytes.data(), footer + 4, 32);
  if (Sha256(table) != want) ThrowCorrupt(where + ": pack entry table checksum mismatch");
  if (sealer) table = sealer->OpenOrThrow(table, kPackTableAd, where + ": pack entry table");
  std::vector<PackEntry> entries;
  entries.reserve(count);
  for (uint32_t i = 0; i < count; i++) {
    PackEntry e;
    if (!DecodeValidPackEntry(table.data() + i * kPackEntrySize, &e, sealer) ||
        e.offset + e.stored_len > table_offset)
      ThrowCorrupt(where + ": pack entry " + std::to_string(i) + " is invalid");
    entries.push_back(e);
  }
  return entries;
}

std::vector<PackEntry> ScanPackBlobs(ReadableFile* file, const Sealer* sealer) {
  std::vector<PackEntry> entries;
  uint64_t size = file->Size();
  uint64_t pos = kPackHeaderSize;
  char h[kBlobHeaderSize];
  while (pos + kBlobHeaderSize <= size) {
    if (file->ReadAt(pos, h, sizeof h) != sizeof h) break;
    PackEntry e;
    e.type = static_cast<BlobType>(h[0]);
    e.comp = static_cast<Compression>(h[1]);
    e.stored_len = GetU32(h + 4);
    e.raw_len = GetU32(h + 8);
    std::memcpy(e.id.bytes.data(), h + 12, 32);
    e.offset = pos + kBlobHeaderSize;
    // Lengths first: then offset + stored_len cannot wrap.
    if (!BlobLengthsValid(e, sealer) || h[2] || h[3] || e.stored_len > size - e.offset)
      break;
    entries.push_back(e);
    pos = e.offset + e.stored_len;
  }
  return entries;
}

}  // namespace vmback
