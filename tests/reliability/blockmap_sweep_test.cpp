// Corruption sweep of the in-place sink's blockmaps (src/inplace/inplace.h):
// a tree is mirrored with SyncInPlace, then, by a seeded plan, a map is
// damaged (one bit flipped, truncated, or cut to nothing), sometimes several
// maps at once, sometimes with the mirrored file itself damaged behind the
// map's back (bit rot in the target) and sometimes with the source changed
// too. The next SyncInPlace must notice every damaged map (blockmaps_rebuilt
// counts exactly them), rebuild it from a compare with the target's data,
// and leave the mirror identical to the source with every map sound and
// true to the target's blocks; the sync after that has nothing to do.
// 200 rounds in the short run, 2000 with VMBACK_LONG_TESTS=1.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "os/env.h"
#include "reliability/sweep_util.h"
#include "inplace/inplace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using reliability::JoinSome;
using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;
using test::WriteFileAt;

constexpr uint32_t kBs = 4096;

std::string WithoutMaps(const std::string& dir) {
  std::istringstream in(DescribeTree(dir, false));
  std::string out, line;
  while (std::getline(in, line))
    if (line.rfind(kBlockmapDir, 0) != 0) out += line + "\n";
  return out;
}

// "" when the map of the file at root/rel is sound and every block it names
// is the target's block; else what is wrong.
std::string MapTrue(const std::string& root, const std::string& rel) {
  Blockmap m;
  try {
    m = ReadBlockmap(Env::Default(), BlockmapPath(root, rel));
  } catch (const std::exception& e) {
    return rel + ": map unreadable after the sync: " + e.what();
  }
  if (m.path != rel) return rel + ": map names " + m.path;
  std::string data = ReadFile(root + "/" + rel);
  if (m.file_size != data.size()) return rel + ": map says " + std::to_string(m.file_size) + " bytes";
  for (size_t i = 0; i < m.blocks.size(); i++) {
    std::string block = data.substr(i * m.block_size, m.block_size);
    Hash want = block.find_first_not_of('\0') == std::string::npos ? Hash{} : Sha256(block);
    if (m.blocks[i] != want) return rel + ": map block " + std::to_string(i) + " is not the target's";
  }
  return "";
}

class BlockmapSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_ / "src";
    dst_ = tmp_ / "mirror";
    fs::create_directories(src_ + "/d/e");
    files_ = {"one.bin", "big.bin", "sparse.img", "d/small.txt", "d/e/deep.bin", "tail.bin"};
    WriteFile(src_ + "/one.bin", RandomBytes(kBs, 1));
    WriteFile(src_ + "/big.bin", RandomBytes(64 * kBs + 123, 2));
    WriteFile(src_ + "/sparse.img", "");
    WriteFileAt(src_ + "/sparse.img", 0, RandomBytes(3 * kBs, 3));
    WriteFileAt(src_ + "/sparse.img", 200 * kBs, RandomBytes(5 * kBs, 4));
    fs::resize_file(src_ + "/sparse.img", 300 * kBs);
    WriteFile(src_ + "/d/small.txt", "a small text file\n");
    WriteFile(src_ + "/d/e/deep.bin", RandomBytes(9 * kBs, 5) + std::string(2 * kBs, '\0') + RandomBytes(77, 6));
    WriteFile(src_ + "/tail.bin", RandomBytes(kBs + 1, 7));
    InplaceStats s = Sync();
    ASSERT_EQ(s.errors, 0u);
  }

  InplaceStats Sync() { return SyncInPlace(Env::Default(), src_, dst_, kBs, {}, &log_); }

  TempDir tmp_;
  Logger log_{LogLevel::kError, false};
  std::string src_, dst_;
  std::vector<std::string> files_;
};

