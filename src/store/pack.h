// Pack files: the unit in which the store keeps blobs on disk. See
// docs/FORMAT.md for the byte layout. A pack is written once, to a temp name,
// made durable and then renamed to packs/XX/<sha256 of the file>.pack; it is
// never modified afterwards, so copies of a pack are byte-identical.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/seal.h"
#include "os/env.h"
#include "util/sha256.h"
#include "util/tunables.h"

namespace vmback {

enum class BlobType : uint8_t { kData = 0, kList = 1, kTree = 2 };
enum class Compression : uint8_t { kNone = 0, kZstd = 1 };

inline constexpr char kPackMagic[8] = {'V', 'M', 'B', 'P', 'A', 'C', 'K', '\n'};
inline constexpr char kPackEndMagic[8] = {'V', 'M', 'B', 'P', 'E', 'N', 'D', '\n'};
inline constexpr uint32_t kPackVersion = 1;
inline constexpr size_t kPackHeaderSize = 12;     // magic + u32 version
inline constexpr size_t kBlobHeaderSize = 44;     // type, comp, pad, clen, raw_len, id
inline constexpr size_t kPackEntrySize = 52;
inline constexpr size_t kPackFooterSize = 52;     // count, sha256(entries), entries offset, magic

// The largest plain (raw_len) size of each kind of blob (docs/FORMAT.md): a
// data blob is one block and block_size is at most 16 MiB; a list blob holds
// at most kIdsPerList (2048) ids of 32 bytes; a tree blob is one directory's
// JSON, which the writer refuses to make larger than 64 MiB. Every length
// read from a store is checked against these (and kMaxBlockSize, in
// util/tunables.h) before anything is allocated.
inline constexpr uint32_t kMaxListBlobSize = 2048 * 32;
inline constexpr uint32_t kMaxTreeBlobSize = 64u << 20;
inline constexpr uint32_t kMaxBlobSize = kMaxTreeBlobSize;  // the largest of the three

struct PackEntry {
  Hash id;
  BlobType type = BlobType::kData;
  Compression comp = Compression::kNone;
  uint64_t offset = 0;  // of the stored bytes (after the blob header)
  uint32_t stored_len = 0;
  uint32_t raw_len = 0;
};

// A blob ready to be appended: id computed and data compressed, typically on
// a worker thread.
struct EncodedBlob {
  Hash id;
  BlobType type = BlobType::kData;
  Compression comp = Compression::kNone;
  uint32_t raw_len = 0;
  std::string stored;
};

// The largest raw_len a blob of type t may have; 0 for an unknown type.
uint32_t MaxRawLen(BlobType t);
// The largest stored_len a blob of this raw_len and compression may have:
// raw_len itself when stored raw, ZSTD_compressBound(MaxRawLen(t)) for a zstd
// frame; 0 for an unknown type or compression.
uint64_t MaxStoredLen(BlobType t, Compression c, uint32_t raw_len);
// True when e's kinds are known and its lengths within the bounds above (a
// stored raw blob has stored_len == raw_len), plus kSealOverhead when the
// store is encrypted (sealer given). Says nothing of where it lies.
//
// Every function below that takes a `sealer` reads or writes the format of
// an encrypted store when it is given (docs/FORMAT.md, "Encrypted stores"):
// each blob's stored bytes sealed under BlobAd, the entry table sealed, and
// ids keyed (Sealer::Id); null for a plain store.
bool BlobLengthsValid(const PackEntry& e, const Sealer* sealer = nullptr);

// The associated data a blob is sealed under: what it is (type, compression,
// raw length) and its id, so that a blob moved to another id or entry does
// not open.
std::string BlobAd(const Hash& id, BlobType type, Compression comp, uint32_t raw_len);
// The associated data of a pack's entry table.
inline constexpr std::string_view kPackTableAd = "vmback pack table v1";

// One entry of a pack's table (also the entry layout of index files):
// kPackEntrySize bytes. Decode does not validate the kinds.
void EncodePackEntry(std::string* dst, const PackEntry& e);
PackEntry DecodePackEntry(const char* p);
// Decodes an entry and checks what can be checked of it alone: a known type
// and compression, zero padding, lengths within the format's maxima
// (BlobLengthsValid), stored bytes that start after the pack and blob headers
// and end below 2^64. Returns false if any of that is wrong. Whether it lies
// inside its pack is the caller's check (see ReadBlob).
bool DecodeValidPackEntry(const char* p, PackEntry* e, const Sealer* sealer = nullptr);

// Compresses raw with zstd at level; keeps it raw when that is not smaller.
// Throws ErrorKind::kOther when raw is larger than MaxRawLen(type): no reader
// would accept the blob. With a sealer the stored bytes are then sealed and
// id must be sealer->Id(raw).
EncodedBlob EncodeBlob(const Hash& id, BlobType type, std::string_view raw, int level,
                       const Sealer* sealer = nullptr);

// Decompresses and re-hashes; throws ErrorKind::kCorrupt (naming `where`) if
// the bytes do not decode to exactly raw_len bytes whose SHA-256 is the id
// (with a sealer: if they do not open under BlobAd, or the keyed id differs).
// Lengths beyond the format's maxima are refused before any allocation.
std::string DecodeBlob(const PackEntry& e, std::string_view stored, const std::string& where,
                       const Sealer* sealer = nullptr);

// Reads and decodes the blob e (from an index or a pack table) of the pack
// `file`. Throws kCorrupt naming the pack, before allocating anything, when
// e's lengths are beyond the format's maxima or its stored bytes do not lie
// between the pack's header and its footer.
std::string ReadBlob(ReadableFile* file, const PackEntry& e, const Sealer* sealer = nullptr);

// Appends blobs to a new pack file. Not thread-safe.
class PackWriter {
 public:
  // Creates tmp_path exclusively. With a sealer the entry table is sealed
  // (the blobs come sealed from EncodeBlob).
  PackWriter(Env* env, const std::string& tmp_path, const Sealer* sealer = nullptr);
  // Returns the entry (offset within this pack).
  PackEntry Add(const EncodedBlob& blob);
  uint64_t size() const { return size_; }
  size_t count() const { return entries_.size(); }
  // Appends the entry table and footer, fsyncs and closes. Returns the pack
  // id (SHA-256 of the whole file). The caller renames it into place.
  // Until then the bytes added may wait in a buffer (kWriteBufferBytes), so
  // that many small blobs cost one write, not two each: nothing reads a pack
  // before it is finished, and only Finish's fsync makes any of it durable.
  Hash Finish();
  static constexpr size_t kWriteBufferBytes = 1u << 20;
  const std::vector<PackEntry>& entries() const { return entries_; }
  const std::string& tmp_path() const { return tmp_path_; }

 private:
  void Write(const std::string& bytes);
  void FlushBuffer();

  std::unique_ptr<WritableFile> file_;
  std::string buffer_;  // written bytes not yet appended to file_
  std::string tmp_path_;
  const Sealer* sealer_;
  Sha256Stream hash_;
  uint64_t size_ = 0;
  std::vector<PackEntry> entries_;
};

// Reads a pack's entry table from its footer; throws kCorrupt if the footer,
// magic or table checksum is wrong, or an entry is invalid or points outside
// the file.
std::vector<PackEntry> ReadPackEntries(ReadableFile* file, const Sealer* sealer = nullptr);

// Reads every blob of a pack by walking blob headers from the start, for
// verify and for rebuilding when a footer is damaged. Returns the entries
// whose header parsed; stops at the first unparseable header.
std::vector<PackEntry> ScanPackBlobs(ReadableFile* file, const Sealer* sealer = nullptr);

}  // namespace vmback
