// backup, list, restore, verify and prune on a plain directory target
// (target_ops.h). ZFS (zfs-fuse) and btrfs (RAID1 on loop devices) are
// exercised for real by tests/integration/zfs_target.sh and btrfs_target.sh.
#include "inplace/target_ops.h"

#include <sys/stat.h>

#include <filesystem>
#include <random>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "helpers/hook_env.h"
#include "helpers/test_util.h"
#include "inplace/blockmap.h"
#include "inplace/target.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

class DirTargetTest : public ::testing::Test {
 protected:
  DirTargetTest() : log_(LogLevel::kWarning) {
    ::mkdir((dir_ / "target").c_str(), 0755);
    ::mkdir((dir_ / "src").c_str(), 0755);
    ::mkdir((dir_ / "src/tree").c_str(), 0755);
    config_.type = TargetType::kDir;
    config_.path = dir_ / "target";
    config_.block_size = 4096;
  }

  std::unique_ptr<InplaceTarget> Open() { return OpenInplaceTarget(Env::Default(), config_, &log_); }

  BackupResult Backup(InplaceTarget* t) {
    return BackupToTarget(t, Env::Default(), {{"disk", dir_ / "src/disk.img", true}, {"tree", dir_ / "src/tree", true}},
                          BackupOptions{}, &log_);
  }

  // A target holding tree/a/sub/f and tree/a/g (and a one-byte disk).
  std::unique_ptr<InplaceTarget> BackupNestedTree() {
    test::WriteFile(dir_ / "src/disk.img", "x");
    ::mkdir((dir_ / "src/tree/a").c_str(), 0755);
    ::mkdir((dir_ / "src/tree/a/sub").c_str(), 0700);
    test::WriteFile(dir_ / "src/tree/a/sub/f", "deep");
    test::WriteFile(dir_ / "src/tree/a/g", "gee");
    auto t = Open();
    Backup(t.get());
    return t;
  }

  test::TempDir dir_;
  TargetConfig config_;
  Logger log_;
};

TEST_F(DirTargetTest, IncrementalRunsWriteOnlyChangedBlocksAndRestoreBitIdentical) {
  std::mt19937_64 rng(42);
  std::string image = test::RandomBytes(1 << 20, 1);  // 256 blocks of 4 KiB
  test::WriteFile(dir_ / "src/disk.img", image);
  test::WriteFile(dir_ / "src/tree/a", "alpha");
  auto t = Open();
  Backup(t.get());
  for (int run = 0; run < 4; run++) {
    // Change a few seeded 4 KiB blocks (each change within one block).
    std::set<uint64_t> changed;
    for (int k = 0; k < 5; k++) {
      uint64_t block = rng() % 256;
      changed.insert(block);
      test::WriteFileAt(dir_ / "src/disk.img", block * 4096 + rng() % 4000, test::RandomBytes(64, rng()));
    }
    test::WriteFile(dir_ / "src/tree/run", std::to_string(run));
    BackupResult r = Backup(t.get());
    // Upper bound: the changed blocks of the image plus the small tree file.
    EXPECT_EQ(r.inplace[0].blocks_written, changed.size()) << "run " << run;
    EXPECT_LE(r.inplace[0].bytes_written, changed.size() * 4096) << "run " << run;
    EXPECT_EQ(r.volumes[0].bytes_written, r.inplace[0].bytes_written) << "run " << run;
    EXPECT_EQ(r.inplace[0].errors, 0u);
    EXPECT_EQ(t->ListPoints(), std::vector<std::string>{"current"});

    test::TempDir out;
    RestoreFromTarget(t.get(), Env::Default(), "latest", "", out / "r", Overwrite::kRefuse, &log_);
    EXPECT_EQ(test::ReadFile(out / "r/disk"), test::ReadFile(dir_ / "src/disk.img")) << "run " << run;
    EXPECT_EQ(test::DescribeTree(out / "r/tree"), test::DescribeTree(dir_ / "src/tree")) << "run " << run;
    EXPECT_FALSE(Env::Default()->Exists(out / "r/tree/.vmback-blockmaps"));
  }
  TargetVerifyReport v = VerifyTarget(t.get(), Env::Default(), &log_);
  EXPECT_TRUE(v.ok());
  EXPECT_FALSE(v.scrub.ran);
  EXPECT_EQ(v.files, 3u);  // disk, tree/a, tree/run
}

