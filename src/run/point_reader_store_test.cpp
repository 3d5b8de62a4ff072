// Tests of the store's PointReader (what `vmback mount` serves): Stat and
// List as `vmback ls` lists; every file read back in random chunks; holes;
// each block fetched once per read and the cache within its bound; a
// damaged block fails only the reads that touch it, naming the file and its
// bytes; hostile entries, lists and blocks are refused, never trusted.
#include "run/point_reader_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "run/backup.h"
#include "run/browse.h"
#include "store/manifest.h"
#include "store/pack.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::ExpectError;
using test::RandomBytes;
using test::ReadFile;
using test::WriteFile;

constexpr uint32_t kBlock = 64 * 1024;
constexpr uint64_t kBigCache = 64u << 20;

class StorePointReaderTest : public ::testing::Test {
 protected:
  void OpenStore(uint32_t block_size = kBlock) {
    Store::Init(Env::Default(), store_dir_, block_size);
    store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);
  }
  // A read-only session on the store as it is on disk now (nothing cached).
  void Reopen() {
    store_.reset();
    store_ = Store::Open(Env::Default(), store_dir_, LockMode::kShared, &log_);
  }
  // src/
  //   top.txt          4 bytes
  //   empty            0 bytes
  //   sub/             0750
  //     file           200000 random bytes (3 blocks and a short one)
  //     exact          exactly 2 blocks
  //     link -> file
  //     inner/deep.bin 70000 random bytes
  //   other/x
  void MakeTree() {
    for (const auto& [dir, mode] : std::vector<std::pair<std::string, mode_t>>{
             {"", 0755}, {"/sub", 0750}, {"/sub/inner", 0755}, {"/other", 0755}})
      ASSERT_EQ(::mkdir((src_ + dir).c_str(), mode), 0) << dir;
    WriteFile(src_ + "/top.txt", "top\n");
    WriteFile(src_ + "/empty", "");
    WriteFile(src_ + "/sub/file", RandomBytes(200000, 1));
    WriteFile(src_ + "/sub/exact", RandomBytes(2 * kBlock, 3));
    WriteFile(src_ + "/sub/inner/deep.bin", RandomBytes(70000, 2));
    WriteFile(src_ + "/other/x", "x\n");
    ASSERT_EQ(::symlink("file", (src_ + "/sub/link").c_str()), 0);
  }
  // A sparse image of size bytes at path with data written at each of
  // writes (offset, bytes).
  void MakeSparse(const std::string& path, uint64_t size,
                  const std::vector<std::pair<uint64_t, std::string>>& writes) {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    ::close(fd);
    for (const auto& [off, data] : writes) test::WriteFileAt(path, off, data);
  }
  std::string Backup(const std::vector<VolumeSpec>& volumes) {
    return RunBackup(store_.get(), volumes, {}, &log_).point;
  }
  std::unique_ptr<PointReader> Reader(const std::string& point, uint64_t cache = kBigCache) {
    return OpenStorePointReader(store_.get(), point, cache, &log_);
  }
  // The whole file read through f in chunks of random sizes (1 byte to
  // 3 blocks), each ReadAt checked to give what was asked up to the end.
  std::string ReadAllInChunks(ReadableFile* f, std::mt19937_64* rng) {
    std::string out;
    const uint64_t size = f->Size();
    std::uniform_int_distribution<size_t> len(1, 3 * kBlock);
    while (out.size() < size) {
      std::string buf(len(*rng), '\xAA');
      const size_t got = f->ReadAt(out.size(), buf.data(), buf.size());
      EXPECT_EQ(got, std::min<uint64_t>(buf.size(), size - out.size()));
      if (got == 0) break;
      out.append(buf.data(), got);
    }
    return out;
  }
  // The entries as JSON text, version included, for comparing.
  static std::string Describe(const std::vector<PointEntry>& entries) {
    std::string s;
    for (const auto& e : entries) s += PointEntryToJson(e).dump() + " version=" + e.version + "\n";
    return s;
  }
  static std::string Describe(const PointEntry& e) { return Describe(std::vector<PointEntry>{e}); }
  static std::string Slice(const std::string& s, uint64_t off, uint64_t n) {
    return off >= s.size() ? "" : s.substr(off, n);
  }

  test::TempDir tmp_;
  std::string store_dir_ = tmp_ / "store";
  std::string src_ = tmp_ / "src";
  Logger log_{LogLevel::kError, false};
  std::unique_ptr<Store> store_;
};

