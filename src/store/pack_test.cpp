// Tests for store/pack.h (blob encoding, pack files) and the index file
// codec of store/index.h.
#include "store/pack.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "os/env.h"
#include "store/index.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/sha256.h"

namespace vmback {
namespace {

using test::RandomBytes;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;

// A ReadableFile over a string, for exhaustive corruption tests without disk.
class StringFile final : public ReadableFile {
 public:
  StringFile(std::string data, std::string path = "mem.pack")
      : data_(std::move(data)), path_(std::move(path)) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    if (offset >= data_.size()) return 0;
    size_t k = std::min<uint64_t>(n, data_.size() - offset);
    std::memcpy(buf, data_.data() + offset, k);
    return k;
  }
  uint64_t Size() override { return data_.size(); }
  uint64_t NextData(uint64_t offset) override { return offset; }
  uint64_t NextHole(uint64_t) override { return data_.size(); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return path_; }

 private:
  std::string data_;
  std::string path_;
};

// Compressible, deterministic bytes.
std::string Compressible(size_t n, uint64_t seed) {
  std::string words = RandomBytes(64, seed);
  std::string out;
  while (out.size() < n) out += words.substr(0, 16) + "the quick brown fox " + words.substr(16, 8);
  out.resize(n);
  return out;
}

EncodedBlob Encode(BlobType type, const std::string& raw) {
  return EncodeBlob(Sha256(raw), type, raw, 3);
}

PackEntry EntryOf(const EncodedBlob& b) {
  PackEntry e;
  e.id = b.id;
  e.type = b.type;
  e.comp = b.comp;
  e.stored_len = static_cast<uint32_t>(b.stored.size());
  e.raw_len = b.raw_len;
  return e;
}

void ExpectSameEntry(const PackEntry& a, const PackEntry& b, const std::string& what) {
  EXPECT_EQ(a.id, b.id) << what;
  EXPECT_EQ(a.type, b.type) << what;
  EXPECT_EQ(a.comp, b.comp) << what;
  EXPECT_EQ(a.offset, b.offset) << what;
  EXPECT_EQ(a.stored_len, b.stored_len) << what;
  EXPECT_EQ(a.raw_len, b.raw_len) << what;
}

void ExpectSameEntries(const std::vector<PackEntry>& a, const std::vector<PackEntry>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) ExpectSameEntry(a[i], b[i], "entry " + std::to_string(i));
}

ErrorKind KindOf(const std::function<void()>& fn, std::string* message = nullptr) {
  return test::ErrorKindOf(fn, message);
}

// The blobs of the standard test pack.
struct TestBlob {
  BlobType type;
  std::string raw;
};

std::vector<TestBlob> TestBlobs() {
  return {
      {BlobType::kData, Compressible(20000, 1)},
      {BlobType::kData, RandomBytes(5000, 2)},
      {BlobType::kList, RandomBytes(32 * 3, 3)},
      {BlobType::kTree, R"({"entries":[{"name":"a","type":"file"}]})"},
      {BlobType::kData, ""},
      {BlobType::kData, Compressible(65536, 4)},
  };
}

struct WrittenPack {
  std::string path;
  Hash id;
  std::vector<PackEntry> entries;
  std::vector<TestBlob> blobs;
};

WrittenPack WritePack(const std::string& path, std::vector<TestBlob> blobs = TestBlobs()) {
  WrittenPack p;
  p.path = path;
  p.blobs = blobs;
  PackWriter w(Env::Default(), path);
  EXPECT_EQ(w.size(), kPackHeaderSize);
  EXPECT_EQ(w.count(), 0u);
  for (const auto& b : blobs) {
    uint64_t before = w.size();
    EncodedBlob eb = Encode(b.type, b.raw);
    PackEntry e = w.Add(eb);
    EXPECT_EQ(e.offset, before + kBlobHeaderSize);
    EXPECT_EQ(w.size(), before + kBlobHeaderSize + eb.stored.size());
    p.entries.push_back(e);
  }
  EXPECT_EQ(w.count(), blobs.size());
  EXPECT_EQ(w.tmp_path(), path);
  p.id = w.Finish();
  return p;
}

// ------------------------------------------------------------------ blobs

TEST(PackTest, EncodeCompressibleUsesZstd) {
  std::string raw = Compressible(64 * 1024, 10);
  Hash id = Sha256(raw);
  EncodedBlob b = EncodeBlob(id, BlobType::kData, raw, 3);
  EXPECT_EQ(b.id, id);
  EXPECT_EQ(b.type, BlobType::kData);
  EXPECT_EQ(b.comp, Compression::kZstd);
  EXPECT_EQ(b.raw_len, raw.size());
  EXPECT_LT(b.stored.size(), raw.size() / 4);
  EXPECT_EQ(DecodeBlob(EntryOf(b), b.stored, "test"), raw);
}

TEST(PackTest, EncodeRandomStaysRaw) {
  std::string raw = RandomBytes(64 * 1024, 11);
  EncodedBlob b = EncodeBlob(Sha256(raw), BlobType::kList, raw, 3);
  EXPECT_EQ(b.comp, Compression::kNone);
  EXPECT_EQ(b.type, BlobType::kList);
  EXPECT_EQ(b.stored, raw);
  EXPECT_EQ(b.raw_len, raw.size());
  EXPECT_EQ(DecodeBlob(EntryOf(b), b.stored, "test"), raw);
}

TEST(PackTest, EncodeEmptyAndTinyBlobs) {
  for (const std::string& raw : {std::string(), std::string("x"), std::string(3, '\0')}) {
    EncodedBlob b = Encode(BlobType::kTree, raw);
    EXPECT_EQ(b.comp, Compression::kNone) << raw.size();  // zstd never smaller here
    EXPECT_EQ(DecodeBlob(EntryOf(b), b.stored, "test"), raw);
  }
}

TEST(PackTest, EncodeAllZeroBlock) {
  std::string raw(1 << 20, '\0');
  EncodedBlob b = Encode(BlobType::kData, raw);
  EXPECT_EQ(b.comp, Compression::kZstd);
  EXPECT_EQ(DecodeBlob(EntryOf(b), b.stored, "test"), raw);
}

