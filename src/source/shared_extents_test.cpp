// Changed-block tracking from shared extents: the comparison of two extent
// maps, and on real reflink file systems (XFS and btrfs on loop devices) the
// change list between a kept snapshot and a new one covers every write and
// little else.
#include "source/shared_extents.h"

#include <gtest/gtest.h>
#include <linux/fiemap.h>

#include "helpers/loop_fs.h"
#include "helpers/test_util.h"

namespace vmback {
namespace {

using test::LoopFs;

TEST(DifferingRangesTest, ComparesAddressesOffsetByOffset) {
  const uint64_t M = 1 << 20;
  // The same extents, one split in two on the new side: no change.
  std::vector<FileExtent> base = {{0, 100 * M, 4 * M, 0}, {6 * M, 300 * M, 2 * M, FIEMAP_EXTENT_LAST}};
  std::vector<FileExtent> now = {{0, 100 * M, M, 0}, {M, 101 * M, 3 * M, 0}, {6 * M, 300 * M, 2 * M, 0}};
  EXPECT_TRUE(DifferingRanges(base, now, 8 * M).empty());
  // A rewritten megabyte (another address), a hole filled, a tail cut.
  now = {{0, 100 * M, M, 0}, {M, 900 * M, M, 0}, {2 * M, 102 * M, 2 * M, 0}, {4 * M, 500 * M, M, 0},
         {6 * M, 300 * M, M, 0}};
  EXPECT_EQ(DifferingRanges(base, now, 8 * M),
            (std::vector<ByteRange>{{M, M}, {4 * M, M}, {7 * M, M}}));
  // Not comparable, unwritten on one side only, compressed and not the same extent.
  EXPECT_EQ(DifferingRanges({{0, 0, M, 0}}, {{0, 0, M, FIEMAP_EXTENT_DELALLOC}}, M), (std::vector<ByteRange>{{0, M}}));
  EXPECT_EQ(DifferingRanges({{0, 0, M, 0}}, {{0, 0, M, FIEMAP_EXTENT_UNWRITTEN}}, M), (std::vector<ByteRange>{{0, M}}));
  EXPECT_EQ(DifferingRanges({{0, 7, M, FIEMAP_EXTENT_ENCODED}}, {{0, 7, M, FIEMAP_EXTENT_ENCODED}}, M),
            std::vector<ByteRange>{});
  EXPECT_EQ(DifferingRanges({{0, 7, 2 * M, FIEMAP_EXTENT_ENCODED}}, {{M, 7 + M, M, FIEMAP_EXTENT_ENCODED}}, 2 * M),
            (std::vector<ByteRange>{{0, 2 * M}}));
  // Holes in both: zeros both.
  EXPECT_TRUE(DifferingRanges({}, {}, 5 * M).empty());
}

class SharedExtentsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why = fs_.Mount(GetParam());
    if (!why.empty()) GTEST_SKIP() << "no " << GetParam() << " on a loop device: " << why;
  }
  void TearDown() override { fs_.Unmount(); }
  void Clone(const std::string& from, const std::string& to) {
    ASSERT_EQ(env_->CloneFile(from, to, {}), 0) << "no reflink on " << GetParam();
  }
  Env* env_ = Env::Default();
  LoopFs fs_;
};

TEST_P(SharedExtentsTest, TheChangeListCoversEveryWriteAndLittleElse) {
  const std::string img = fs_ / "disk.img", base = fs_ / "base.img", now = fs_ / "now.img";
  const uint64_t size = 16 << 20;
  test::WriteFile(img, test::RandomBytes(size, 1));
  Clone(img, base);
  Clone(img, now);
  ChangeSet same = SharedExtentChanges(env_, base, now);
  EXPECT_EQ(same.method, ChangeMethod::kSharedExtents) << same.why;
  EXPECT_TRUE(same.changed.empty());

  const std::vector<ByteRange> writes = {{1 << 20, 4096}, {(5 << 20) + 7, 100}, {size - 1, 1}};
  for (const auto& w : writes) test::WriteFileAt(img, w.offset, test::RandomBytes(w.length, w.offset));
  ASSERT_EQ(::unlink(now.c_str()), 0);
  Clone(img, now);
  ChangeSet cs = SharedExtentChanges(env_, base, now);
  ASSERT_EQ(cs.method, ChangeMethod::kSharedExtents) << cs.why;
  for (const auto& w : writes) EXPECT_TRUE(Touches(cs.changed, w.offset, w.length)) << "missed " << w.offset;
  // Copy-on-write allocates in small units (XFS: up to its cowextsize
  // hint, 128 KiB by default): far less than the file.
  EXPECT_LE(CoveredBytes(cs.changed), 3u * (256 << 10)) << GetParam();
  EXPECT_FALSE(Touches(cs.changed, 8 << 20, 4 << 20)) << "unwritten megabytes are in the list";

  // No evidence: no list, and why.
  ChangeSet gone = SharedExtentChanges(env_, fs_ / "none.img", now);
  EXPECT_EQ(gone.method, ChangeMethod::kFullRead);
  EXPECT_NE(gone.why.find("no copy in the base snapshot"), std::string::npos) << gone.why;
  test::WriteFileAt(img, size, "grown");
  ASSERT_EQ(::unlink(now.c_str()), 0);
  Clone(img, now);
  ChangeSet grown = SharedExtentChanges(env_, base, now);
  EXPECT_EQ(grown.method, ChangeMethod::kFullRead);
  EXPECT_NE(grown.why.find("size differs"), std::string::npos) << grown.why;
}

INSTANTIATE_TEST_SUITE_P(ReflinkFileSystems, SharedExtentsTest, ::testing::Values("xfs", "btrfs"));

}  // namespace
}  // namespace vmback