// Walks the reader's tree from path, checking each List against
// ListPointEntries and each entry's Stat against its listing.
void CheckListing(Store* store, PointReader* r, const std::string& point, const std::string& path) {
  const std::vector<PointEntry> got = r->List(path);
  const std::vector<PointEntry> want = ListPointEntries(store, point, path, false);
  ASSERT_EQ(got.size(), want.size()) << path;
  for (size_t i = 0; i < got.size(); i++) {
    EXPECT_EQ(PointEntryToJson(got[i]), PointEntryToJson(want[i])) << got[i].path;
    EXPECT_EQ(got[i].version, want[i].version) << got[i].path;
    const PointEntry st = r->Stat(got[i].path);
    EXPECT_EQ(PointEntryToJson(st), PointEntryToJson(want[i])) << got[i].path;
    EXPECT_EQ(st.version, want[i].version) << got[i].path;
    if (got[i].type == "dir") CheckListing(store, r, point, got[i].path);
  }
}

TEST_F(StorePointReaderTest, StatAndListMatchListPointEntries) {
  OpenStore();
  ASSERT_NO_FATAL_FAILURE(MakeTree());
  const std::string img = tmp_ / "disk.img";
  WriteFile(img, RandomBytes(100000, 7));
  const std::string p = Backup({{"VOL", src_}, {"disk", img}});
  auto r = Reader(p);
  EXPECT_EQ(r->name(), p);
  const PointEntry root = r->Stat("");
  EXPECT_EQ(root.type, "dir");
  EXPECT_EQ(root.path, "");
  ASSERT_NO_FATAL_FAILURE(CheckListing(store_.get(), r.get(), p, ""));
  // Paths as the user may write them find the same entry, named as listed.
  EXPECT_EQ(r->Stat("VOL//sub/").path, "VOL/sub");
  EXPECT_EQ(r->Stat("VOL/sub/link").target, "file");
  EXPECT_EQ(r->Stat("disk").type, "file");
  EXPECT_EQ(r->Stat("disk").size, 100000u);
  // A listing of a file (or link) is refused: List takes a directory.
  ExpectError(ErrorKind::kConfig, [&] { r->List("VOL/top.txt"); });
  ExpectError(ErrorKind::kConfig, [&] { r->List("disk"); });
}

TEST_F(StorePointReaderTest, TreesAreReadOnceForRepeatedLookups) {
  OpenStore();
  ASSERT_NO_FATAL_FAILURE(MakeTree());
  const std::string p = Backup({{"VOL", src_}});
  auto r = Reader(p);
  r->Stat("VOL/sub/inner/deep.bin");
  const uint64_t trees = StoreReaderStatsOf(*r).tree_gets;
  EXPECT_EQ(trees, 3u) << "VOL, sub and inner";
  for (int i = 0; i < 20; i++) {
    r->Stat("VOL/sub/inner/deep.bin");
    r->Stat("VOL/sub/inner");
    r->List("VOL/sub");
  }
  EXPECT_EQ(StoreReaderStatsOf(*r).tree_gets, trees);
}