TEST(PackTest, DecodeRejectsFlippedBitCompressed) {
  std::string raw = Compressible(4096, 12);
  EncodedBlob b = Encode(BlobType::kData, raw);
  ASSERT_EQ(b.comp, Compression::kZstd);
  ASSERT_LT(b.stored.size(), 400u);
  PackEntry e = EntryOf(b);
  // A representative flip in the middle of the frame.
  {
    std::string bad = b.stored;
    bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x01);
    std::string msg;
    EXPECT_EQ(KindOf([&] { DecodeBlob(e, bad, "where.pack"); }, &msg), ErrorKind::kCorrupt);
    EXPECT_NE(msg.find("where.pack"), std::string::npos) << msg;
    EXPECT_NE(msg.find(b.id.Hex()), std::string::npos) << msg;
  }
  // Every flip: either kCorrupt, or (zstd ignores a few bits, e.g. the
  // frame header's unused bit) exactly the original, hash-checked bytes.
  // Never wrong data.
  size_t rejected = 0, total = 0;
  for (size_t i = 0; i < b.stored.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = b.stored;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      total++;
      try {
        std::string out = DecodeBlob(e, bad, "where.pack");
        EXPECT_EQ(out, raw) << "byte " << i << " bit " << bit;
      } catch (const Error& err) {
        EXPECT_EQ(err.kind(), ErrorKind::kCorrupt) << "byte " << i << " bit " << bit;
        rejected++;
      }
    }
  }
  EXPECT_GT(rejected, total * 9 / 10);
}

TEST(PackTest, DecodeRejectsFlippedBitRaw) {
  std::string raw = RandomBytes(1000, 13);
  EncodedBlob b = Encode(BlobType::kData, raw);
  ASSERT_EQ(b.comp, Compression::kNone);
  for (size_t i : {size_t{0}, size_t{1}, size_t{500}, size_t{999}}) {
    for (int bit : {0, 3, 7}) {
      std::string bad = b.stored;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::string msg;
      EXPECT_EQ(KindOf([&] { DecodeBlob(EntryOf(b), bad, "some/pack"); }, &msg),
                ErrorKind::kCorrupt);
      EXPECT_NE(msg.find("some/pack"), std::string::npos) << msg;
      EXPECT_NE(msg.find(b.id.Hex()), std::string::npos) << msg;
    }
  }
}

TEST(PackTest, DecodeRejectsWrongRawLen) {
  for (const std::string& raw : {Compressible(8192, 14), RandomBytes(8192, 15)}) {
    EncodedBlob b = Encode(BlobType::kData, raw);
    for (int64_t delta : {-1, 1, -100, 4096}) {
      PackEntry e = EntryOf(b);
      e.raw_len = static_cast<uint32_t>(static_cast<int64_t>(e.raw_len) + delta);
      EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt)
          << "comp " << static_cast<int>(b.comp) << " delta " << delta;
    }
    PackEntry e = EntryOf(b);
    e.raw_len = 0;
    EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);
  }
}

TEST(PackTest, DecodeRejectsHugeRawLen) {
  EncodedBlob b = Encode(BlobType::kData, Compressible(8192, 16));
  ASSERT_EQ(b.comp, Compression::kZstd);
  PackEntry e = EntryOf(b);
  e.raw_len = kMaxBlobSize + 1;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);
  e.raw_len = 0xffffffffu;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);
}

TEST(PackTest, DecodeRejectsWrongIdOrCompression) {
  std::string raw = Compressible(8192, 17);
  EncodedBlob b = Encode(BlobType::kData, raw);
  PackEntry e = EntryOf(b);
  e.id.bytes[5] ^= 0x10;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);

  e = EntryOf(b);
  e.comp = static_cast<Compression>(7);
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);

  // A zstd frame read as raw: wrong length and hash.
  e = EntryOf(b);
  e.comp = Compression::kNone;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "w"); }), ErrorKind::kCorrupt);

  // Raw bytes read as zstd: not a frame.
  EncodedBlob r = Encode(BlobType::kData, RandomBytes(4096, 18));
  e = EntryOf(r);
  e.comp = Compression::kZstd;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, r.stored, "w"); }), ErrorKind::kCorrupt);
}

TEST(PackTest, DecodeRejectsTruncatedStored) {
  EncodedBlob b = Encode(BlobType::kData, Compressible(8192, 19));
  ASSERT_EQ(b.comp, Compression::kZstd);
  for (size_t n = 0; n < b.stored.size(); n++)
    EXPECT_EQ(KindOf([&] { DecodeBlob(EntryOf(b), b.stored.substr(0, n), "w"); }),
              ErrorKind::kCorrupt)
        << n;
}

// ------------------------------------------------------------- pack files

TEST(PackTest, WriteThenReadEntries) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  EXPECT_EQ(p.id, Sha256(bytes));
  EXPECT_EQ(bytes.substr(0, 8), std::string(kPackMagic, 8));
  EXPECT_EQ(GetU32(bytes.data() + 8), kPackVersion);
  EXPECT_EQ(bytes.substr(bytes.size() - 8), std::string(kPackEndMagic, 8));

  auto f = Env::Default()->OpenRead(p.path);
  std::vector<PackEntry> read = ReadPackEntries(f.get());
  ExpectSameEntries(read, p.entries);
  ASSERT_EQ(read.size(), p.blobs.size());
  for (size_t i = 0; i < read.size(); i++) {
    EXPECT_EQ(read[i].type, p.blobs[i].type);
    EXPECT_EQ(read[i].id, Sha256(p.blobs[i].raw));
    std::string stored(read[i].stored_len, '\0');
    ASSERT_EQ(f->ReadAt(read[i].offset, stored.data(), stored.size()), stored.size());
    EXPECT_EQ(DecodeBlob(read[i], stored, p.path), p.blobs[i].raw) << i;
  }
  // Both compressions are represented.
  EXPECT_EQ(read[0].comp, Compression::kZstd);
  EXPECT_EQ(read[1].comp, Compression::kNone);
}