TEST_F(DirTargetTest, WrongDataBehindVmbacksBackIsNamedByVerifyAndRefusedByRestore) {
  test::WriteFile(dir_ / "src/disk.img", test::RandomBytes(64 * 4096, 7));
  test::WriteFile(dir_ / "src/tree/a", test::RandomBytes(3 * 4096 + 10, 8));
  auto t = Open();
  Backup(t.get());
  // The mirror's bytes change but nothing tells the file system: flip a bit
  // in block 9 of the image and block 2 of a tree file.
  test::XorFileByte(dir_ / "target/disk", 9 * 4096 + 100, 0x01);
  test::XorFileByte(dir_ / "target/tree/a", 2 * 4096 + 5, 0x80);
  TargetVerifyReport v = VerifyTarget(t.get(), Env::Default(), &log_);
  EXPECT_FALSE(v.ok());
  ASSERT_EQ(v.problems.size(), 2u);
  std::string all = v.problems[0] + "\n" + v.problems[1];
  EXPECT_NE(all.find("current: disk: block 9 (offset 36864)"), std::string::npos) << all;
  EXPECT_NE(all.find("current: tree/a: block 2 (offset 8192)"), std::string::npos) << all;

  test::TempDir out;
  try {
    RestoreFromTarget(t.get(), Env::Default(), "current", "disk", out / "disk", Overwrite::kRefuse, &log_);
    ADD_FAILURE() << "restore emitted a damaged file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("block 9"), std::string::npos) << e.what();
  }
  EXPECT_THROW(RestoreFromTarget(t.get(), Env::Default(), "current", "tree", out / "tree", Overwrite::kRefuse, &log_),
               Error);
}

// An image of many chunks (1 MiB: 256 blocks each) with a hole across
// chunk boundaries: restored bit-identical with its hole, and a block changed
// behind vmback's back in the middle of a run of data is named and stops
// the restore, leaving no file.
TEST_F(DirTargetTest, AnImageOfManyChunksKeepsItsHoleAndEveryBlockIsChecked) {
  const std::string img = test::RandomBytes(40 * 4096, 41) + std::string(500 * 4096, '\0') +
                          test::RandomBytes(300 * 4096 + 10, 42);
  test::WriteFile(dir_ / "src/disk.img", img);
  test::WriteFile(dir_ / "src/tree/a", "alpha");
  auto t = Open();
  Backup(t.get());
  test::TempDir out;
  RestoreFromTarget(t.get(), Env::Default(), "current", "disk", out / "disk", Overwrite::kRefuse, &log_);
  EXPECT_EQ(test::ReadFile(out / "disk"), img);
  auto f = Env::Default()->OpenRead(out / "disk");
  EXPECT_EQ(f->NextHole(0), 40u * 4096);
  EXPECT_EQ(f->NextData(40 * 4096), 540u * 4096);

  test::XorFileByte(dir_ / "target/disk", 700 * 4096 + 7, 0x04);
  std::string msg = test::ExpectError(ErrorKind::kCorrupt, [&] {
    RestoreFromTarget(t.get(), Env::Default(), "current", "disk", out / "disk2", Overwrite::kRefuse, &log_);
  });
  EXPECT_NE(msg.find("block 700 (bytes 2867200..2871296)"), std::string::npos) << msg;
  EXPECT_FALSE(Env::Default()->Exists(out / "disk2"));
}

TEST_F(DirTargetTest, RefusesAForeignDirectoryAndRemovesVolumesNoLongerGiven) {
  test::WriteFile(dir_ / "target/precious", "not vmback's");
  test::WriteFile(dir_ / "src/disk.img", "x");
  auto t = Open();
  try {
    Backup(t.get());
    ADD_FAILURE() << "a foreign directory was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("precious"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::ReadFile(dir_ / "target/precious"), "not vmback's");
  ::unlink((dir_ / "target/precious").c_str());

  Backup(t.get());
  EXPECT_TRUE(Env::Default()->Exists(dir_ / "target/tree"));
  BackupToTarget(t.get(), Env::Default(), {{"disk", dir_ / "src/disk.img", true}}, BackupOptions{}, &log_);
  EXPECT_FALSE(Env::Default()->Exists(dir_ / "target/tree"));
  EXPECT_EQ(ListTargetPoints(t.get(), Env::Default())[0].volumes, std::vector<std::string>{"disk"});
  // A file volume that becomes a tree.
  BackupToTarget(t.get(), Env::Default(), {{"disk", dir_ / "src/tree", true}}, BackupOptions{}, &log_);
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "target/disk").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_TRUE(VerifyTarget(t.get(), Env::Default(), &log_).ok());
}

