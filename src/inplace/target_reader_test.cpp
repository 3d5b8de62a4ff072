// A point of a plain directory target read in place (target_reader.h), as
// `vmback mount` reads it. ZFS and btrfs points are read through the same
// code over their views; the CLI's integration tests cover those.
#include "inplace/target_reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <iostream>
#include <random>

#include <gtest/gtest.h>

#include "destination/dump.h"
#include "helpers/hook_env.h"
#include "inplace/checked_read.h"
#include "helpers/test_util.h"
#include "inplace/blockmap.h"
#include "inplace/target_ops.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

constexpr uint32_t kBs = 4096;

// An Env whose files of the mirror (not vmback's own: blockmaps, the
// point's description) count their reads,
// and may fail one: a read touching byte fail_at throws EIO.
class CountingEnv final : public EnvWrapper {
 public:
  explicit CountingEnv(std::string mirror) : EnvWrapper(Env::Default()), mirror_(std::move(mirror)) {}

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override {
    auto f = EnvWrapper::OpenRead(path);
    if (path.rfind(mirror_ + "/", 0) != 0 || path.find("/.vmback-") != std::string::npos) return f;
    return std::make_unique<File>(std::move(f), this);
  }

  int reads = 0;
  uint64_t fail_at = UINT64_MAX;

 private:
  class File final : public ReadableFileWrapper {
   public:
    File(std::unique_ptr<ReadableFile> f, CountingEnv* env) : ReadableFileWrapper(std::move(f)), env_(env) {}
    size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
      env_->reads++;
      if (env_->fail_at >= offset && env_->fail_at < offset + n)
        ThrowIo("read " + path() + " at offset " + std::to_string(offset), EIO);
      return ReadableFileWrapper::ReadAt(offset, buf, n);
    }

   private:
    CountingEnv* env_;
  };
  std::string mirror_;
};

class TargetReaderTest : public ::testing::Test {
 protected:
  TargetReaderTest() : log_(LogLevel::kWarning, false) {
    ::mkdir((dir_ / "target").c_str(), 0755);
    ::mkdir((dir_ / "src").c_str(), 0755);
    ::mkdir((dir_ / "src/tree").c_str(), 0755);
    config_.type = TargetType::kDir;
    config_.path = dir_ / "target";
    config_.block_size = kBs;
  }

  // A sparse 8 MiB image (data at 1 MiB and 6 MiB, a data tail) and a tree:
  // files of odd sizes, an empty one, a subdirectory, a symlink.
  void BackUp() {
    test::WriteFile(S("disk.img"), "");
    test::WriteFileAt(S("disk.img"), 1 << 20, test::RandomBytes(5000, 1));
    test::WriteFileAt(S("disk.img"), 6 << 20, test::RandomBytes(3 * kBs, 2));
    test::WriteFileAt(S("disk.img"), (8 << 20) - 100, test::RandomBytes(100, 3));
    test::WriteFile(S("tree/a"), test::RandomBytes(3 * kBs + 10, 4));
    test::WriteFile(S("tree/big"), test::RandomBytes(200 * kBs + 1, 5));
    test::WriteFile(S("tree/empty"), "");
    ::mkdir(S("tree/sub").c_str(), 0755);
    test::WriteFile(S("tree/sub/f"), "deep");
    ASSERT_EQ(::symlink("a", S("tree/link").c_str()), 0);
    target_ = OpenInplaceTarget(Env::Default(), config_, &log_);
    BackupToTarget(target_.get(), Env::Default(), {{"disk", S("disk.img"), true}, {"tree", S("tree"), true}},
                   BackupOptions{}, &log_);
  }

  std::string S(const std::string& rel) { return dir_ / ("src/" + rel); }
  std::string M(const std::string& rel) { return dir_ / ("target/" + rel); }

  std::unique_ptr<PointReader> Reader(uint64_t cache = 1 << 20, Env* env = Env::Default()) {
    return OpenTargetPointReader(target_.get(), env, "latest", cache, &log_);
  }

  size_t CountProblems(const std::string& word) {
    size_t n = 0;
    for (const auto& p : log_.problems()) n += p.find(word) != std::string::npos;
    return n;
  }

  test::TempDir dir_;
  TargetConfig config_;
  Logger log_;
  std::unique_ptr<InplaceTarget> target_;
};

std::string ReadRange(ReadableFile* f, uint64_t offset, size_t n) {
  std::string buf(n, '?');
  buf.resize(f->ReadAt(offset, buf.data(), n));
  return buf;
}