TEST(PackTest, FileLayoutMatchesFormat) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  // Each blob header repeats the entry, right before its stored bytes.
  for (const auto& e : p.entries) {
    const char* h = bytes.data() + e.offset - kBlobHeaderSize;
    EXPECT_EQ(static_cast<uint8_t>(h[0]), static_cast<uint8_t>(e.type));
    EXPECT_EQ(static_cast<uint8_t>(h[1]), static_cast<uint8_t>(e.comp));
    EXPECT_EQ(h[2], 0);
    EXPECT_EQ(h[3], 0);
    EXPECT_EQ(GetU32(h + 4), e.stored_len);
    EXPECT_EQ(GetU32(h + 8), e.raw_len);
    EXPECT_EQ(std::memcmp(h + 12, e.id.bytes.data(), 32), 0);
  }
  // Footer: count, sha256(table), table offset, end magic.
  const char* footer = bytes.data() + bytes.size() - kPackFooterSize;
  uint32_t count = GetU32(footer);
  uint64_t table_offset = GetU64(footer + 36);
  EXPECT_EQ(count, p.entries.size());
  EXPECT_EQ(table_offset + count * kPackEntrySize + kPackFooterSize, bytes.size());
  const PackEntry& last = p.entries.back();
  EXPECT_EQ(table_offset, last.offset + last.stored_len);
  Hash table_hash = Sha256(bytes.substr(table_offset, count * kPackEntrySize));
  EXPECT_EQ(std::memcmp(footer + 4, table_hash.bytes.data(), 32), 0);
}

TEST(PackTest, EmptyPackRoundTrip) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "empty.pack", {});
  std::string bytes = ReadFile(p.path);
  EXPECT_EQ(bytes.size(), kPackHeaderSize + kPackFooterSize);
  EXPECT_EQ(p.id, Sha256(bytes));
  auto f = Env::Default()->OpenRead(p.path);
  EXPECT_TRUE(ReadPackEntries(f.get()).empty());
  EXPECT_TRUE(ScanPackBlobs(f.get()).empty());
}

TEST(PackTest, SamePackContentSameId) {
  TempDir dir;
  WrittenPack a = WritePack(dir / "a.pack");
  WrittenPack b = WritePack(dir / "b.pack");
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(ReadFile(a.path), ReadFile(b.path));
  WrittenPack c = WritePack(dir / "c.pack", {{BlobType::kData, "other"}});
  EXPECT_NE(a.id, c.id);
}

TEST(PackTest, WriterRefusesExistingFile) {
  TempDir dir;
  WriteFile(dir / "exists.pack", "x");
  EXPECT_THROW(PackWriter(Env::Default(), dir / "exists.pack"), Error);
  EXPECT_EQ(ReadFile(dir / "exists.pack"), "x");
}

TEST(PackTest, ReadEntriesRejectsTruncatedFile) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  // On disk, a few representative lengths.
  for (size_t n : {size_t{0}, size_t{11}, size_t{12}, size_t{63}, size_t{64}, bytes.size() / 2,
                   bytes.size() - kPackFooterSize, bytes.size() - 8, bytes.size() - 1}) {
    std::string path = dir / ("t" + std::to_string(n) + ".pack");
    WriteFile(path, bytes.substr(0, n));
    auto f = Env::Default()->OpenRead(path);
    std::string msg;
    EXPECT_EQ(KindOf([&] { ReadPackEntries(f.get()); }, &msg), ErrorKind::kCorrupt) << n;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // In memory, every length.
  for (size_t n = 0; n < bytes.size(); n++) {
    StringFile f(bytes.substr(0, n));
    EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }), ErrorKind::kCorrupt) << n;
  }
}

TEST(PackTest, ReadEntriesRejectsAppendedBytes) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  StringFile f(bytes + std::string(1, '\0'));
  EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }), ErrorKind::kCorrupt);
}

TEST(PackTest, ReadEntriesRejectsFlippedBitInEntryTable) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  uint64_t table_offset = GetU64(bytes.data() + bytes.size() - kPackFooterSize + 36);
  // On disk: one bit in the id of the second entry, and one in an offset.
  for (uint64_t off : {table_offset + kPackEntrySize + 3, table_offset + 44}) {
    std::string bad = bytes;
    bad[off] = static_cast<char>(bad[off] ^ 0x04);
    std::string path = dir / ("flip" + std::to_string(off) + ".pack");
    WriteFile(path, bad);
    auto f = Env::Default()->OpenRead(path);
    std::string msg;
    EXPECT_EQ(KindOf([&] { ReadPackEntries(f.get()); }, &msg), ErrorKind::kCorrupt);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // In memory: every bit of the table and the footer.
  for (size_t i = table_offset; i < bytes.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      StringFile f(bad);
      EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }), ErrorKind::kCorrupt)
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(PackTest, ReadEntriesRejectsBadMagicAndVersion) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  for (size_t i = 0; i < kPackHeaderSize; i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      StringFile f(bad);
      std::string msg;
      EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }, &msg), ErrorKind::kCorrupt)
          << "byte " << i << " bit " << bit;
      if (i < 8) {
        EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
      }
    }
  }
  std::string path = dir / "magic.pack";
  std::string bad = bytes;
  std::memcpy(bad.data(), "NOTAPACK", 8);
  WriteFile(path, bad);
  auto f = Env::Default()->OpenRead(path);
  std::string msg;
  EXPECT_EQ(KindOf([&] { ReadPackEntries(f.get()); }, &msg), ErrorKind::kCorrupt);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
}

