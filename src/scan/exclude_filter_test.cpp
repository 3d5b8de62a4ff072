// Tests for scan/exclude_filter.h (the filter both walkers use, the dry
// run's preview, the exclude file's checks) and job/excludes.h (vmback's own
// paths below a source), on real files in a temp dir.
#include "scan/exclude_filter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "helpers/test_util.h"
#include "job/excludes.h"
#include "util/error.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;

using test::MakeDir;
using test::TempDir;
using test::WriteFile;

const std::string kTag = std::string(kCacheDirSignature) + "\n# made by a test\n";

TEST(HasCacheDirTag, OnlyARegularFileWithTheSignature) {
  TempDir t;
  Env* env = Env::Default();
  for (const char* d : {"good", "bad", "short", "link", "dirtag", "none"}) MakeDir(t / d, 0755);
  WriteFile(t / "good/CACHEDIR.TAG", kTag);
  WriteFile(t / "bad/CACHEDIR.TAG", "Signature: 0000\n");
  WriteFile(t / "short/CACHEDIR.TAG", std::string(kCacheDirSignature).substr(0, 20));
  WriteFile(t / "real-tag", kTag);
  fs::create_symlink(t / "real-tag", t / "link/CACHEDIR.TAG");
  MakeDir(t / "dirtag/CACHEDIR.TAG", 0755);
  EXPECT_TRUE(HasCacheDirTag(env, t / "good"));
  EXPECT_FALSE(HasCacheDirTag(env, t / "bad"));
  EXPECT_FALSE(HasCacheDirTag(env, t / "short"));
  EXPECT_FALSE(HasCacheDirTag(env, t / "link"));  // never through a symlink
  EXPECT_FALSE(HasCacheDirTag(env, t / "dirtag"));
  EXPECT_FALSE(HasCacheDirTag(env, t / "none"));
}

TEST(ExcludeFilter, OwnPathsThenPatternsThenCacheDirs) {
  TempDir t;
  VolumeExcludes ex;
  ex.patterns.AddAll({"*.tmp", "logs/"});
  ex.exclude_caches = true;
  ex.own.push_back({"srv/store", "the store /x/srv/store"});
  Logger quiet(LogLevel::kError, false);
  ExcludeFilter f(Env::Default(), &ex, &quiet);
  std::vector<ExcludedEntry> seen;
  f.RecordInto(&seen, 10);
  EXPECT_TRUE(f.active());
  EXPECT_TRUE(f.LeaveOut("/x/srv/store", "srv/store", true, false));
  EXPECT_FALSE(f.LeaveOut("/x/srv/store2", "srv/store2", true, false));
  EXPECT_TRUE(f.LeaveOut("/x/a/b.tmp", "a/b.tmp", false, false));
  EXPECT_TRUE(f.LeaveOut("/x/logs", "logs", true, false));
  EXPECT_FALSE(f.LeaveOut("/x/logs", "logs", false, false));
  EXPECT_TRUE(f.LeaveOut("/x/c/blob", "c/blob", false, true));
  EXPECT_FALSE(f.LeaveOut("/x/c/CACHEDIR.TAG", "c/CACHEDIR.TAG", false, true));  // the tag is kept
  EXPECT_EQ(f.excluded(), 4u);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].reason, ExcludeReason::kOwn);
  EXPECT_EQ(seen[1].reason, ExcludeReason::kPattern);
  EXPECT_EQ(seen[1].detail, "*.tmp");
  EXPECT_EQ(seen[3].reason, ExcludeReason::kCacheDir);
  EXPECT_EQ(seen[3].detail, "c");

  ExcludeFilter none(Env::Default(), nullptr, &quiet);
  EXPECT_FALSE(none.active());
  EXPECT_FALSE(none.LeaveOut("/x/a.tmp", "a.tmp", false, false));
}

TEST(PreviewVolume, CountsWhatWouldBeReadAndListsWhatNot) {
  TempDir t;
  const std::string src = t / "src";
  for (const char* d : {"", "/keep", "/cache", "/cache/sub", "/store"}) MakeDir(src + d, 0755);
  WriteFile(src + "/keep/a", std::string(1000, 'a'));
  WriteFile(src + "/keep/b.tmp", std::string(500, 'b'));
  WriteFile(src + "/cache/CACHEDIR.TAG", kTag);
  WriteFile(src + "/cache/sub/x", std::string(7000, 'x'));
  WriteFile(src + "/store/pack", std::string(9000, 'p'));
  fs::create_symlink("keep/a", src + "/link");
  VolumeExcludes ex = ExcludesFor("v", src, {"*.tmp"}, true, {{src + "/store", "the store"}});
  ASSERT_EQ(ex.own.size(), 1u);
  EXPECT_EQ(ex.own[0].rel, "store");
  Logger quiet(LogLevel::kError, false);
  VolumePreview p = PreviewVolume(Env::Default(), "v", src, true, &ex, nullptr, &quiet);
  EXPECT_EQ(p.files, 2u);  // keep/a and the tag
  EXPECT_EQ(p.bytes, 1000u + kTag.size());
  EXPECT_EQ(p.other, 1u);  // the symlink, not followed
  EXPECT_EQ(p.dirs, 3u);   // the root, keep, cache
  EXPECT_EQ(p.excluded, 3u);
  ASSERT_EQ(p.listed.size(), 3u);
  EXPECT_EQ(p.listed[0].rel, "cache/sub");
  EXPECT_EQ(p.listed[1].rel, "keep/b.tmp");
  EXPECT_EQ(p.listed[2].rel, "store");

  VolumePreview all = PreviewVolume(Env::Default(), "v", src, true, nullptr, nullptr, &quiet);
  EXPECT_EQ(all.files, 5u);
  EXPECT_EQ(all.excluded, 0u);
}

