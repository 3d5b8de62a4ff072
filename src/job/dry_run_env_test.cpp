// The Env a plan runs through: every step that would change something is
// written down and not done (the tree on disk is byte for byte the same
// after), commands that only look run for real, and what the plan made
// reads as what it was made from, so the run's own functions go on.
#include "job/dry_run_env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "helpers/test_util.h"
#include "source/snapshot.h"
#include "util/error.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;

// Answers every command itself, counting them, and keeps their argv.
class CommandLog : public EnvWrapper {
 public:
  CommandLog() : EnvWrapper(Env::Default()) {}
  RunResult Run(const std::vector<std::string>& argv) override {
    ran.push_back(argv);
    RunResult r;
    r.exit_code = 0;
    r.out = "ext4\n";
    return r;
  }
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits&) override { return Run(argv); }
  std::vector<std::vector<std::string>> ran;
};

bool Has(const std::vector<std::string>& steps, const std::string& step) {
  return std::find(steps.begin(), steps.end(), step) != steps.end();
}

std::string Joined(const std::vector<std::string>& steps) {
  std::string out;
  for (const auto& s : steps) out += s + "\n";
  return out;
}

class DryRunEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = tmp_ / "images";
    fs::create_directories(src_ + "/sub");
    test::WriteFile(src_ + "/a.img", test::RandomBytes(5000, 1));
    test::WriteFile(src_ + "/sub/b.img", test::RandomBytes(300, 2));
    fs::create_symlink("a.img", src_ + "/link");
    before_ = test::DescribeTree(tmp_.path());
  }
  test::TempDir tmp_;
  std::string src_;
  std::string before_;
  CommandLog real_;
  DryRunEnv dry_{&real_};
};

TEST_F(DryRunEnvTest, ChangesNothing) {
  const std::string a = src_ + "/a.img";
  dry_.Rename(a, src_ + "/moved");
  dry_.Remove(src_ + "/sub/b.img");
  dry_.MakeDir(src_ + "/new");
  // A directory made in the plan is on its parent's file system.
  EXPECT_EQ(dry_.Status(src_ + "/new").kind, FileKind::kDir);
  EXPECT_EQ(dry_.FileSystemType(src_ + "/new"), Env::Default()->FileSystemType(src_));
  dry_.MakeNewDir(src_ + "/new2");
  dry_.Symlink("x", src_ + "/s2");
  dry_.Link(src_ + "/link", src_ + "/hard");
  dry_.MakeNode(src_ + "/fifo", S_IFIFO, 0);
  dry_.RemoveDir(src_ + "/sub");
  EXPECT_EQ(dry_.RemoveTree(src_), 1u);
  EXPECT_EQ(dry_.CloneFile(a, src_ + "/clone", {}), 0);
  dry_.SetMode(a, 0777);
  dry_.SetModeNoFollow(a, 0777);
  EXPECT_TRUE(dry_.SetOwner(a, 12345, 12345));
  dry_.SetTimes(a, 1, 2);
  dry_.SetXattr(a, "user.x", "y");
  dry_.RemoveXattr(a, "user.x");
  dry_.SyncDir(src_);
  dry_.SyncFileSystem(src_);
  EXPECT_THROW(dry_.OpenWrite(a, CreateMode::kTruncate, 0600), Error);
  EXPECT_THROW(dry_.OpenWrite(src_ + "/w", CreateMode::kExclusive, 0600), Error);
  EXPECT_THROW(dry_.Lock(src_ + "/lock", LockMode::kExclusive), Error);
  EXPECT_EQ(test::DescribeTree(tmp_.path()), before_);
  const auto steps = dry_.TakeSteps();
  for (const std::string& s : {"mv -- " + a + " " + src_ + "/moved", "rm -- " + src_ + "/sub/b.img",
                               "mkdir -m 0700 -- " + src_ + "/new", "rm -r -- " + src_,
                               "reflink copy (FICLONERANGE) -- " + a + " " + src_ + "/clone"})
    EXPECT_TRUE(Has(steps, s)) << "missing: " << s << "\n" << Joined(steps);
  EXPECT_TRUE(dry_.TakeSteps().empty());
}