TEST(PackTest, ReadEntriesRejectsEntryOutsideFile) {
  // A pack whose table checksum is right but whose entry is invalid.
  auto build = [](uint8_t type, uint8_t comp, uint64_t offset, uint32_t stored_len,
                  uint32_t raw_len) {
    std::string raw = "hello";
    std::string f(kPackMagic, 8);
    PutU32(&f, kPackVersion);
    f.push_back(0);  // blob header
    f.push_back(0);
    f.append(2, '\0');
    PutU32(&f, 5);
    PutU32(&f, 5);
    Hash id = Sha256(raw);
    f.append(reinterpret_cast<const char*>(id.bytes.data()), 32);
    f += raw;
    uint64_t table_offset = f.size();
    std::string table(reinterpret_cast<const char*>(id.bytes.data()), 32);
    table.push_back(static_cast<char>(type));
    table.push_back(static_cast<char>(comp));
    table.append(2, '\0');
    PutU32(&table, stored_len);
    PutU32(&table, raw_len);
    PutU64(&table, offset);
    f += table;
    PutU32(&f, 1);
    Hash th = Sha256(table);
    f.append(reinterpret_cast<const char*>(th.bytes.data()), 32);
    PutU64(&f, table_offset);
    f.append(kPackEndMagic, 8);
    return f;
  };
  const uint64_t good_off = kPackHeaderSize + kBlobHeaderSize;
  {
    StringFile ok(build(0, 0, good_off, 5, 5));
    ASSERT_EQ(ReadPackEntries(&ok).size(), 1u);
  }
  struct Case {
    uint8_t type, comp;
    uint64_t offset;
    uint32_t stored_len, raw_len;
  };
  for (const Case& c : {Case{0, 0, good_off, 6, 5},      // runs into the table
                        Case{0, 0, good_off + 1, 5, 5},  // ditto
                        Case{0, 0, 1000, 5, 5},          // beyond the file
                        Case{0, 0, 0, 5, 5},             // inside the header
                        Case{0, 0, good_off - 1, 5, 5},  // inside the blob header
                        Case{3, 0, good_off, 5, 5},      // unknown type
                        Case{0, 2, good_off, 5, 5},      // unknown compression
                        Case{0, 0, good_off, 5, kMaxBlobSize + 1}}) {
    StringFile f(build(c.type, c.comp, c.offset, c.stored_len, c.raw_len));
    EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }), ErrorKind::kCorrupt)
        << int(c.type) << " " << int(c.comp) << " " << c.offset << " " << c.stored_len;
  }
}

TEST(PackTest, ScanFindsAllBlobsInIntactPack) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  auto f = Env::Default()->OpenRead(p.path);
  ExpectSameEntries(ScanPackBlobs(f.get()), p.entries);
}

TEST(PackTest, ScanRecoversBlobsWithoutFooter) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  uint64_t table_offset = GetU64(bytes.data() + bytes.size() - kPackFooterSize + 36);
  // Footer cut off; footer and table cut off; footer cut half way.
  for (size_t n : {bytes.size() - kPackFooterSize, size_t(table_offset), bytes.size() - 20}) {
    std::string path = dir / ("cut" + std::to_string(n) + ".pack");
    WriteFile(path, bytes.substr(0, n));
    auto f = Env::Default()->OpenRead(path);
    EXPECT_EQ(KindOf([&] { ReadPackEntries(f.get()); }), ErrorKind::kCorrupt);
    std::vector<PackEntry> scanned = ScanPackBlobs(f.get());
    ExpectSameEntries(scanned, p.entries);
    // What the scan found, a read gives: also the last blob, which now
    // reaches where the footer was.
    for (size_t i = 0; i < scanned.size(); i++) EXPECT_EQ(ReadBlob(f.get(), scanned[i]), p.blobs[i].raw) << n << " " << i;
  }
}

TEST(PackTest, ScanStopsAtCutBlob) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  // Cut inside the stored bytes of the third blob: the first two survive.
  const PackEntry& third = p.entries[2];
  StringFile f(bytes.substr(0, third.offset + third.stored_len - 1));
  std::vector<PackEntry> scanned = ScanPackBlobs(&f);
  ASSERT_EQ(scanned.size(), 2u);
  ExpectSameEntry(scanned[0], p.entries[0], "0");
  ExpectSameEntry(scanned[1], p.entries[1], "1");
  // Cut inside the third blob's header.
  StringFile g(bytes.substr(0, third.offset - 10));
  EXPECT_EQ(ScanPackBlobs(&g).size(), 2u);
}

TEST(PackTest, ScanStopsAtDamagedHeader) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  // Give the fourth blob's header an unknown type.
  bytes[p.entries[3].offset - kBlobHeaderSize] = 9;
  StringFile f(bytes);
  std::vector<PackEntry> scanned = ScanPackBlobs(&f);
  ASSERT_EQ(scanned.size(), 3u);
  for (size_t i = 0; i < 3; i++) ExpectSameEntry(scanned[i], p.entries[i], std::to_string(i));
}


// ------------------------------------------------------- length bounds
// Every length in a pack or index comes from a disk anyone may have handled:
// it is bounded by the format's maxima and by the pack's size before
// anything is allocated (docs/FORMAT.md, "Blobs").

PackEntry EntryWithLengths(BlobType type, Compression comp, uint32_t stored_len, uint32_t raw_len) {
  PackEntry e;
  e.id = Sha256("some blob");
  e.type = type;
  e.comp = comp;
  e.offset = kPackHeaderSize + kBlobHeaderSize;
  e.stored_len = stored_len;
  e.raw_len = raw_len;
  return e;
}

