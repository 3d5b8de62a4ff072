// The parts of `vmback diff` and `vmback find` that do not depend on the
// destination: the glob, path order, the merge of two listings.
#include "destination/point_find.h"

#include <gtest/gtest.h>

#include "destination/point_diff.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

TEST(GlobMatch, StarStaysInOneComponentDoubleStarCrosses) {
  EXPECT_TRUE(GlobMatch("tree/*", "tree/a.txt"));
  EXPECT_FALSE(GlobMatch("tree/*", "tree/sub/a.txt"));
  EXPECT_TRUE(GlobMatch("tree/**", "tree/sub/a.txt"));
  EXPECT_TRUE(GlobMatch("tree/**.txt", "tree/sub/deeper/a.txt"));
  EXPECT_FALSE(GlobMatch("tree/**.txt", "tree/sub/a.txt.gz"));
  EXPECT_FALSE(GlobMatch("tree/?", "tree//"));
  EXPECT_TRUE(GlobMatch("t?ee/a", "tree/a"));
}

TEST(GlobMatch, WithoutSlashMatchesTheName) {
  EXPECT_TRUE(GlobMatch("*.txt", "tree/sub/a.txt"));
  EXPECT_TRUE(GlobMatch("tree", "tree"));
  EXPECT_FALSE(GlobMatch("sub", "tree/sub/a.txt"));
  EXPECT_FALSE(GlobMatch("*.txt", "tree/a.txt/b"));
}

TEST(GlobMatch, SetsAndQuoting) {
  EXPECT_TRUE(GlobMatch("was-[e-g]ile", "v/was-file"));
  EXPECT_FALSE(GlobMatch("was-[!e-g]ile", "v/was-file"));
  EXPECT_TRUE(GlobMatch("[^a]b", "v/cb"));
  EXPECT_TRUE(GlobMatch("[]]", "v/]"));
  EXPECT_TRUE(GlobMatch("a[b", "v/a[b"));  // no closing ']': a plain '['
  EXPECT_TRUE(GlobMatch("\\*", "v/*"));
  EXPECT_FALSE(GlobMatch("\\*", "v/x"));
}

TEST(GlobMatch, ManyStarsStayCheap) {
  const std::string path(4000, 'a');
  EXPECT_FALSE(GlobMatch("**a**a**a**a**a**a**a**a**b", path));
}

TEST(PathOrder, ADirectoryComesRightBeforeWhatItHolds) {
  EXPECT_TRUE(PathOrderLess("tree/a", "tree/a.txt"));
  EXPECT_TRUE(PathOrderLess("tree/a/z", "tree/a.txt"));
  EXPECT_TRUE(PathOrderLess("tree", "tree/a"));
  EXPECT_FALSE(PathOrderLess("tree/b", "tree/a/z"));
  EXPECT_TRUE(PathOrderLess("tree/\x7f", "tree/\xe9"));  // bytes, unsigned
}

PointEntry File(const std::string& path, uint32_t mode = 0644, const std::string& version = "v") {
  PointEntry e;
  e.path = path;
  e.type = "file";
  e.mode = mode;
  e.version = version;
  return e;
}

TEST(DiffPointEntries, AddedRemovedChangedInPathOrder) {
  std::vector<PointEntry> a = {File("t/b"), File("t/a.txt"), File("t/same"), File("t/mode")};
  std::vector<PointEntry> b = {File("t/same"), File("t/a/new"), File("t/mode", 0600), File("t/b", 0644, "w")};
  int asked = 0;
  const auto changes = DiffPointEntries(a, b, [&](const PointEntry& x, const PointEntry& y) {
    asked++;
    std::optional<ContentDelta> d;
    if (x.version != y.version) d = ContentDelta{true, 2, 4096};
    return d;
  });
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].kind, EntryChange::Kind::kAdded);
  EXPECT_EQ(changes[0].entry().path, "t/a/new");
  EXPECT_EQ(changes[1].kind, EntryChange::Kind::kRemoved);
  EXPECT_EQ(changes[1].entry().path, "t/a.txt");
  EXPECT_EQ(changes[2].entry().path, "t/b");
  EXPECT_EQ(changes[2].what, std::vector<std::string>{"content"});
  EXPECT_EQ(changes[2].content->bytes(), 8192u);
  EXPECT_EQ(changes[3].entry().path, "t/mode");
  EXPECT_EQ(changes[3].what, std::vector<std::string>{"mode"});
  EXPECT_EQ(asked, 3);  // the files in both
}