TEST_F(DryRunEnvTest, CommandsThatChangeAreWrittenDownAndThoseThatLookRun) {
  const std::string lv = src_ + "/a.img";  // stands in for /dev/VG/LV
  RunResult r = dry_.RunLimited({"lvm", "lvcreate", "-s", "-n", "snap", "-L", "1G", "--", lv}, {});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(real_.ran.empty()) << "a command that changes something was run";
  // The snapshot exists in the plan, and reads as its origin.
  const std::string snap = src_ + "/snap";
  EXPECT_TRUE(dry_.Exists(snap));
  EXPECT_EQ(dry_.Status(snap).size, 5000u);
  dry_.RunLimited({"blkid", "-p", "-o", "value", "-s", "TYPE", "--", snap}, {});
  ASSERT_EQ(real_.ran.size(), 1u);
  EXPECT_EQ(real_.ran[0].back(), lv) << "blkid of the snapshot looks at its origin";
  dry_.RunLimited({"lvm", "vgs", "--", "vg"}, {});
  EXPECT_EQ(real_.ran.size(), 2u);
  dry_.Run({"lvm", "lvremove", "-f", "--", snap});
  EXPECT_EQ(real_.ran.size(), 2u);
  EXPECT_FALSE(dry_.Exists(snap));
  const auto steps = dry_.TakeSteps();
  EXPECT_EQ(steps, (std::vector<std::string>{"lvm lvcreate -s -n snap -L 1G -- " + lv,
                                             "(checked: blkid -p -o value -s TYPE -- " + snap + ")",
                                             "(checked: lvm vgs -- vg)", "lvm lvremove -f -- " + snap}));
  // A pipe (zfs send | zfs recv) is written down, never run.
  PipeResult p = dry_.RunPipe({"zfs", "send", "pool/a@x"}, {"zfs", "recv", "-F", "pool/b"}, {});
  EXPECT_EQ(p.consumer.exit_code, 0);
  EXPECT_TRUE(Has(dry_.TakeSteps(), "zfs send pool/a@x | zfs recv -F pool/b"));
  EXPECT_EQ(real_.ran.size(), 2u);
  EXPECT_EQ(test::DescribeTree(tmp_.path()), before_);
}

// The run's own reflink snapshot, taken and dropped through a plan: every
// file it would clone is named, and nothing is made.
TEST_F(DryRunEnvTest, AReflinkSnapshotInAPlan) {
  SnapshotSpec spec{"images", src_, SnapshotKind::kReflink, "", "42"};
  Logger log(LogLevel::kError, false);
  auto snapshot = TakeSnapshot(&dry_, spec, &log);
  const std::string at = src_ + "/.vmback-images-42";
  EXPECT_EQ(snapshot->path(), at);
  EXPECT_TRUE(dry_.Exists(at));
  snapshot->Drop();
  const auto steps = dry_.TakeSteps();
  for (const std::string& s : {"mkdir -m 0700 -- " + at,
                               "reflink copy (FICLONERANGE) -- " + src_ + "/a.img " + at + "/a.img",
                               "mkdir -m 0700 -- " + at + "/sub",
                               "reflink copy (FICLONERANGE) -- " + src_ + "/sub/b.img " + at + "/sub/b.img",
                               "ln -s -- a.img " + at + "/link", "rm -r -- " + at})
    EXPECT_TRUE(Has(steps, s)) << "missing: " << s << "\n" << Joined(steps);
  EXPECT_TRUE(real_.ran.empty());
  EXPECT_TRUE(log.problems().empty());
  EXPECT_EQ(test::DescribeTree(tmp_.path()), before_);
}

}  // namespace
}  // namespace vmback