TEST(PackBoundsTest, MaximaPerType) {
  EXPECT_EQ(MaxRawLen(BlobType::kData), 16u << 20);
  EXPECT_EQ(MaxRawLen(BlobType::kList), 2048u * 32);
  EXPECT_EQ(MaxRawLen(BlobType::kTree), 64u << 20);
  EXPECT_EQ(MaxRawLen(static_cast<BlobType>(3)), 0u);
  for (BlobType t : {BlobType::kData, BlobType::kList, BlobType::kTree}) {
    const uint32_t max = MaxRawLen(t);
    const uint64_t zmax = ZSTD_COMPRESSBOUND(uint64_t{max});
    EXPECT_EQ(MaxStoredLen(t, Compression::kZstd, 1), zmax);
    EXPECT_EQ(MaxStoredLen(t, Compression::kNone, 7), 7u);
    EXPECT_TRUE(BlobLengthsValid(EntryWithLengths(t, Compression::kNone, max, max)));
    EXPECT_TRUE(BlobLengthsValid(EntryWithLengths(t, Compression::kZstd, zmax, max)));
    EXPECT_TRUE(BlobLengthsValid(EntryWithLengths(t, Compression::kZstd, 0, 0)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kNone, max + 1, max + 1)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kZstd, 10, max + 1)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kZstd, zmax + 1, max)));
    // Stored raw: the stored bytes are the blob.
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kNone, 10, 11)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kNone, 11, 10)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kZstd, 0xffffffffu, 0xffffffffu)));
    EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(t, Compression::kNone, 0xffffffffu, 0xffffffffu)));
  }
  EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(static_cast<BlobType>(3), Compression::kNone, 1, 1)));
  EXPECT_FALSE(BlobLengthsValid(EntryWithLengths(BlobType::kData, static_cast<Compression>(2), 1, 1)));
}

TEST(PackBoundsTest, DecodeValidPackEntryRejectsForgedLengths) {
  auto decodes = [](const PackEntry& e) {
    std::string bytes;
    EncodePackEntry(&bytes, e);
    PackEntry back;
    return DecodeValidPackEntry(bytes.data(), &back);
  };
  EXPECT_TRUE(decodes(EntryWithLengths(BlobType::kData, Compression::kZstd, 100, 65536)));
  EXPECT_FALSE(decodes(EntryWithLengths(BlobType::kData, Compression::kZstd, 0xffffffffu, 0xffffffffu)));
  EXPECT_FALSE(decodes(EntryWithLengths(BlobType::kData, Compression::kZstd, 100, (16u << 20) + 1)));
  EXPECT_FALSE(decodes(EntryWithLengths(BlobType::kList, Compression::kNone, 65537, 65537)));
  EXPECT_FALSE(decodes(EntryWithLengths(BlobType::kTree, Compression::kZstd, 100, (64u << 20) + 1)));
}

TEST(PackBoundsTest, EncodeRefusesBlobsNoReaderAccepts) {
  EXPECT_NO_THROW(Encode(BlobType::kList, std::string(kMaxListBlobSize, 'x')));
  EXPECT_EQ(KindOf([&] { Encode(BlobType::kList, std::string(kMaxListBlobSize + 1, 'x')); }), ErrorKind::kOther);
  std::string msg;
  EXPECT_EQ(KindOf([&] { Encode(BlobType::kTree, std::string(kMaxTreeBlobSize + 1, ' ')); }, &msg),
            ErrorKind::kOther);
  EXPECT_NE(msg.find(std::to_string(kMaxTreeBlobSize)), std::string::npos) << msg;
}

TEST(PackBoundsTest, DecodeRefusesForgedLengthsBeforeAllocating) {
  EncodedBlob b = Encode(BlobType::kData, Compressible(8192, 40));
  ASSERT_EQ(b.comp, Compression::kZstd);
  PackEntry e = EntryOf(b);
  std::string msg;
  // raw_len 4 GiB-1: refused by the bound, not by a failed 4 GiB allocation.
  e.raw_len = 0xffffffffu;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "p.pack"); }, &msg), ErrorKind::kCorrupt);
  EXPECT_NE(msg.find("larger than the format allows"), std::string::npos) << msg;
  // Within the maximum, but not what the frame declares: refused before
  // the output is allocated.
  e.raw_len = 16u << 20;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "p.pack"); }, &msg), ErrorKind::kCorrupt);
  EXPECT_NE(msg.find("zstd frame of 8192 bytes"), std::string::npos) << msg;
  // A list blob is at most 64 KiB however it is stored.
  e = EntryOf(b);
  e.type = BlobType::kList;
  e.raw_len = kMaxListBlobSize + 1;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, b.stored, "p.pack"); }), ErrorKind::kCorrupt);
  // Not a zstd frame at all.
  e = EntryOf(b);
  std::string junk(b.stored.size(), 'j');
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, junk, "p.pack"); }, &msg), ErrorKind::kCorrupt);
}

// A ReadableFile that counts the bytes asked for, to show that a forged
// length is refused before it is read (or allocated).
class CountingFile final : public ReadableFile {
 public:
  explicit CountingFile(std::string data) : inner_(std::move(data), "packs/ab/forged.pack") {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    asked_ += n;
    return inner_.ReadAt(offset, buf, n);
  }
  uint64_t Size() override { return inner_.Size(); }
  uint64_t NextData(uint64_t offset) override { return offset; }
  uint64_t NextHole(uint64_t) override { return inner_.Size(); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return inner_.path(); }
  uint64_t asked() const { return asked_; }

 private:
  StringFile inner_;
  uint64_t asked_ = 0;
};

TEST(PackBoundsTest, ReadBlobReadsEveryBlobOfAPack) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  CountingFile f(ReadFile(p.path));
  for (size_t i = 0; i < p.entries.size(); i++) EXPECT_EQ(ReadBlob(&f, p.entries[i]), p.blobs[i].raw) << i;
}