TEST_F(BlockmapSweep, EveryDamagedMapIsRebuiltAndTheMirrorEndsIdentical) {
  const int rounds = reliability::LongRun() ? 2000 : 200;
  std::mt19937_64 rng(20261126);
  std::vector<std::string> failures;
  uint64_t faults = 0;
  for (int round = 1; round <= rounds; round++) {
    std::vector<std::string> bad;
    std::string what = "round " + std::to_string(round) + ":";
    // Which maps: one, or (every 5th round) up to three.
    std::set<std::string> victims;
    size_t want = round % 5 == 0 ? 1 + rng() % 3 : 1;
    while (victims.size() < want) victims.insert(files_[rng() % files_.size()]);
    for (const auto& rel : victims) {
      std::string map = BlockmapPath(dst_, rel);
      uint64_t size = fs::file_size(map);
      int how = static_cast<int>(rng() % 10);
      if (how < 7) {
        uint64_t off = rng() % size;
        uint8_t bit = static_cast<uint8_t>(1u << (rng() % 8));
        test::XorFileByte(map, off, bit);
        what += " flip " + rel + "@" + std::to_string(off);
      } else if (how < 9) {
        uint64_t cut = 1 + rng() % (size - 1);
        fs::resize_file(map, cut);
        what += " truncate " + rel + " to " + std::to_string(cut);
      } else {
        fs::resize_file(map, 0);
        what += " zero " + rel;
      }
      faults++;
      // Bit rot in the mirrored file too, where the map can no longer tell.
      uint64_t tsize = fs::file_size(dst_ + "/" + rel);
      if (rng() % 3 == 0 && tsize > 0) {
        struct stat before;
        ::stat((dst_ + "/" + rel).c_str(), &before);
        test::XorFileByte(dst_ + "/" + rel, rng() % tsize, 0x40);
        // Behind the map's back: the timestamps put back as they were.
        test::SetMtimeNs(dst_ + "/" + rel, before.st_mtim.tv_sec, before.st_mtim.tv_nsec);
        what += " +target rot";
      }
      // A change of the source as well.
      if (rng() % 3 == 0) {
        uint64_t ssize = fs::file_size(src_ + "/" + rel);
        if (ssize > 0) {
          WriteFileAt(src_ + "/" + rel, rng() % ssize, RandomBytes(1 + rng() % (2 * kBs), rng()));
          what += " +source change";
        }
      }
    }
    try {
      InplaceStats s = Sync();
      if (s.blockmaps_rebuilt != victims.size())
        bad.push_back("blockmaps_rebuilt " + std::to_string(s.blockmaps_rebuilt) + ", want " +
                      std::to_string(victims.size()));
      if (s.errors) bad.push_back(std::to_string(s.errors) + " errors");
    } catch (const std::exception& e) {
      bad.push_back(std::string("sync failed: ") + e.what());
    }
    if (WithoutMaps(dst_) != WithoutMaps(src_)) bad.push_back("the mirror differs from the source");
    for (const auto& rel : files_)
      if (std::string m = MapTrue(dst_, rel); !m.empty()) bad.push_back(m);
    try {
      InplaceStats again = Sync();
      if (again.blockmaps_rebuilt || again.blocks_written || again.target_bytes_read)
        bad.push_back("the next sync rebuilt " + std::to_string(again.blockmaps_rebuilt) + " map(s), wrote " +
                      std::to_string(again.blocks_written) + " block(s)");
    } catch (const std::exception& e) {
      bad.push_back(std::string("the next sync failed: ") + e.what());
    }
    if (!bad.empty()) failures.push_back(what + ": " + JoinSome(bad, "; "));
  }
  reliability::RecordRow({"in-place blockmaps: damaged map rebuilt", static_cast<uint64_t>(rounds), faults,
                          failures.size()});
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << rounds << " rounds failed:\n"
                                << JoinSome(failures, "\n", 12);
}

}  // namespace
}  // namespace vmback

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  vmback::reliability::InstallSummaryPrinter("in-place blockmap corruption");
  return RUN_ALL_TESTS();
}