// What fn throws (kind and message); fails the test when it throws nothing.
Error Thrown(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "nothing thrown";
  return Error(ErrorKind::kOther, "");
}

TEST_F(TargetReaderTest, StatAndListShowWhatLsShows) {
  BackUp();
  auto r = Reader();
  EXPECT_EQ(r->name(), "current");
  EXPECT_EQ(r->Stat("").type, "dir");
  EXPECT_EQ(r->Stat("").path, "");

  const std::vector<PointEntry> all = ListTargetEntries(target_.get(), Env::Default(), "latest", "", true);
  ASSERT_EQ(all.size(), 8u);  // disk, tree, tree/{a,big,empty,link,sub,sub/f}
  std::vector<std::string> dirs = {""};
  for (const auto& e : all) {
    EXPECT_EQ(PointEntryToJson(r->Stat(e.path)), PointEntryToJson(e)) << e.path;
    if (e.type == "dir") dirs.push_back(e.path);
  }
  EXPECT_EQ(r->Stat("tree/link").target, "a");
  for (const auto& d : dirs) {
    std::vector<PointEntry> want = ListTargetEntries(target_.get(), Env::Default(), "latest", d, false);
    std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    const std::vector<PointEntry> got = r->List(d);
    ASSERT_EQ(got.size(), want.size()) << d;
    for (size_t i = 0; i < got.size(); i++) EXPECT_EQ(PointEntryToJson(got[i]), PointEntryToJson(want[i])) << d;
  }
  std::vector<std::string> names;
  for (const auto& e : r->List("tree")) names.push_back(e.path);
  EXPECT_EQ(names, (std::vector<std::string>{"tree/a", "tree/big", "tree/empty", "tree/link", "tree/sub"}));

  // vmback's own files, and paths out of a volume, are not there.
  ASSERT_TRUE(Env::Default()->Exists(M("tree/.vmback-blockmaps")));
  ASSERT_TRUE(Env::Default()->Exists(M(".vmback-blockmaps")));
  for (const std::string p : {".vmback-blockmaps", ".vmback-point.json", ".vmback-target", "tree/.vmback-blockmaps",
                               "tree/.vmback-blockmaps/lock", "tree/../disk", "tree/./a", "tree//a", "tree/sub/../a",
                               "nope", "tree/nope", "/tree", "tree/a/x"}) {
    Error e = Thrown([&] { r->Stat(p); });
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound) << p << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("point current"), std::string::npos) << e.what();
    EXPECT_EQ(Thrown([&] { r->Open(p); }).kind(), ErrorKind::kNotFound) << p;
    EXPECT_EQ(Thrown([&] { r->List(p); }).kind(), ErrorKind::kNotFound) << p;
  }
  EXPECT_EQ(Thrown([&] { r->List("disk"); }).kind(), ErrorKind::kConfig);
  EXPECT_EQ(Thrown([&] { r->List("tree/a"); }).kind(), ErrorKind::kConfig);
  // Only regular files open.
  for (const std::string p : {"tree", "tree/sub", "tree/link"})
    EXPECT_EQ(Thrown([&] { r->Open(p); }).kind(), ErrorKind::kConfig) << p;
}

TEST_F(TargetReaderTest, EveryFileReadsAsItsSourceAtAnyOffset) {
  BackUp();
  auto r = Reader(5 * (kBs + 64));  // a small cache: hits and evictions both
  std::mt19937_64 rng(7);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"disk", "disk.img"}, {"tree/a", "tree/a"}, {"tree/big", "tree/big"},
      {"tree/empty", "tree/empty"}, {"tree/sub/f", "tree/sub/f"}};
  for (const auto& [path, src] : files) {
    const std::string want = test::ReadFile(S(src));
    auto f = r->Open(path);
    EXPECT_EQ(f->path(), path);
    ASSERT_EQ(f->Size(), want.size()) << path;
    EXPECT_EQ(ReadRange(f.get(), 0, want.size() + 10), want) << path;
    EXPECT_EQ(ReadRange(f.get(), want.size(), 10), "") << path;
    EXPECT_EQ(ReadRange(f.get(), want.size() + 12345, 10), "") << path;
    if (want.empty()) continue;
    for (int k = 0; k < 300; k++) {
      const uint64_t off = rng() % want.size();
      const size_t n = static_cast<size_t>(rng() % (k % 10 == 0 ? 5 * kBs : 300) + 1);
      ASSERT_EQ(ReadRange(f.get(), off, n), want.substr(off, n)) << path << " at " << off << " +" << n;
    }
  }
  // Files outlive other calls; two open at once share the cache.
  auto a = r->Open("tree/a");
  auto b = r->Open("tree/big");
  EXPECT_EQ(ReadRange(a.get(), 100, 5000), test::ReadFile(S("tree/a")).substr(100, 5000));
  EXPECT_EQ(ReadRange(b.get(), 100, 5000), test::ReadFile(S("tree/big")).substr(100, 5000));
  EXPECT_EQ(ReadRange(a.get(), 100, 5000), test::ReadFile(S("tree/a")).substr(100, 5000));
  EXPECT_EQ(log_.warnings(), 0);
}