TEST_F(StorePointReaderTest, EveryFileReadsBackInRandomChunksAndAtRandomOffsets) {
  OpenStore();
  ASSERT_NO_FATAL_FAILURE(MakeTree());
  const std::string img = tmp_ / "disk.img";
  WriteFile(img, RandomBytes(3 * kBlock + 5, 8));
  const std::string p = Backup({{"VOL", src_}, {"disk", img}});
  auto r = Reader(p, 256 * 1024);  // smaller than the files together: evictions too
  std::mt19937_64 rng(42);
  int files = 0;
  for (const PointEntry& e : ListPointEntries(store_.get(), p, "", true)) {
    if (e.type != "file") continue;
    files++;
    const std::string want = e.path == "disk" ? ReadFile(img) : ReadFile(src_ + e.path.substr(3));
    auto f = r->Open(e.path);
    EXPECT_EQ(f->Size(), want.size()) << e.path;
    EXPECT_EQ(f->path(), p + "/" + e.path);
    EXPECT_EQ(ReadAllInChunks(f.get(), &rng), want) << e.path;
    // Random ranges, some past the end; a read past the end gives nothing.
    std::uniform_int_distribution<uint64_t> off(0, want.size() + 10);
    std::uniform_int_distribution<size_t> len(0, 2 * kBlock + 3);
    for (int i = 0; i < 50; i++) {
      const uint64_t o = off(rng);
      std::string buf(len(rng), '\xAA');
      const size_t got = f->ReadAt(o, buf.data(), buf.size());
      ASSERT_EQ(std::string(buf.data(), got), Slice(want, o, buf.size())) << e.path << " at " << o;
    }
    char c;
    EXPECT_EQ(f->ReadAt(want.size(), &c, 1), 0u);
    EXPECT_EQ(f->ReadAt(UINT64_MAX, &c, 1), 0u);
  }
  EXPECT_EQ(files, 7);
}

