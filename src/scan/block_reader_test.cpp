// Tests for scan/block_reader.h: Prefetch asks the kernel for the data runs
// of the blocks named, holes left out, and changes nothing Read returns; and
// for the advice of FileScanner::ScanLater (scan/file_scanner.h).
#include "scan/block_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "helpers/test_util.h"
#include "os/env.h"
#include "scan/file_scanner.h"
#include "store/store.h"
#include "util/log.h"
#include "util/rate_pacer.h"
#include "util/thread_pool.h"

namespace vmback {
namespace {

using test::RandomBytes;
using test::TempDir;
using test::WriteFileAt;

// Records the ranges WillNeed is asked for, and counts the seeks for data
// and holes and the calls that turn read-ahead off.
class RecordingFile final : public ReadableFileWrapper {
 public:
  explicit RecordingFile(std::unique_ptr<ReadableFile> f) : ReadableFileWrapper(std::move(f)) {}
  void WillNeed(uint64_t offset, uint64_t len) override {
    asked.emplace_back(offset, len);
    ReadableFileWrapper::WillNeed(offset, len);
  }
  uint64_t NextData(uint64_t offset) override {
    seeks++;
    return ReadableFileWrapper::NextData(offset);
  }
  uint64_t NextHole(uint64_t offset) override {
    seeks++;
    return ReadableFileWrapper::NextHole(offset);
  }
  void DisableReadahead() override {
    readahead_off++;
    ReadableFileWrapper::DisableReadahead();
  }
  std::vector<std::pair<uint64_t, uint64_t>> asked;
  int seeks = 0, readahead_off = 0;
};

constexpr uint64_t kBs = 4096;

// A sparse file of 16 blocks and 100 bytes: data in blocks 2-4, 9 and the
// short last block (16), holes elsewhere. Returns its content.
std::string MakeSparseFile(const std::string& path) {
  std::string content(16 * kBs + 100, '\0');
  auto put = [&](uint64_t off, const std::string& data) {
    WriteFileAt(path, off, data);
    content.replace(off, data.size(), data);
  };
  put(2 * kBs, RandomBytes(3 * kBs, 1));
  put(9 * kBs, RandomBytes(kBs, 2));
  put(16 * kBs, RandomBytes(100, 3));
  std::filesystem::resize_file(path, content.size());
  return content;
}

bool HolesAreHoles(const std::string& path) {
  // A file system without holes (all data) makes the hole cases moot.
  return test::AllocatedBytes(path) < 10 * kBs;
}

TEST(BlockReaderTest, PrefetchAsksForTheDataRunsOnly) {
  TempDir tmp;
  const std::string path = tmp / "sparse.img";
  const std::string content = MakeSparseFile(path);
  if (!HolesAreHoles(path)) GTEST_SKIP() << "the temp file system keeps no holes";
  auto file = std::make_unique<RecordingFile>(Env::Default()->OpenRead(path));
  RecordingFile* rec = file.get();
  BlockReader reader(rec, kBs, content.size(), {});

  reader.Prefetch(0, 8);  // blocks 0-7: the run 2-4
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(rec->asked, (Ranges{{2 * kBs, 3 * kBs}}));
  rec->asked.clear();
  reader.Prefetch(8, 100);  // past the end: block 9 and the short last block
  EXPECT_EQ(rec->asked, (Ranges{{9 * kBs, kBs}, {16 * kBs, 100}}));
  rec->asked.clear();
  reader.Prefetch(17, 4);  // nothing left
  EXPECT_TRUE(rec->asked.empty());

  // Read gives the same bytes, holes marked, after all that.
  std::string buf(17 * kBs, 'x');
  std::vector<uint8_t> hole;
  EXPECT_EQ(reader.Read(0, 17, buf.data(), &hole, /*zero_fill=*/true), 4 * kBs + 100);
  EXPECT_EQ(buf.substr(0, content.size()), content);
  EXPECT_EQ(hole, (std::vector<uint8_t>{1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0}));
}

TEST(BlockReaderTest, PrefetchOfAWholeDataFileIsOneRange) {
  TempDir tmp;
  const std::string path = tmp / "full.img";
  const std::string content = RandomBytes(5 * kBs + 7, 4);
  test::WriteFile(path, content);
  auto file = std::make_unique<RecordingFile>(Env::Default()->OpenRead(path));
  BlockReader reader(file.get(), kBs, content.size(), {});
  reader.Prefetch(1, 10);
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(file->asked, (Ranges{{kBs, 4 * kBs + 7}}));
}

// A file of one block at most is read with one read and no seek for its
// data, nor read-ahead turned off (in a tree of small files, three system
// calls a file); a hole in it reads as zeros. A larger one is asked where
// its data is, as always.
TEST(BlockReaderTest, AFileOfOneBlockIsReadWithoutSeeks) {
  TempDir tmp;
  const std::string path = tmp / "small";
  std::string content(kBs, '\0');
  const std::string data = RandomBytes(100, 6);
  WriteFileAt(path, kBs - 100, data);  // a hole first, where the file system keeps one
  content.replace(kBs - 100, 100, data);
  auto file = std::make_unique<RecordingFile>(Env::Default()->OpenRead(path));
  {
    BlockReader reader(file.get(), kBs, content.size(), {});
    std::string buf(kBs, 'x');
    std::vector<uint8_t> hole;
    reader.Read(0, 1, buf.data(), &hole, /*zero_fill=*/false);
    EXPECT_EQ(buf, content);
    EXPECT_EQ(hole, std::vector<uint8_t>{0});
  }
  EXPECT_EQ(file->seeks, 0);
  EXPECT_EQ(file->readahead_off, 0);

  const std::string big = tmp / "sparse.img";
  const std::string sparse = MakeSparseFile(big);
  auto file2 = std::make_unique<RecordingFile>(Env::Default()->OpenRead(big));
  BlockReader reader(file2.get(), kBs, sparse.size(), {});
  std::string buf(17 * kBs, 'x');
  std::vector<uint8_t> hole;
  reader.Read(0, 17, buf.data(), &hole, /*zero_fill=*/true);
  EXPECT_EQ(buf.substr(0, sparse.size()), sparse);
  EXPECT_GT(file2->seeks, 0);
  EXPECT_EQ(file2->readahead_off, 1);
}

// A small file's scan (ScanLater) asks the kernel for the whole file at
// once, so that the disk reads it while the walk goes on, unless the reads
// are paced. A backup always gives the scanner a pacer, which without a
// rate only counts the bytes read: that one must not turn the advice off
// (it did, and a tree of small files was read one file at a time).
TEST(ScanLaterTest, AsksTheKernelForTheWholeFileUnlessPaced) {
  TempDir tmp;
  const std::string path = tmp / "small";
  const std::string content = RandomBytes(3 * kBs + 5, 5);
  test::WriteFile(path, content);
  const std::string store_dir = tmp / "store";
  Store::Init(Env::Default(), store_dir, kBs);
  Logger log{LogLevel::kError, false};
  std::unique_ptr<Store> store = Store::Open(Env::Default(), store_dir, LockMode::kAppend, &log);
  ThreadPool pool(1);
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
  for (uint64_t rate : {uint64_t{0}, uint64_t{1} << 30}) {
    SCOPED_TRACE("rate " + std::to_string(rate));
    RatePacer pacer(rate);
    FileScanner scanner(store.get(), &pool, nullptr, &pacer);
    auto file = std::make_unique<RecordingFile>(Env::Default()->OpenRead(path));
    RecordingFile* rec = file.get();
    FileScanner::Later later = scanner.ScanLater(std::move(file));
    const Ranges asked = rec->asked;  // read() closes the file
    if (rate == 0) {
      EXPECT_EQ(asked, (Ranges{{0, content.size()}}));
    } else {
      EXPECT_TRUE(asked.empty());
    }
    later.read();
    ScanStats stats;
    EXPECT_EQ(later.finish(&stats).size(), 1u);  // one list blob
    EXPECT_EQ(stats.bytes_read, content.size());
  }
}

}  // namespace
}  // namespace vmback