TEST_F(TargetReaderTest, HolesAreTheFileSystemsAndReadAsZeros) {
  BackUp();
  auto mirror = Env::Default()->OpenRead(M("disk"));
  const uint64_t first_data = mirror->NextData(0);
  ASSERT_GT(first_data, 0u) << "the mirror's image is not sparse here";
  auto r = Reader();  // a file may not outlive its reader (point_reader.h)
  auto f = r->Open("disk");
  EXPECT_EQ(f->NextData(0), first_data);
  EXPECT_LE(f->NextData(0), uint64_t{1} << 20);
  EXPECT_EQ(f->NextHole(0), 0u);
  const uint64_t hole = f->NextHole(1 << 20);
  EXPECT_GT(hole, (1u << 20) + 4999);
  EXPECT_EQ(hole, mirror->NextHole(1 << 20));
  EXPECT_LE(f->NextData(hole), uint64_t{6} << 20);
  EXPECT_EQ(f->NextData(f->Size()), f->Size());
  EXPECT_EQ(f->NextHole((8 << 20) - 50), f->Size());
  EXPECT_EQ(ReadRange(f.get(), 12345, 3 * kBs), std::string(3 * kBs, '\0'));
}

TEST_F(TargetReaderTest, ADamagedBlockFailsOnlyTheReadsThatTouchIt) {
  BackUp();
  // The point's copies change behind vmback's back: block 3 of big (bytes
  // 12288..16384), block 1 of the image's data at 1 MiB (block 257).
  test::XorFileByte(M("tree/big"), 3 * kBs + 100, 0x01);
  test::XorFileByte(M("disk"), (1 << 20) + kBs + 7, 0x80);
  auto r = Reader();
  const std::string big = test::ReadFile(S("tree/big"));
  auto f = r->Open("tree/big");
  for (int round = 0; round < 3; round++) {  // the same each time: nothing bad is cached
    for (auto [off, n] : std::vector<std::pair<uint64_t, size_t>>{{3 * kBs, 1}, {3 * kBs + 100, 1},
                                                                  {4 * kBs - 1, 1}, {0, 10 * kBs}, {4 * kBs - 1, 2}}) {
      Error e = Thrown([&, off = off, n = n] { ReadRange(f.get(), off, n); });
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << off;
      EXPECT_NE(std::string(e.what()).find("tree/big in point current: bytes 12288..16384"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(ReadRange(f.get(), 0, 3 * kBs), big.substr(0, 3 * kBs));
    EXPECT_EQ(ReadRange(f.get(), 4 * kBs, 5 * kBs), big.substr(4 * kBs, 5 * kBs));
    EXPECT_EQ(ReadRange(f.get(), 3 * kBs - 10, 10), big.substr(3 * kBs - 10, 10));
  }
  EXPECT_EQ(CountProblems("tree/big in point current: bytes 12288..16384"), 1u) << "one warning per bad block";

  auto d = r->Open("disk");
  Error e = Thrown([&] { ReadRange(d.get(), (1 << 20) + kBs + 7, 1); });
  EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
  const std::string range = std::to_string((1 << 20) + kBs) + ".." + std::to_string((1 << 20) + 2 * kBs);
  EXPECT_NE(std::string(e.what()).find("disk in point current: bytes " + range), std::string::npos) << e.what();
  const std::string image = test::ReadFile(S("disk.img"));
  EXPECT_EQ(ReadRange(d.get(), 1 << 20, kBs), image.substr(1 << 20, kBs));
  EXPECT_EQ(ReadRange(d.get(), 6 << 20, 3 * kBs), image.substr(6 << 20, 3 * kBs));
}

TEST_F(TargetReaderTest, AnUnreadableBlockIsCorruptAndTheOthersStayReadable) {
  BackUp();
  CountingEnv env(dir_ / "target");
  auto r = Reader(1 << 20, &env);
  auto f = r->Open("tree/big");
  env.fail_at = 7 * kBs + 5;
  Error e = Thrown([&] { ReadRange(f.get(), 7 * kBs + 4000, 200); });
  EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
  EXPECT_NE(std::string(e.what()).find("tree/big in point current: bytes 28672..32768 (block 7) cannot be read"),
            std::string::npos)
      << e.what();
  const std::string big = test::ReadFile(S("tree/big"));
  EXPECT_EQ(ReadRange(f.get(), 6 * kBs, kBs), big.substr(6 * kBs, kBs));
  EXPECT_EQ(ReadRange(f.get(), 8 * kBs, kBs), big.substr(8 * kBs, kBs));
  env.fail_at = UINT64_MAX;
  EXPECT_EQ(ReadRange(f.get(), 7 * kBs, kBs), big.substr(7 * kBs, kBs));
}

TEST_F(TargetReaderTest, TheCacheIsBoundedAndSharedByTheFiles) {
  BackUp();
  CountingEnv env(dir_ / "target");
  {
    auto r = Reader(2 * (kBs + 64), &env);  // two blocks
    auto f = r->Open("tree/big");
    char c;
    auto block = [&](ReadableFile* file, uint64_t i) { ASSERT_EQ(file->ReadAt(i * kBs + 1, &c, 1), 1u); };
    block(f.get(), 0);
    block(f.get(), 1);
    block(f.get(), 0);
    EXPECT_EQ(env.reads, 2);  // 0 and 1 kept
    block(f.get(), 2);        // 1, the least recently used, goes
    block(f.get(), 0);
    EXPECT_EQ(env.reads, 3);
    block(f.get(), 1);
    EXPECT_EQ(env.reads, 4);
    // A second file's blocks count against the same budget.
    auto g = r->Open("tree/a");
    block(g.get(), 0);
    block(g.get(), 1);
    EXPECT_EQ(env.reads, 6);
    block(f.get(), 1);
    block(f.get(), 0);
    EXPECT_EQ(env.reads, 8);
  }
  env.reads = 0;
  auto r = Reader(0, &env);  // no cache at all: every read goes to the disk
  auto f = r->Open("tree/big");
  for (int k = 0; k < 3; k++) EXPECT_EQ(ReadRange(f.get(), 0, 2 * kBs).size(), 2 * kBs);
  EXPECT_EQ(env.reads, 6);
}

TEST_F(TargetReaderTest, SymlinksInThePointAreNeverFollowed) {
  BackUp();
  const std::string secret = dir_ / "secret";
  test::WriteFile(secret, "secret");
  ::mkdir((dir_ / "outside").c_str(), 0755);
  test::WriteFile(dir_ / "outside/f", "outside");
  // Where a file was, where a directory was.
  ASSERT_EQ(::unlink(M("tree/a").c_str()), 0);
  ASSERT_EQ(::symlink(secret.c_str(), M("tree/a").c_str()), 0);
  ASSERT_EQ(::rename(M("tree/sub").c_str(), M("tree/sub.moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "outside").c_str(), M("tree/sub").c_str()), 0);
  auto r = Reader();
  EXPECT_EQ(r->Stat("tree/a").type, "symlink");
  EXPECT_EQ(Thrown([&] { r->Open("tree/a"); }).kind(), ErrorKind::kConfig);
  EXPECT_EQ(r->Stat("tree/sub").type, "symlink");
  for (const std::string p : {"tree/sub/f"}) {
    EXPECT_EQ(Thrown([&] { r->Stat(p); }).kind(), ErrorKind::kNotFound);
    EXPECT_EQ(Thrown([&] { r->Open(p); }).kind(), ErrorKind::kNotFound);
  }
  EXPECT_EQ(Thrown([&] { r->List("tree/sub"); }).kind(), ErrorKind::kConfig);

  // A file swapped for a symlink between its lstat and its open.
  test::HookEnv env;
  env.before_read = [&](const std::string& p) {
    if (p != M("tree/big")) return;
    ASSERT_EQ(::rename(M("tree/big").c_str(), M("tree/big.moved").c_str()), 0);
    ASSERT_EQ(::symlink(secret.c_str(), M("tree/big").c_str()), 0);
  };
  auto r2 = OpenTargetPointReader(target_.get(), &env, "current", 1 << 20, &log_);
  Error e = Thrown([&] { r2->Open("tree/big"); });
  EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();

  // A volume that is a symlink: nothing below it is reached.
  ASSERT_EQ(::rename(M("tree").c_str(), M("tree.moved").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "outside").c_str(), M("tree").c_str()), 0);
  auto r3 = Reader();
  EXPECT_EQ(r3->Stat("tree").type, "symlink");
  EXPECT_EQ(Thrown([&] { r3->Stat("tree/f"); }).kind(), ErrorKind::kNotFound);
  EXPECT_EQ(Thrown([&] { r3->Open("tree/f"); }).kind(), ErrorKind::kNotFound);
  EXPECT_EQ(Thrown([&] { r3->List("tree"); }).kind(), ErrorKind::kConfig);
  // ls, dump and restore make the same check.
  EXPECT_THROW(ListTargetEntries(target_.get(), Env::Default(), "current", "tree/f", false), Error);
  StreamFile out(std::cout, "standard output");
  EXPECT_THROW(DumpFromTarget(target_.get(), Env::Default(), "current", "tree/f", &out, &log_), Error);
  EXPECT_EQ(out.written(), 0u);
  EXPECT_THROW(RestoreFromTarget(target_.get(), Env::Default(), "current", "tree/f", dir_ / "restored",
                                 Overwrite::kRefuse, &log_),
               Error);
  EXPECT_FALSE(Env::Default()->Exists(dir_ / "restored"));
}

// The bytes of a sound map of m's file, entries as given.
std::string EncodeMap(const Blockmap& m, const std::string& entries) {
  const std::string hdr = EncodeBlockmapHeader(m);
  Sha256Stream sum;
  sum.Update(entries.data(), entries.size());
  sum.Update(hdr.data(), hdr.size());
  const Hash t = sum.Finish();
  return hdr + entries + std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
}

TEST_F(TargetReaderTest, HostileBlockmapsAreCorruptNotObeyed) {
  BackUp();
  const std::string map_path = BlockmapPath(M("tree"), "a");
  const std::string good = test::ReadFile(map_path);
  const Blockmap sound = ReadBlockmap(Env::Default(), map_path);
  std::string entries;
  for (const Hash& h : sound.blocks) entries.append(reinterpret_cast<const char*>(h.bytes.data()), h.bytes.size());
  ASSERT_EQ(EncodeMap(sound, entries), good);

  auto expect_corrupt = [&](const std::string& map, const std::string& why) {
    test::WriteFile(map_path, map);
    Error e = Thrown([&] { Reader()->Open("tree/a"); });
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << why << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tree/a in point current"), std::string::npos) << e.what();
  };
  expect_corrupt(good.substr(0, good.size() - 1), "does not fit its file size");
  expect_corrupt(good.substr(0, 70), "is truncated");
  std::string flipped = good;
  flipped[100] ^= 1;
  expect_corrupt(flipped, "wrong checksum");
  Blockmap m = sound;
  m.block_size = 1u << 30;  // sound, but a block would be a GiB
  expect_corrupt(EncodeMap(m, entries.substr(0, 32)), "block size out of range");
  m = sound;
  m.path = "big";
  expect_corrupt(EncodeMap(m, entries), "describes another file");
  m = sound;
  m.file_size += kBs;
  expect_corrupt(EncodeMap(m, entries + std::string(32, 'x')), "differs from its blockmap's");
  m = sound;
  m.file_size = uint64_t{1} << 62;  // entries it does not have
  expect_corrupt(EncodeMap(m, entries), "does not fit its file size");

  // The blockmap directory swapped for a symlink to forged maps.
  test::WriteFile(map_path, good);
  ASSERT_EQ(::rename(M("tree/.vmback-blockmaps").c_str(), (dir_ / "maps").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "maps").c_str(), M("tree/.vmback-blockmaps").c_str()), 0);
  Error e = Thrown([&] { Reader()->Open("tree/a"); });
  EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
  EXPECT_NE(std::string(e.what()).find("not a directory"), std::string::npos) << e.what();
}

TEST_F(TargetReaderTest, AFileWithoutABlockmapIsReadUncheckedWithOneWarning) {
  BackUp();
  ASSERT_EQ(::unlink(BlockmapPath(M("tree"), "a").c_str()), 0);
  auto r = Reader();
  const std::string want = test::ReadFile(S("tree/a"));
  for (int k = 0; k < 3; k++) {
    auto f = r->Open("tree/a");
    EXPECT_EQ(ReadRange(f.get(), 0, want.size()), want);
    EXPECT_EQ(ReadRange(f.get(), 5000, 100), want.substr(5000, 100));
  }
  EXPECT_EQ(CountProblems("no blockmap"), 1u);
  EXPECT_EQ(CountProblems("tree/a in point current"), 1u);
  EXPECT_EQ(log_.warnings(), 1);
}

}  // namespace
}  // namespace vmback