TEST(PackBoundsTest, ReadBlobRefusesEntriesBeyondThePack) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  const std::string bytes = ReadFile(p.path);
  const uint64_t end = bytes.size();
  const PackEntry good = p.entries[1];  // stored raw
  ASSERT_EQ(good.comp, Compression::kNone);
  struct Case {
    const char* what;
    Compression comp;
    uint64_t offset;
    uint32_t stored_len, raw_len;
  };
  for (const Case& c : {
           Case{"the forged index of issue 11", Compression::kZstd, good.offset, 0xffffffffu, 0xffffffffu},
           Case{"4 GiB-1 stored raw", Compression::kNone, good.offset, 0xffffffffu, 0xffffffffu},
           Case{"16 MiB, past the end", Compression::kNone, good.offset, 16u << 20, 16u << 20},
           Case{"past the end by one byte", Compression::kNone, end - 10, 11, 11},
           Case{"starts at the end", Compression::kNone, end, 1, 1},
           Case{"starts past the end", Compression::kNone, bytes.size() + 100, 1, 1},
           Case{"offset near 2^64", Compression::kNone, UINT64_MAX - 5, 5, 5},
           Case{"inside the pack header", Compression::kNone, 4, 5, 5},
       }) {
    PackEntry e = good;
    e.comp = c.comp;
    e.offset = c.offset;
    e.stored_len = c.stored_len;
    e.raw_len = c.raw_len;
    CountingFile f(bytes);
    std::string msg;
    EXPECT_EQ(KindOf([&] { ReadBlob(&f, e); }, &msg), ErrorKind::kCorrupt) << c.what;
    EXPECT_NE(msg.find("packs/ab/forged.pack"), std::string::npos) << c.what << ": " << msg;
    EXPECT_EQ(f.asked(), 0u) << c.what << ": read before the bounds were checked";
  }
  // Exactly up to the end of the file is fine as far as the bounds go (the
  // bytes, here the footer's, then do not hash to the id).
  PackEntry e = good;
  e.offset = end - 5;
  e.stored_len = e.raw_len = 5;
  CountingFile f(bytes);
  std::string msg;
  EXPECT_EQ(KindOf([&] { ReadBlob(&f, e); }, &msg), ErrorKind::kCorrupt);
  EXPECT_NE(msg.find("does not match its hash"), std::string::npos) << msg;
  EXPECT_EQ(f.asked(), 5u);
}

TEST(PackBoundsTest, ReadEntriesRefusesHugeFooterCount) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  std::string bytes = ReadFile(p.path);
  for (uint32_t count : {0xffffffffu, 0x80000000u, static_cast<uint32_t>(p.entries.size() + 1)}) {
    std::string forged = bytes;
    std::memcpy(forged.data() + forged.size() - kPackFooterSize, &count, 4);  // little-endian hosts
    ASSERT_EQ(GetU32(forged.data() + forged.size() - kPackFooterSize), count);
    CountingFile f(forged);
    std::string msg;
    EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }, &msg), ErrorKind::kCorrupt) << count;
    EXPECT_NE(msg.find("packs/ab/forged.pack"), std::string::npos) << msg;
    EXPECT_LE(f.asked(), kPackHeaderSize + kPackFooterSize) << "table read for a count the file cannot hold";
  }
}

TEST(PackBoundsTest, ReadEntriesRefusesForgedLengthsWithGoodChecksum) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  const std::string bytes = ReadFile(p.path);
  const uint64_t table_offset = GetU64(bytes.data() + bytes.size() - kPackFooterSize + 36);
  for (uint32_t raw_len : {0xffffffffu, (16u << 20) + 1}) {
    std::string forged = bytes;
    char* entry = forged.data() + table_offset;  // the first entry: a zstd data blob
    ASSERT_EQ(entry[33], 1);
    std::string len;
    PutU32(&len, raw_len);
    std::memcpy(entry + 40, len.data(), 4);
    Hash sum = Sha256(std::string_view(forged).substr(table_offset, p.entries.size() * kPackEntrySize));
    std::memcpy(forged.data() + forged.size() - kPackFooterSize + 4, sum.bytes.data(), 32);
    StringFile f(forged);
    EXPECT_EQ(KindOf([&] { ReadPackEntries(&f); }), ErrorKind::kCorrupt) << raw_len;
  }
}

TEST(PackBoundsTest, ScanStopsAtForgedBlobHeaderLengths) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  const std::string bytes = ReadFile(p.path);
  // The third blob's header (a list, stored raw) claims more than a list can be.
  const uint64_t h = p.entries[2].offset - kBlobHeaderSize;
  for (uint32_t n : {0xffffffffu, kMaxListBlobSize + 1}) {
    std::string forged = bytes;
    std::string len;
    PutU32(&len, n);
    PutU32(&len, n);
    std::memcpy(forged.data() + h + 4, len.data(), 8);
    StringFile f(forged);
    std::vector<PackEntry> scanned = ScanPackBlobs(&f);
    ASSERT_EQ(scanned.size(), 2u) << n;
    ExpectSameEntry(scanned[0], p.entries[0], "0");
    ExpectSameEntry(scanned[1], p.entries[1], "1");
  }
}

// ------------------------------------------------------------ index files

IndexFile SampleIndex() {
  IndexFile f;
  std::vector<PackEntry> a;
  for (int i = 0; i < 3; i++) {
    PackEntry e;
    e.id = Sha256("blob" + std::to_string(i));
    e.type = static_cast<BlobType>(i);
    e.comp = i % 2 ? Compression::kZstd : Compression::kNone;
    e.offset = 56 + 1000 * i + (static_cast<uint64_t>(i) << 33);
    e.stored_len = 100 + i;
    e.raw_len = i % 2 ? MaxRawLen(e.type) : e.stored_len;  // raw: stored_len == raw_len
    a.push_back(e);
  }
  f.packs.emplace_back(Sha256("pack a"), a);
  f.packs.emplace_back(Sha256("pack b"), std::vector<PackEntry>{});
  PackEntry e;
  e.id = Sha256("blob x");
  e.offset = 56;
  e.stored_len = 1;
  e.raw_len = 1;
  f.packs.emplace_back(Sha256("pack c"), std::vector<PackEntry>{e});
  return f;
}

void ExpectSameIndex(const IndexFile& a, const IndexFile& b) {
  ASSERT_EQ(a.packs.size(), b.packs.size());
  for (size_t i = 0; i < a.packs.size(); i++) {
    EXPECT_EQ(a.packs[i].first, b.packs[i].first);
    ExpectSameEntries(a.packs[i].second, b.packs[i].second);
  }
}