// Volume names come from a disk: one that is not a plain name is refused
// where .vmback-point.json is read, by restore and verify alike.
TEST_F(DirTargetTest, AForgedVolumeNameIsRefusedWhereItIsRead) {
  test::WriteFile(dir_ / "src/disk.img", "x");
  auto t = Open();
  Backup(t.get());
  const std::string info_path = dir_ / "target/.vmback-point.json";
  const std::string good = test::ReadFile(info_path);
  for (const std::string& bad : std::vector<std::string>{"../x", "..", ".", "", "a/b", std::string("a\0b", 3),
                                                         ".vmback-blockmaps", "disk"}) {
    auto info = nlohmann::json::parse(good);
    info["volumes"].push_back({{"name", bad}, {"kind", "tree"}, {"source", "/x"}});
    test::WriteFile(info_path, info.dump());
    try {
      RestoreFromTarget(t.get(), Env::Default(), "current", "", dir_ / "out", Overwrite::kRefuse, &log_);
      ADD_FAILURE() << "restored a point naming volume '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << e.what();
      EXPECT_NE(std::string(e.what()).find("volume name"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(VerifyTarget(t.get(), Env::Default(), &log_).ok());
  }
  EXPECT_FALSE(Env::Default()->Exists(dir_ / "x"));
}

// Restore walks its destination with directory descriptors: what a local
// user planted there (symlinks where the point has a directory, a file or
// nothing) is replaced as itself with --force, never followed.
// --delete (Overwrite::kDelete) makes the destination exactly the point:
// planted symlinks are replaced or removed as links, never followed.
TEST_F(DirTargetTest, RestoreDeleteReplacesPlantedSymlinksWithoutFollowingThem) {
  auto t = BackupNestedTree();
  test::WriteFile(dir_ / "src/tree/b", "bee");
  ASSERT_EQ(::link((dir_ / "src/tree/b").c_str(), (dir_ / "src/tree/a/b2").c_str()), 0);
  Backup(t.get());

  const std::string outside = dir_ / "outside";
  ::mkdir(outside.c_str(), 0755);
  test::WriteFile(outside + "/victim", "victim");
  ::mkdir((outside + "/sub").c_str(), 0755);
  const std::string before = test::DescribeTree(outside);
  const std::string dest = dir_ / "dest";
  ::mkdir(dest.c_str(), 0755);
  ASSERT_EQ(::symlink(outside.c_str(), (dest + "/a").c_str()), 0);             // where a directory goes
  ASSERT_EQ(::symlink((outside + "/victim").c_str(), (dest + "/b").c_str()), 0);  // where a file goes
  ASSERT_EQ(::symlink(outside.c_str(), (dest + "/extra").c_str()), 0);          // not in the point

  RestoreFromTarget(t.get(), Env::Default(), "current", "tree", dest, Overwrite::kDelete, &log_);
  EXPECT_EQ(test::DescribeTree(outside), before) << "nothing outside the destination changed";
  EXPECT_EQ(test::DescribeTree(dest), test::DescribeTree(dir_ / "src/tree"));
  struct stat a, b;
  ASSERT_EQ(::lstat((dest + "/a/b2").c_str(), &a), 0);
  ASSERT_EQ(::lstat((dest + "/b").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hard links restored as links";
  EXPECT_EQ(a.st_nlink, 2u);
}

// The same while the restore runs: the moment a directory was made and
// opened, a local user renames it away and puts a symlink to a victim in its
// place. The restore goes on in the directory it opened (inside the
// destination), and nothing outside changes.
TEST_F(DirTargetTest, RestoreIsNotTurnedAsideByADirectorySwappedForASymlink) {
  auto t = BackupNestedTree();

  const std::string outside = dir_ / "outside";
  ::mkdir(outside.c_str(), 0755);
  test::WriteFile(outside + "/g", "victim");
  const std::string before = test::DescribeTree(outside);
  const std::string dest = dir_ / "dest";
  int swaps = 0;
  test::HookEnv env;
  // Listing the point's a/ comes after dest/a was made and opened.
  env.before_list = [&](const std::string& p) {
    if (!EndsWith(p, "/tree/a") || swaps++) return;
    ASSERT_EQ(::rename((dest + "/a").c_str(), (dest + "/moved").c_str()), 0);
    ASSERT_EQ(::symlink(outside.c_str(), (dest + "/a").c_str()), 0);
  };
  try {
    RestoreFromTarget(t.get(), &env, "current", "tree", dest, Overwrite::kRefuse, &log_);
  } catch (const Error& e) {
    // Refusing is fine too; writing outside is not.
    EXPECT_NE(e.kind(), ErrorKind::kCorrupt) << e.what();
  }
  EXPECT_EQ(swaps, 1);
  EXPECT_EQ(test::DescribeTree(outside), before) << "nothing outside the destination changed";
  EXPECT_EQ(test::ReadFile(outside + "/g"), "victim");
  EXPECT_FALSE(Env::Default()->Exists(outside + "/sub"));
}

TEST_F(DirTargetTest, AnUnreadableSourceTakesNoPoint) {
  test::WriteFile(dir_ / "src/disk.img", "x");
  auto t = Open();
  EXPECT_THROW(BackupToTarget(t.get(), Env::Default(), {{"gone", dir_ / "src/missing", true}}, BackupOptions{}, &log_),
               Error);
  EXPECT_TRUE(t->ListPoints().empty());
  EXPECT_THROW(BackupToTarget(t.get(), Env::Default(), {{".vmback-x", dir_ / "src/disk.img", true}}, BackupOptions{},
                              &log_),
               Error);
}

TEST_F(DirTargetTest, AVolumesChangeListReachesTheSinkAndItsFiguresTheResult) {
  test::WriteFile(dir_ / "src/disk.img", test::RandomBytes(64 * 4096, 2));
  test::SetMtimeNs(dir_ / "src/disk.img", 1700000000, 0);
  auto t = Open();
  int asked = 0;
  VolumeSpec disk{"disk", dir_ / "src/disk.img", true};
  disk.changes = [&](const std::string& rel, const std::string& path) {
    EXPECT_EQ(rel, "");
    EXPECT_EQ(path, dir_ / "src/disk.img");
    asked++;
    ChangeSet cs;
    cs.method = ChangeMethod::kSharedExtents;
    cs.changed = {{5 * 4096, 1}};
    return cs;
  };
  BackupResult first = BackupToTarget(t.get(), Env::Default(), {disk}, BackupOptions{}, &log_);
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(first.volumes[0].change_why, dir_ / "src/disk.img" + ": not in the mirror yet");
  EXPECT_EQ(first.volumes[0].change_method, "full-read");

  test::WriteFileAt(dir_ / "src/disk.img", 5 * 4096, "y");
  test::SetMtimeNs(dir_ / "src/disk.img", 1700000001, 0);
  BackupResult r = BackupToTarget(t.get(), Env::Default(), {disk}, BackupOptions{}, &log_);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(r.volumes[0].files_by_change_list, 1u);
  EXPECT_EQ(r.volumes[0].change_method, "shared-extents");
  EXPECT_EQ(r.volumes[0].change_why, "");
  EXPECT_EQ(r.volumes[0].bytes_read, 4096u);
  EXPECT_EQ(r.inplace[0].blocks_written, 1u);
  EXPECT_EQ(test::ReadFile(t->mirror_dir() + "/disk"), test::ReadFile(dir_ / "src/disk.img"));
}

// Crashes (as kill -9 would: every later step fails) at the nth syncfs of
// the file system holding `at`: in the sink, the barriers before the copies
// of changed files (1) and before the completion of the maps (2).
class CrashAtBarrierEnv final : public EnvWrapper {
 public:
  CrashAtBarrierEnv(std::string at, int n) : EnvWrapper(Env::Default()), at_(std::move(at)), n_(n) {}
  bool crashed = false;
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode m, mode_t perm) override {
    Check("open " + p);
    return EnvWrapper::OpenWrite(p, m, perm);
  }
  void Rename(const std::string& a, const std::string& b) override {
    Check("rename " + b);
    EnvWrapper::Rename(a, b);
  }
  void Remove(const std::string& p) override {
    Check("remove " + p);
    EnvWrapper::Remove(p);
  }
  void SyncFileSystem(const std::string& p) override {
    Check("syncfs " + p);
    if (p == at_ && --n_ == 0) {
      crashed = true;
      throw Error(ErrorKind::kCrash, "simulated crash at the barrier: syncfs " + p);
    }
    EnvWrapper::SyncFileSystem(p);
  }

 private:
  void Check(const std::string& what) {
    if (crashed) throw Error(ErrorKind::kCrash, "simulated crash: " + what + " after the crash");
  }
  std::string at_;
  int n_;
};

// A dir target keeps no history: its one point is the mirror, and a backup
// rewrites it in place, so a crash mid-backup leaves no point (the
// description goes first). What the crash may not leave is a map trusted
// for data the mirror lacks. Crashed at the barrier before the copies of
// the changed files (their maps invalidated, the new files written), then
// at the barrier between the writes of all the files and the completion of
// their maps: no point is listed, every map that reads as complete is true
// for its file, the maps of the files changed and new are not complete or
// not there (the next run does not trust them), and the next backup mends
// exactly those by
// a compare, commits the point, and restores and verifies bit-identical.
TEST_F(DirTargetTest, ACrashAtABarrierLeavesNoMapTrustedWronglyAndTheNextBackupMends) {
  test::WriteFile(dir_ / "src/disk.img", test::RandomBytes(8 * 4096, 30));
  int files = 20;
  for (int i = 0; i < files; i++)
    test::WriteFile(dir_ / ("src/tree/f" + std::to_string(i)), test::RandomBytes(3000 + i * 1000, 31 + i));
  auto t = Open();
  Backup(t.get());
  const std::string tree = t->mirror_dir() + "/tree";

  for (int barrier : {1, 2}) {
    SCOPED_TRACE("crash at barrier " + std::to_string(barrier));
    for (int i = barrier; i < 20; i += 4) {  // 5 files changed, 3 new
      test::WriteFileAt(dir_ / ("src/tree/f" + std::to_string(i)), 100, test::RandomBytes(500, 60 + i + barrier));
      test::SetMtimeNs(dir_ / ("src/tree/f" + std::to_string(i)), 1700000100 + barrier, i);
    }
    for (int k = 0; k < 3; k++, files++)
      test::WriteFile(dir_ / ("src/tree/f" + std::to_string(files)), test::RandomBytes(7000, 70 + files));

    CrashAtBarrierEnv crash(tree, barrier);
    try {
      BackupToTarget(t.get(), &crash,
                     {{"disk", dir_ / "src/disk.img", true}, {"tree", dir_ / "src/tree", true}}, BackupOptions{},
                     &log_);
      FAIL() << "no crash";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCrash) << e.what();
    }
    ASSERT_TRUE(crash.crashed);
    EXPECT_TRUE(t->ListPoints().empty()) << "a mirror being rewritten describes no point";
    size_t incomplete = 0;
    for (const auto& map : ListBlockmaps(Env::Default(), tree)) {
      Blockmap m;
      try {
        m = ReadBlockmap(Env::Default(), map);
      } catch (const Error&) {
        incomplete++;
        continue;
      }
      uint64_t blocks = 0, bytes = 0;
      EXPECT_EQ(CheckAgainstBlockmap(Env::Default(), tree + "/" + m.path, m, &blocks, &bytes),
                std::vector<std::string>{})
          << m.path;
    }
    // A small new file's map is made whole after the barrier: none yet.
    size_t missing = 0;
    for (int i = 0; i < files; i++)
      missing += !std::filesystem::exists(BlockmapPath(tree, "f" + std::to_string(i)));
    EXPECT_EQ(incomplete + missing, 8u) << "the maps of the 5 changed and 3 new files: incomplete, or none";

    BackupResult r = Backup(t.get());
    EXPECT_EQ(r.inplace[1].blockmaps_rebuilt, 8u);
    if (barrier == 2) {
      EXPECT_EQ(r.inplace[1].blocks_written, 0u) << "every file was written before the crash";
    }
    EXPECT_EQ(t->ListPoints(), std::vector<std::string>{"current"});
    test::TempDir out;
    RestoreFromTarget(t.get(), Env::Default(), "latest", "", out / "r", Overwrite::kRefuse, &log_);
    EXPECT_EQ(test::DescribeTree(out / "r/tree"), test::DescribeTree(dir_ / "src/tree"));
    EXPECT_EQ(test::ReadFile(out / "r/disk"), test::ReadFile(dir_ / "src/disk.img"));
    EXPECT_TRUE(VerifyTarget(t.get(), Env::Default(), &log_).ok());
    // And the run after that trusts every map again.
    BackupResult again = Backup(t.get());
    EXPECT_EQ(again.inplace[1].blockmaps_rebuilt, 0u);
    EXPECT_EQ(again.inplace[1].files_skipped, static_cast<uint64_t>(files));
  }
}

TEST_F(DirTargetTest, PruneKeepsTheOnlyPoint) {
  test::WriteFile(dir_ / "src/disk.img", "x");
  auto t = Open();
  Backup(t.get());
  RetentionPolicy keep1;
  keep1.keep_last = 1;
  TargetPruneResult r = PruneTarget(t.get(), keep1, false, &log_);
  EXPECT_TRUE(r.deleted.empty());
  EXPECT_EQ(t->ListPoints().size(), 1u);
  EXPECT_THROW(t->DeletePoint("current"), Error);
}

}  // namespace
}  // namespace vmback