TEST_F(StorePointReaderTest, HolesOfASparseImageAtBlockGranularity) {
  OpenStore();
  const std::string img = tmp_ / "sparse.img";
  const uint64_t size = (10u << 20) + 100;  // the last block is short and holds data
  const std::string a = RandomBytes(10000, 2), tail = RandomBytes(50, 3);
  ASSERT_NO_FATAL_FAILURE(MakeSparse(img, size,
                                     {{(5u << 20) + 1234, a},
                                      {(6u << 20), std::string(kBlock, '\0')},  // written zeros: a hole too
                                      {size - 50, tail}}));
  const std::string p = Backup({{"img", img}});
  auto r = Reader(p);
  auto f = r->Open("img");
  ASSERT_EQ(f->Size(), size);
  EXPECT_EQ(f->NextData(0), 5u << 20);
  EXPECT_EQ(f->NextData(5u << 20), 5u << 20);
  EXPECT_EQ(f->NextData((5u << 20) + 7), (5u << 20) + 7) << "inside data: the offset itself";
  EXPECT_EQ(f->NextHole(0), 0u);
  EXPECT_EQ(f->NextHole(5u << 20), (5u << 20) + kBlock);
  EXPECT_EQ(f->NextData((5u << 20) + kBlock), size / kBlock * kBlock) << "the short last block";
  EXPECT_EQ(f->NextHole(size - 1), size) << "no hole after the last data: the size";
  EXPECT_EQ(f->NextData(size), size);
  EXPECT_EQ(f->NextHole(size + 5), size) << "past the end: the size, as PosixEnv's";
  // What a SEEK_DATA/SEEK_HOLE walk gives reads back as the image.
  std::string want = ReadFile(img), got(size, '\0');
  for (uint64_t off = f->NextData(0); off < size; off = f->NextData(off)) {
    const uint64_t end = f->NextHole(off);
    ASSERT_GT(end, off);
    ASSERT_EQ(f->ReadAt(off, got.data() + off, end - off), end - off);
    off = end;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(StoreReaderStatsOf(*r).block_gets, 2u) << "only the two data blocks were read";
}

TEST_F(StorePointReaderTest, SequentialReadsGetEachBlockOnce) {
  OpenStore();
  const std::string img = tmp_ / "disk.img";
  const std::string data = RandomBytes(8u << 20, 9);  // 128 blocks of 64 KiB
  WriteFile(img, data);
  const std::string p = Backup({{"disk", img}});
  Reopen();
  auto r = Reader(p, 4u << 20);
  auto f = r->Open("disk");
  std::string buf(1u << 20, '\0');
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t off = 0; off < data.size(); off += buf.size()) {
    const uint64_t before = StoreReaderStatsOf(*r).block_gets;
    ASSERT_EQ(f->ReadAt(off, buf.data(), buf.size()), buf.size());
    ASSERT_EQ(StoreReaderStatsOf(*r).block_gets - before, 16u) << "a 1 MiB read spans 16 blocks";
    ASSERT_EQ(0, std::memcmp(buf.data(), data.data() + off, buf.size()));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const StoreReaderStats s = StoreReaderStatsOf(*r);
  EXPECT_EQ(s.block_gets, 128u);
  EXPECT_EQ(s.list_gets, 1u);
  std::printf("sequential 1 MiB reads, cold: %.1f MiB/s\n", 8 / secs);
  // Reads not aligned to blocks: a block two reads share is fetched once.
  auto r2 = Reader(p, 4u << 20);
  auto f2 = r2->Open("disk");
  for (uint64_t off = 0; off < data.size(); off += 100000) {
    const size_t got = f2->ReadAt(off, buf.data(), 100000);
    ASSERT_EQ(std::string(buf.data(), got), Slice(data, off, 100000));
  }
  EXPECT_EQ(StoreReaderStatsOf(*r2).block_gets, 128u);
  // The last 4 MiB are cached: read again, nothing is fetched.
  const uint64_t before = StoreReaderStatsOf(*r2).block_gets;
  f2->ReadAt(data.size() - (3u << 20), buf.data(), buf.size());
  EXPECT_EQ(StoreReaderStatsOf(*r2).block_gets, before);
}

TEST_F(StorePointReaderTest, CacheNeverExceedsItsBound) {
  OpenStore();
  ASSERT_NO_FATAL_FAILURE(MakeTree());
  const std::string img = tmp_ / "disk.img";
  WriteFile(img, RandomBytes(2u << 20, 10));
  const std::string p = Backup({{"VOL", src_}, {"disk", img}});
  for (const uint64_t bound : {uint64_t{0}, uint64_t{1000}, uint64_t{300 * 1024}, uint64_t{1u << 20}}) {
    auto r = Reader(p, bound);
    auto disk = r->Open("disk");
    auto file = r->Open("VOL/sub/file");
    const std::string want_disk = ReadFile(img), want_file = ReadFile(src_ + "/sub/file");
    std::mt19937_64 rng(bound);
    for (int i = 0; i < 200; i++) {
      ReadableFile* f = i % 3 ? disk.get() : file.get();
      const std::string& want = i % 3 ? want_disk : want_file;
      const uint64_t off = std::uniform_int_distribution<uint64_t>(0, want.size())(rng);
      std::string buf(std::uniform_int_distribution<size_t>(1, 200000)(rng), '\0');
      const size_t got = f->ReadAt(off, buf.data(), buf.size());
      ASSERT_EQ(std::string(buf.data(), got), Slice(want, off, buf.size()));
      if (i % 50 == 0) r->Stat("VOL/sub/inner/deep.bin");
      const StoreReaderStats s = StoreReaderStatsOf(*r);
      ASSERT_LE(s.cached_bytes, bound);
    }
    const StoreReaderStats s = StoreReaderStatsOf(*r);
    EXPECT_EQ(s.cache_limit, bound);
    EXPECT_LE(s.peak_cached_bytes, bound);
    if (bound >= (1u << 20)) {
      EXPECT_GT(s.cache_hits, 0u);
      EXPECT_GT(s.peak_cached_bytes, bound / 2) << "the cache is used";
    }
    if (bound == 0) {
      EXPECT_EQ(s.cached_items, 0u);
    }
  }
}

TEST_F(StorePointReaderTest, LatestIsTheNewestPointAndUnknownPointsAreNotFound) {
  OpenStore();
  ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
  WriteFile(src_ + "/f", "one");
  const std::string p1 = Backup({{"VOL", src_}});
  WriteFile(src_ + "/f", "two!");
  const std::string p2 = Backup({{"VOL", src_}});
  ASSERT_NE(p1, p2);
  auto r = Reader("latest");
  EXPECT_EQ(r->name(), p2);
  auto f = r->Open("VOL/f");
  char buf[8];
  ASSERT_EQ(f->ReadAt(0, buf, sizeof buf), 4u);
  EXPECT_EQ(std::string(buf, 4), "two!");
  EXPECT_EQ(Reader(p1)->Stat("VOL/f").size, 3u);
  const std::string msg = ExpectError(ErrorKind::kNotFound, [&] { Reader("2001-01-01T000000Z"); });
  EXPECT_NE(msg.find("2001-01-01T000000Z"), std::string::npos) << msg;
}

TEST_F(StorePointReaderTest, UnknownPathsAreNotFoundAndOnlyFilesOpen) {
  OpenStore();
  ASSERT_NO_FATAL_FAILURE(MakeTree());
  const std::string p = Backup({{"VOL", src_}});
  auto r = Reader(p);
  for (const std::string path : {"VOL/nope", "VOL/sub/nope", "VOL/top.txt/x", "NOVOL", "NOVOL/x"}) {
    std::string msg = ExpectError(ErrorKind::kNotFound, [&] { r->Stat(path); });
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    ExpectError(ErrorKind::kNotFound, [&] { r->List(path); });
    ExpectError(ErrorKind::kNotFound, [&] { r->Open(path); });
  }
  EXPECT_NE(ExpectError(ErrorKind::kNotFound, [&] { r->Stat("VOL/sub/nope"); }).find("VOL/sub/nope"),
            std::string::npos);
  for (const std::string path : {"VOL", "VOL/sub", "VOL/sub/link"}) {
    const std::string msg = ExpectError(ErrorKind::kConfig, [&] { r->Open(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  ExpectError(ErrorKind::kConfig, [&] { r->Open(""); });
}

// --- Damage ------------------------------------------------------------

TEST_F(StorePointReaderTest, ADamagedBlockFailsOnlyTheReadsThatTouchIt) {
  OpenStore();
  ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src_ + "/d").c_str(), 0755), 0);
  const std::string bad = RandomBytes(kBlock, 10);
  const std::string content = RandomBytes(kBlock, 11) + bad + RandomBytes(1000, 12);
  WriteFile(src_ + "/d/f", content);
  WriteFile(src_ + "/g", "unaffected");
  const std::string p = Backup({{"VOL", src_}});
  ASSERT_EQ(store_->copies().size(), 1u) << "one copy: nothing to repair from";
  std::string pack;
  PackEntry e;
  ASSERT_TRUE(test::FindBlobInStore(*store_, Sha256(bad), &pack, &e));
  test::XorFileByte(pack, e.offset + e.stored_len / 2, 0x10);
  Reopen();
  auto r = Reader(p);
  auto f = r->Open("VOL/d/f");
  std::string buf(3 * kBlock, '\0');
  const int warnings_before = log_.warnings();
  for (const auto& [off, n] : std::vector<std::pair<uint64_t, size_t>>{
           {0, 3 * kBlock}, {kBlock, 1}, {kBlock - 1, 2}, {2 * kBlock - 1, 1000}}) {
    const std::string msg = ExpectError(ErrorKind::kCorrupt, [&, off = off, n = n] { f->ReadAt(off, buf.data(), n); });
    EXPECT_NE(msg.find("VOL/d/f"), std::string::npos) << msg;
    EXPECT_NE(msg.find("point " + p), std::string::npos) << msg;
    EXPECT_NE(msg.find("bytes 65536..131072"), std::string::npos) << msg;
    EXPECT_NE(msg.find(pack), std::string::npos) << "why: the pack at fault: " << msg;
  }
  EXPECT_EQ(log_.warnings() - warnings_before, 1) << "the same range is logged once";
  const std::vector<std::string> problems = log_.problems();
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems.back().find("VOL/d/f in point " + p + ": bytes 65536..131072"), std::string::npos)
      << problems.back();
  // The blocks around it and the other files read well.
  ASSERT_EQ(f->ReadAt(0, buf.data(), kBlock), kBlock);
  EXPECT_EQ(buf.substr(0, kBlock), content.substr(0, kBlock));
  ASSERT_EQ(f->ReadAt(2 * kBlock, buf.data(), 3 * kBlock), 1000u);
  EXPECT_EQ(buf.substr(0, 1000), content.substr(2 * kBlock));
  auto g = r->Open("VOL/g");
  ASSERT_EQ(g->ReadAt(0, buf.data(), 100), 10u);
  EXPECT_EQ(buf.substr(0, 10), "unaffected");
  // Holes and data are still told: the damaged block is data.
  EXPECT_EQ(f->NextData(kBlock), kBlock);
  EXPECT_EQ(f->NextHole(0), content.size());
}

TEST_F(StorePointReaderTest, AMissingPackFailsTheFilesItHeld) {
  OpenStore();
  ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
  WriteFile(src_ + "/f", RandomBytes(100000, 13));
  Backup({{"VOL", src_}});
  // Two packs: f's blocks; f's list and the first point's tree.
  const std::vector<Hash> first = store_->ListPackFiles();
  ASSERT_EQ(first.size(), 2u);
  WriteFile(src_ + "/g", RandomBytes(100000, 14));
  const std::string p2 = Backup({{"VOL", src_}});
  for (const Hash& pack : first) Env::Default()->Remove(store_->PackPath(pack));
  Reopen();
  auto r = Reader(p2);
  auto g = r->Open("VOL/g");
  std::string buf(100000, '\0');
  ASSERT_EQ(g->ReadAt(0, buf.data(), buf.size()), buf.size());
  EXPECT_EQ(buf, ReadFile(src_ + "/g"));
  auto f = r->Open("VOL/f");  // the entry is whole: the lists are read on demand
  const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { f->ReadAt(5, buf.data(), 10); });
  EXPECT_NE(msg.find("VOL/f in point " + p2 + ": bytes 0..100000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("block list"), std::string::npos) << msg;
  EXPECT_EQ(f->NextData(0), 0u) << "what cannot be read is data";
}

// --- Hostile points ----------------------------------------------------

class HostileStoreTest : public StorePointReaderTest {
 protected:
  // A point "forged" whose one volume "img" is e (an image file), its blobs
  // put as they are.
  std::string Forge(const Entry& e) {
    store_->Flush();
    Manifest m = store_->ReadPoint(base_);
    m.name = PointName::Parse("forged" + std::to_string(++forged_), "test");
    m.volumes.clear();
    m.volumes.push_back(ManifestVolume{"img", "", e});
    store_->WriteManifest(m);
    return m.name.str();
  }
  // A file entry of size with the given list blob ids.
  static Entry FileEntry(uint64_t size, std::vector<Hash> lists) {
    Entry e;
    e.type = EntryType::kFile;
    e.mode = 0644;
    e.size = size;
    e.content = std::move(lists);
    return e;
  }
  void SetUp() override {
    OpenStore(4096);
    const std::string img = tmp_ / "base.img";
    WriteFile(img, RandomBytes(3 * 4096, 20));
    base_ = Backup({{"img", img}});
  }
  std::string base_;
  int forged_ = 0;
};

TEST_F(HostileStoreTest, ListsThatDoNotCoverTheSizeAreRefusedAtOpen) {
  const Hash list = store_->PutRaw(BlobType::kList, EncodeIdList({Hash{}, Hash{}}));
  for (const uint64_t size : {uint64_t{0}, uint64_t{2048} * 4096 + 1, uint64_t{1} << 62, UINT64_MAX}) {
    auto r = Reader(Forge(FileEntry(size, {list})));
    const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { r->Open("img"); });
    EXPECT_NE(msg.find("img in point forged"), std::string::npos) << msg;
    EXPECT_EQ(r->Stat("img").size, size) << "Stat shows what the entry says";
  }
  // Two lists for what one covers, none for one byte.
  ExpectError(ErrorKind::kCorrupt, [&] { Reader(Forge(FileEntry(4096, {list, list})))->Open("img"); });
  ExpectError(ErrorKind::kCorrupt, [&] { Reader(Forge(FileEntry(1, {})))->Open("img"); });
  // An empty file has none, and reads nothing.
  auto f = Reader(Forge(FileEntry(0, {})))->Open("img");
  char c;
  EXPECT_EQ(f->ReadAt(0, &c, 1), 0u);
  EXPECT_EQ(f->NextData(0), 0u);
}

TEST_F(HostileStoreTest, BadListsAndBlocksAreCorruptForTheirBytesOnly) {
  const std::string b1 = RandomBytes(4096, 30), short_block = RandomBytes(100, 31);
  const Hash d1 = store_->PutRaw(BlobType::kData, b1);
  const Hash dshort = store_->PutRaw(BlobType::kData, short_block);
  std::vector<Hash> full(kIdsPerList, Hash{});
  full[0] = d1;
  full[1] = dshort;  // a block shorter than its place
  const Hash good = store_->PutRaw(BlobType::kList, EncodeIdList(full));
  const Hash too_few = store_->PutRaw(BlobType::kList, EncodeIdList({d1, d1}));
  const Hash not_ids = store_->PutRaw(BlobType::kList, "not a multiple of 32 bytes");
  const Hash as_data = d1;  // a data blob named as a list: the wrong type
  const uint64_t list_bytes = uint64_t{kIdsPerList} * 4096;
  for (const Hash& bad : {too_few, not_ids, as_data}) {
    // Three lists: a good one, a bad one, and a last one of 3 blocks.
    auto r = Reader(Forge(FileEntry(2 * list_bytes + 3 * 4096, {good, bad, good})));
    auto f = r->Open("img");
    std::string buf(8192, '\0');
    ASSERT_EQ(f->ReadAt(0, buf.data(), 4096), 4096u);
    EXPECT_EQ(buf.substr(0, 4096), b1);
    const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { f->ReadAt(list_bytes + 5, buf.data(), 10); });
    EXPECT_NE(msg.find("bytes " + std::to_string(list_bytes) + ".." + std::to_string(2 * list_bytes)),
              std::string::npos)
        << msg;
    // The last list is good but holds kIdsPerList ids, not 3.
    const std::string last = ExpectError(ErrorKind::kCorrupt, [&] { f->ReadAt(2 * list_bytes, buf.data(), 10); });
    EXPECT_NE(last.find("ids, not 3"), std::string::npos) << last;
    // The short block: its 4096 bytes are corrupt, the block before reads.
    const std::string s = ExpectError(ErrorKind::kCorrupt, [&] { f->ReadAt(4000, buf.data(), 200); });
    EXPECT_NE(s.find("bytes 4096..8192"), std::string::npos) << s;
    EXPECT_NE(s.find("holds 100 bytes"), std::string::npos) << s;
    ASSERT_EQ(f->ReadAt(8192, buf.data(), 4096), 4096u);
    EXPECT_EQ(buf.substr(0, 4096), std::string(4096, '\0'));
  }
  // A list the store lacks is damage, not a wrong path.
  Hash missing;
  missing.bytes[0] = 1;
  auto r = Reader(Forge(FileEntry(4096, {missing})));
  auto f = r->Open("img");
  char c;
  const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { f->ReadAt(0, &c, 1); });
  EXPECT_NE(msg.find("bytes 0..4096"), std::string::npos) << msg;
}

TEST_F(HostileStoreTest, ADamagedTreeIsCorruptNamingThePath) {
  const Hash garbage = store_->PutRaw(BlobType::kTree, "not a tree");
  Hash missing;
  missing.bytes[0] = 1;
  for (const Hash& subtree : {garbage, missing}) {
    Entry dir;
    dir.type = EntryType::kDir;
    dir.mode = 0755;
    dir.subtree = subtree;
    const std::string p = Forge(dir);
    auto r = Reader(p);
    EXPECT_EQ(r->Stat("img").type, "dir") << "the volume's own entry is in the manifest";
    for (const std::string path : {"img/x", "img/x/y"}) {
      const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { r->Stat(path); });
      EXPECT_NE(msg.find("tree of " + path + " in point " + p), std::string::npos) << msg;
    }
    const std::string msg = ExpectError(ErrorKind::kCorrupt, [&] { r->List("img"); });
    EXPECT_NE(msg.find("tree of img in point " + p), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace vmback