TEST(IndexFileTest, RoundTrip) {
  IndexFile f = SampleIndex();
  std::string data = EncodeIndexFile(f);
  EXPECT_EQ(data.size(), 16u + 3 * 36 + 4 * kPackEntrySize + 32);
  EXPECT_EQ(data.substr(0, 8), "VMBINDX\n");
  EXPECT_EQ(data.substr(data.size() - 32),
            std::string(reinterpret_cast<const char*>(
                            Sha256(data.substr(0, data.size() - 32)).bytes.data()),
                        32));
  ExpectSameIndex(DecodeIndexFile(data, "x.idx"), f);
}

TEST(IndexFileTest, EmptyRoundTrip) {
  std::string data = EncodeIndexFile(IndexFile{});
  EXPECT_EQ(data.size(), 16u + 32);
  EXPECT_TRUE(DecodeIndexFile(data, "x.idx").packs.empty());
}

TEST(IndexFileTest, RoundTripOfRealPack) {
  TempDir dir;
  WrittenPack p = WritePack(dir / "p.pack");
  IndexFile f;
  f.packs.emplace_back(p.id, p.entries);
  ExpectSameIndex(DecodeIndexFile(EncodeIndexFile(f), "x.idx"), f);
}

TEST(IndexFileTest, EveryFlippedBitIsCorrupt) {
  std::string data = EncodeIndexFile(SampleIndex());
  for (size_t i = 0; i < data.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = data;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::string msg;
      EXPECT_EQ(KindOf([&] { DecodeIndexFile(bad, "dir/x.idx"); }, &msg), ErrorKind::kCorrupt)
          << "byte " << i << " bit " << bit;
      EXPECT_NE(msg.find("dir/x.idx"), std::string::npos) << msg;
    }
  }
}

TEST(IndexFileTest, EveryTruncationIsCorrupt) {
  std::string data = EncodeIndexFile(SampleIndex());
  for (size_t n = 0; n < data.size(); n++)
    EXPECT_EQ(KindOf([&] { DecodeIndexFile(data.substr(0, n), "x.idx"); }), ErrorKind::kCorrupt)
        << n;
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(data + "x", "x.idx"); }), ErrorKind::kCorrupt);
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(data + data, "x.idx"); }), ErrorKind::kCorrupt);
}

TEST(IndexFileTest, RejectsWrongVersionAndCountsWithGoodChecksum) {
  // Re-seal the body with a correct checksum: the structure checks must hold.
  std::string good = EncodeIndexFile(SampleIndex());
  auto reseal = [](std::string body) {
    Hash h = Sha256(body);
    return body + std::string(reinterpret_cast<const char*>(h.bytes.data()), 32);
  };
  std::string body = good.substr(0, good.size() - 32);
  ASSERT_NO_THROW(DecodeIndexFile(reseal(body), "x"));

  std::string v2 = body;
  v2[8] = 2;
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(v2), "x"); }), ErrorKind::kCorrupt);

  std::string more_packs = body;
  more_packs[12] = 4;  // 4 packs declared, 3 present
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(more_packs), "x"); }), ErrorKind::kCorrupt);

  std::string fewer_packs = body;
  fewer_packs[12] = 2;  // trailing bytes
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(fewer_packs), "x"); }), ErrorKind::kCorrupt);

  std::string many_entries = body;
  std::memset(many_entries.data() + 16 + 32, 0xff, 4);  // first pack: 2^32-1 entries
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(many_entries), "x"); }), ErrorKind::kCorrupt);
}

TEST(IndexFileTest, RejectsForgedLengthsWithGoodChecksum) {
  // The 396-byte index of issue 11: one entry claiming a 4 GiB blob.
  auto one_entry = [](const PackEntry& e) {
    IndexFile f;
    f.packs.emplace_back(Sha256("pack"), std::vector<PackEntry>{e});
    return EncodeIndexFile(f);
  };
  PackEntry forged = EntryWithLengths(BlobType::kData, Compression::kZstd, 0xffffffffu, 0xffffffffu);
  std::string msg;
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(one_entry(forged), "index/forged.idx"); }, &msg), ErrorKind::kCorrupt);
  EXPECT_NE(msg.find("index/forged.idx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4294967295"), std::string::npos) << msg;
  for (BlobType t : {BlobType::kData, BlobType::kList, BlobType::kTree}) {
    const uint32_t max = MaxRawLen(t);
    EXPECT_NO_THROW(DecodeIndexFile(one_entry(EntryWithLengths(t, Compression::kNone, max, max)), "x"));
    EXPECT_EQ(KindOf([&] {
                DecodeIndexFile(one_entry(EntryWithLengths(t, Compression::kNone, max + 1, max + 1)), "x");
              }),
              ErrorKind::kCorrupt);
    EXPECT_EQ(KindOf([&] {
                DecodeIndexFile(one_entry(EntryWithLengths(t, Compression::kZstd, 100, max + 1)), "x");
              }),
              ErrorKind::kCorrupt);
  }
}

TEST(IndexFileTest, RejectsCountsTheFileCannotHold) {
  auto reseal = [](std::string body) {
    Hash h = Sha256(body);
    return body + std::string(reinterpret_cast<const char*>(h.bytes.data()), 32);
  };
  std::string good = EncodeIndexFile(SampleIndex());
  std::string body = good.substr(0, good.size() - 32);
  for (uint32_t npacks : {0xffffffffu, 0x10000000u}) {
    std::string forged = body;
    std::string n;
    PutU32(&n, npacks);
    std::memcpy(forged.data() + 12, n.data(), 4);
    std::string msg;
    EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(forged), "index/forged.idx"); }, &msg), ErrorKind::kCorrupt);
    EXPECT_NE(msg.find("index/forged.idx"), std::string::npos) << msg;
  }
  // The last pack's entry count one more than the bytes left hold.
  IndexFile one;
  one.packs.emplace_back(Sha256("p"), std::vector<PackEntry>{
                                          EntryWithLengths(BlobType::kData, Compression::kNone, 5, 5)});
  std::string b1 = EncodeIndexFile(one);
  b1.resize(b1.size() - 32);
  b1[16 + 32] = 2;
  EXPECT_EQ(KindOf([&] { DecodeIndexFile(reseal(b1), "x"); }), ErrorKind::kCorrupt);
}