TEST(DiffPointEntries, ATypeChangeIsOnlyThat) {
  PointEntry link = File("t/x");
  link.type = "symlink";
  link.target = "y";
  const auto changes = DiffPointEntries({File("t/x")}, {link}, [](const PointEntry&, const PointEntry&) {
    ADD_FAILURE() << "content asked of a file and a link";
    return std::optional<ContentDelta>();
  });
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].what, std::vector<std::string>{"type"});
}

TEST(GatherFound, ChangedWhereTheVersionOrTypeDiffers) {
  const auto found = GatherFound({{"p1", {File("t/a", 0644, "1")}},
                                  {"p2", {File("t/a", 0600, "1")}},
                                  {"p3", {File("t/a", 0600, "2")}}});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_FALSE(ChangedAt(found[0], 0));
  EXPECT_FALSE(ChangedAt(found[0], 1));  // a chmod is not a new version
  EXPECT_TRUE(ChangedAt(found[0], 2));
}

constexpr int64_t kDay = 86400LL * 1000000000;

TEST(FindFilter, TimesAreUtcDatesOrAgesAndBoundTheMtime) {
  const int64_t now = ParseTimeUtc("2026-12-04T12:00:00Z");
  EXPECT_EQ(ParseFindTime("--newer", "2026-12-01", now), ParseTimeUtc("2026-12-01T00:00:00Z"));
  EXPECT_EQ(ParseFindTime("--newer", "7d", now), now - 7 * kDay);
  EXPECT_EQ(ParseFindTime("--older", "2026-12-03 06:30", now), ParseTimeUtc("2026-12-03T06:30:00Z"));
  for (const char* bad : {"yesterday", "2026-13-01", "-3d", "2026-12-01Z", ""}) {
    try {
      ParseFindTime("--newer", bad, now);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig);
      EXPECT_NE(std::string(e.what()).find(std::string("--newer '") + bad + "'"), std::string::npos) << e.what();
    }
  }
  FindFilter f;
  f.newer_ns = now - 2 * kDay;
  f.older_ns = now;
  PointEntry e = File("t/a");
  e.mtime_ns = now - kDay;
  EXPECT_TRUE(f.Keeps(e));
  e.mtime_ns = now - 3 * kDay;
  EXPECT_FALSE(f.Keeps(e)) << "older than --newer";
  e.mtime_ns = now + 1;
  EXPECT_FALSE(f.Keeps(e)) << "newer than --older";
}

TEST(FindFilter, SizesAreMoreLessOrExactlyAndForFilesOnly) {
  FindFilter f;
  ParseFindSize("+1M", &f);
  PointEntry big = File("t/big");
  big.size = (1 << 20) + 1;
  PointEntry small = File("t/small");
  small.size = 4096;
  PointEntry dir = File("t/d");
  dir.type = "dir";
  dir.size = 1 << 30;
  EXPECT_TRUE(f.Keeps(big));
  EXPECT_FALSE(f.Keeps(small));
  EXPECT_FALSE(f.Keeps(dir)) << "--size is for files";
  ParseFindSize("-4K", &f);
  EXPECT_FALSE(f.Keeps(big));
  EXPECT_FALSE(f.Keeps(small)) << "4096 is not less than 4K";
  ParseFindSize("4096", &f);
  EXPECT_TRUE(f.Keeps(small));
  EXPECT_THROW(ParseFindSize("+big", &f), Error);
  EXPECT_THROW(ParseFindSize("", &f), Error);
  FindFilter any;
  EXPECT_TRUE(any.Keeps(dir));
}

}  // namespace
}  // namespace vmback
