// Change lists: ranges are normalized (sorted, merged, clipped) and asked
// whether a block meets them.
#include "source/change_set.h"

#include <gtest/gtest.h>

namespace vmback {
namespace {

TEST(ChangeSetTest, NormalizeSortsMergesAndClips) {
  auto r = NormalizeRanges({{100, 10}, {0, 5}, {5, 5}, {105, 20}, {300, 0}, {990, 50}, {2000, 1}}, 1000);
  EXPECT_EQ(r, (std::vector<ByteRange>{{0, 10}, {100, 25}, {990, 10}}));
  EXPECT_EQ(CoveredBytes(r), 45u);
  EXPECT_TRUE(NormalizeRanges({}, 10).empty());
}

TEST(ChangeSetTest, TouchesFindsEveryOverlapAndNoOther) {
  const std::vector<ByteRange> r = {{10, 10}, {100, 1}};
  EXPECT_FALSE(Touches(r, 0, 10));
  EXPECT_TRUE(Touches(r, 0, 11));
  EXPECT_TRUE(Touches(r, 19, 1));
  EXPECT_FALSE(Touches(r, 20, 80));
  EXPECT_TRUE(Touches(r, 20, 81));
  EXPECT_FALSE(Touches(r, 101, 1000));
  EXPECT_FALSE(Touches(r, 15, 0));
  EXPECT_FALSE(Touches({}, 0, 100));
  // Against a brute force over a small space.
  for (uint64_t off = 0; off < 120; off++)
    for (uint64_t len = 0; len < 30; len++) {
      bool want = false;
      for (uint64_t b = off; b < off + len; b++) want = want || (b >= 10 && b < 20) || b == 100;
      EXPECT_EQ(Touches(r, off, len), want) << off << "+" << len;
    }
}

TEST(ChangeSetTest, MethodNames) {
  EXPECT_STREQ(ChangeMethodName(ChangeMethod::kFullRead), "full-read");
  EXPECT_STREQ(ChangeMethodName(ChangeMethod::kDirtyBitmap), "dirty-bitmap");
  EXPECT_STREQ(ChangeMethodName(ChangeMethod::kSharedExtents), "shared-extents");
}

}  // namespace
}  // namespace vmback