TEST(IndexFileTest, VisitHandsOutAllPacksInOrderOrNothing) {
  IndexFile f = SampleIndex();
  std::string good = EncodeIndexFile(f);
  IndexFile seen;
  VisitIndexFile(good, "x.idx", nullptr, [&](const Hash& pack, const std::vector<PackEntry>& entries) {
    seen.packs.emplace_back(pack, entries);
  });
  ExpectSameIndex(seen, f);
  // The last pack's entry forged (checksum good): the packs before it are
  // not handed out either, so a file is used whole or not at all.
  f.packs.back().second[0] = EntryWithLengths(BlobType::kData, Compression::kZstd, 0xffffffffu, 0xffffffffu);
  size_t calls = 0;
  std::string msg;
  EXPECT_EQ(KindOf([&] {
              VisitIndexFile(EncodeIndexFile(f), "index/forged.idx", nullptr,
                             [&](const Hash&, const std::vector<PackEntry>&) { calls++; });
            },
                   &msg),
            ErrorKind::kCorrupt);
  EXPECT_EQ(calls, 0u);
  EXPECT_NE(msg.find("index/forged.idx"), std::string::npos) << msg;
}

TEST(BlobIndexTest, AddFindAndFirstWins) {
  BlobIndex idx;
  Hash pa = Sha256("a"), pb = Sha256("b");
  EXPECT_EQ(idx.AddPack(pa), 0u);
  EXPECT_EQ(idx.AddPack(pb), 1u);
  EXPECT_EQ(idx.AddPack(pa), 0u);
  EXPECT_EQ(idx.packs().size(), 2u);
  EXPECT_TRUE(idx.HasPack(pb));
  EXPECT_FALSE(idx.HasPack(Sha256("c")));
  PackEntry e;
  e.id = Sha256("blob");
  e.offset = 100;
  e.stored_len = 5;
  e.raw_len = 7;
  idx.AddEntries(1, {e});
  e.offset = 200;
  idx.AddEntries(0, {e});
  const BlobLocation* loc = idx.Find(e.id);
  ASSERT_NE(loc, nullptr);
  EXPECT_EQ(loc->pack, 1u);
  EXPECT_EQ(loc->offset, 100u);
  EXPECT_EQ(idx.size(), 1u);
  EXPECT_EQ(idx.Find(Sha256("nope")), nullptr);
  PackEntry back = loc->ToEntry(e.id);
  EXPECT_EQ(back.id, e.id);
  EXPECT_EQ(back.raw_len, 7u);
}

// The table grows as ids come (and after a Reserve), keeps the first
// location of an id, finds every id it holds and none it does not, and
// iterates each id once.
TEST(BlobTableTest, GrowsFindsAndIteratesEachIdOnce) {
  for (size_t reserve : {size_t{0}, size_t{5000}, size_t{20000}}) {
    BlobTable t;
    t.Reserve(reserve);
    const size_t n = 10000;
    for (size_t i = 0; i < n; i++) {
      BlobLocation loc;
      loc.offset = i;
      loc.type = static_cast<BlobType>(i % 3);
      auto [at, inserted] = t.Emplace(Sha256("id" + std::to_string(i)), loc);
      ASSERT_TRUE(inserted) << i;
      EXPECT_EQ(at->offset, i);
    }
    BlobLocation other;
    other.offset = 999999;
    auto [at, inserted] = t.Emplace(Sha256("id7"), other);
    EXPECT_FALSE(inserted);
    EXPECT_EQ(at->offset, 7u) << "the first location stays";
    EXPECT_EQ(t.size(), n);
    for (size_t i = 0; i < n; i++) {
      const BlobLocation* loc = t.Find(Sha256("id" + std::to_string(i)));
      ASSERT_NE(loc, nullptr) << i;
      EXPECT_EQ(loc->offset, i);
      EXPECT_EQ(loc->type, static_cast<BlobType>(i % 3));
      EXPECT_EQ(t.Find(Sha256("absent" + std::to_string(i))), nullptr) << i;
    }
    std::vector<bool> seen(n);
    size_t count = 0;
    for (const auto& [id, loc] : t) {
      ASSERT_LT(loc.offset, n);
      EXPECT_EQ(id, Sha256("id" + std::to_string(loc.offset)));
      EXPECT_FALSE(seen[loc.offset]) << loc.offset;
      seen[loc.offset] = true;
      count++;
    }
    EXPECT_EQ(count, n);
  }
  BlobTable empty;
  EXPECT_EQ(empty.Find(Sha256("x")), nullptr);
  EXPECT_FALSE(empty.begin() != empty.end());
}

// Ids from a planted index that differ only past their first 8 bytes
// (which the table before this one hashed alone): with one run of 200,000
// slots, loading them would take about 2*10^10 comparisons and every lookup
// would walk the run. The keyed hash keeps the runs short.
TEST(BlobTableTest, IdsChosenToCollideDoNotMakeInsertsQuadratic) {
  for (int variant : {0, 1}) {
    BlobTable t;
    const uint32_t n = 200000;
    Hash id;
    for (uint32_t i = 0; i < n; i++) {
      std::memcpy(id.bytes.data() + (variant == 0 ? 28 : 8), &i, 4);
      t.Emplace(id, BlobLocation{});
    }
    EXPECT_EQ(t.size(), n);
    // A lookup of an absent id walks its run of slots to an empty one: in
    // a clustered table, most of the table.
    size_t longest = 0, total = 0;
    for (uint32_t i = n; i < n + 1000; i++) {
      std::memcpy(id.bytes.data() + (variant == 0 ? 28 : 8), &i, 4);
      EXPECT_EQ(t.Find(id), nullptr);
      const size_t probes = t.Probes(id);
      longest = std::max(longest, probes);
      total += probes;
    }
    EXPECT_LT(longest, 200u) << "variant " << variant;
    EXPECT_LT(total, 1000u * 10) << "variant " << variant;
  }
}

}  // namespace
}  // namespace vmback