TEST(ExcludesFor, OwnPathsOnlyBelowTheSourceThroughSymlinks) {
  TempDir t;
  MakeDir(t / "src", 0755);
  MakeDir(t / "src/backup", 0755);
  fs::create_symlink(t / "src", t / "alias");
  std::vector<OwnLocation> own = {{t / "alias/backup", "the store"},  // the same place, by a symlink
                                  {t / "src", "the source itself"},    // not below it
                                  {t / "elsewhere", "a copy"},
                                  {t / "src/state/not-yet", "the state directory"}};
  VolumeExcludes ex = ExcludesFor("v", t / "src", {}, false, own);
  ASSERT_EQ(ex.own.size(), 2u);
  EXPECT_EQ(ex.own[0].rel, "backup");
  EXPECT_EQ(ex.own[1].rel, "state/not-yet");
  try {
    ExcludesFor("v", t / "src", {"ok", "[bad"}, false, own);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("volume 'v': exclude pattern \"[bad\""), std::string::npos) << e.what();
  }
}

TEST(OwnPath, ANamePrefixMatchesTheEntriesOfItsDirectory) {
  OwnPath points{"srv/vmback-", "a point of the btrfs target /srv/data", true};
  EXPECT_TRUE(points.Matches("srv/vmback-2026-12-05T020000Z"));
  EXPECT_FALSE(points.Matches("srv/vmback-"));
  EXPECT_FALSE(points.Matches("srv/vmback-x/inside"));
  EXPECT_FALSE(points.Matches("srv/data"));
  EXPECT_FALSE(points.Matches("other/vmback-x"));
  OwnPath exact{"srv/data", "the btrfs target /srv/data"};
  EXPECT_TRUE(exact.Matches("srv/data"));
  EXPECT_FALSE(exact.Matches("srv/data2"));
}

TEST(ExcludesOfConfig, ABtrfsTargetAndItsPointsUnderTheSource) {
  TempDir t;
  MakeDir(t / "src", 0755);
  Config c;
  c.target.type = TargetType::kBtrfs;
  c.target.path = t / "src/vols/data";
  c.run.state_dir = t / "state";  // not under the source
  VolumeConfig v;
  v.name = "v";
  v.source = t / "src";
  v.exclude = {"*.tmp"};
  c.volumes.push_back(v);
  BackupExcludes all = ExcludesOfConfig(c, {"/extra"});
  const VolumeExcludes& ex = all.at("v");
  ASSERT_EQ(ex.patterns.patterns().size(), 2u);
  EXPECT_EQ(ex.patterns.patterns()[1].text(), "/extra");
  ASSERT_EQ(ex.own.size(), 2u);
  EXPECT_EQ(ex.own[0].rel, "vols/data");
  EXPECT_EQ(ex.own[1].rel, "vols/vmback-");
  EXPECT_TRUE(ex.own[1].name_prefix);
  EXPECT_EQ(DescribeConfigExcludes(c, 0),
            (std::vector<std::string>{"pattern *.tmp", "own: vols/data (the btrfs target " + t / "src/vols/data" + ")",
                                      "own: vols/vmback-* (a point of the btrfs target " + t / "src/vols/data" + ")"}));
}

TEST(ReadExcludeFile, RefusesWhatIsNoPlainTextFile) {
  TempDir t;
  Env* env = Env::Default();
  WriteFile(t / "ok", "# c\n*.tmp\n");
  EXPECT_EQ(ReadExcludeFile(env, t / "ok"), std::vector<std::string>{"*.tmp"});
  fs::create_symlink(t / "ok", t / "link");
  test::MakeFifo(t / "fifo", 0600);
  WriteFile(t / "huge", "");
  fs::resize_file(t / "huge", uint64_t{1} << 36);
  for (const char* bad : {"link", "fifo", "huge", "missing"}) {
    try {
      ReadExcludeFile(env, t / bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
      EXPECT_NE(std::string(e.what()).find(t / bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace vmback
