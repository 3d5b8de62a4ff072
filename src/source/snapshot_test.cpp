// Tests of source snapshots, each kind on the real thing where this machine
// allows it (as root): reflink on an XFS and btrfs snapshots on btrfs, each
// made on a loop device; reflink on a tmpfs for the "unsupported" error.
//
// LVM cannot run here (the kernel has no device-mapper), so the lvm tests put
// a stand-in first on PATH as "lvm": tests/helpers/fake_lvm, which treats a
// regular file as the LV, copies it for lvcreate -s, removes it for lvremove,
// records every call, and can fail for lack of space or "in use".
#include "source/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "helpers/loop_fs.h"
#include "helpers/test_util.h"
#include "os/env.h"
#include "helpers/fault_env.h"
#include "os/subprocess.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::SetMtimeNs;
using test::TempDir;
using test::WriteFile;
using test::LoopFs;
using test::WriteFileAt;

constexpr int64_t kT0 = 1700000000;

using test::Exec;
using test::RepoRoot;

std::string Describe(const std::vector<std::string>& argv, const RunResult& r) {
  return DescribeFailure(argv, r);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool HasSubstr(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

void MakeDir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << path << ": " << std::strerror(errno);
}

uint64_t FreeBytes(const std::string& path) {
  ::sync();
  struct statvfs v;
  if (::statvfs(path.c_str(), &v) != 0) return 0;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

// ---- kinds -------------------------------------------------------------------

TEST(SnapshotKindTest, ParseAndName) {
  for (auto k : {SnapshotKind::kNone, SnapshotKind::kLvm, SnapshotKind::kBtrfs,
                 SnapshotKind::kReflink}) {
    EXPECT_EQ(ParseSnapshotKind(SnapshotKindName(k)), k);
  }
  try {
    ParseSnapshotKind("zfs");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_TRUE(HasSubstr(e.what(), "zfs")) << e.what();
  }
}

// ---- none ----------------------------------------------------------------------

// A live read is no warning here: the job knows whether it was chosen.
TEST(NoneSnapshotTest, IsTheSourceAndSaysNothing) {
  TempDir tmp;
  WriteFile(tmp / "disk.img", "data");
  Logger log(LogLevel::kInfo, false);
  SnapshotSpec spec{"vm1", tmp / "disk.img", SnapshotKind::kNone, "10G", "r1"};
  auto snap = TakeSnapshot(Env::Default(), spec, &log);
  EXPECT_EQ(snap->path(), tmp / "disk.img");
  EXPECT_EQ(log.warnings(), 0);
  std::string record = snap->JournalRecord();
  EXPECT_EQ(record.find('\n'), std::string::npos);
  snap->Drop();
  snap.reset();
  DropLeftoverSnapshot(Env::Default(), record, "r1", &log);
  EXPECT_EQ(ReadFile(tmp / "disk.img"), "data");
  EXPECT_EQ(log.warnings(), 0);
}

// ---- journal records -------------------------------------------------------------

TEST(LeftoverSnapshotTest, BadRecordIsCorrupt) {
  Logger log(LogLevel::kInfo, false);
  for (std::string bad : {"", "not json", "{\"snapshot\":\"lvm\"}",
                          "{\"snapshot\":\"zfs\",\"volume\":\"v\",\"source\":\"/a\",\"target\":\"/b\"}"}) {
    try {
      DropLeftoverSnapshot(Env::Default(), bad, "r1", &log);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << bad << ": " << e.what();
    }
  }
}

// A journal is hostile: only a record TakeSnapshot of that run could have
// written is accepted.
TEST(LeftoverSnapshotTest, AcceptsOnlyRecordsVmbackWrites) {
  auto rec = [](const std::string& kind, const std::string& volume, const std::string& source,
                const std::string& target) {
    return nlohmann::json({{"snapshot", kind}, {"volume", volume}, {"source", source}, {"target", target}})
        .dump();
  };
  for (const auto& kind : {"lvm", "btrfs", "reflink"}) {
    SnapshotSpec spec{"disk", "/dev/vg0/disk", ParseSnapshotKind(kind), "1G", "r7"};
    EXPECT_NO_THROW(CheckLeftoverRecord(PlannedJournalRecord(spec), "r7")) << kind;
    try {
      CheckLeftoverRecord(PlannedJournalRecord(spec), "r8");  // another run's name
      ADD_FAILURE() << kind << ": another run's snapshot accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
      EXPECT_TRUE(HasSubstr(e.what(), "refusing")) << e.what();
    }
  }
  EXPECT_NO_THROW(CheckLeftoverRecord(rec("none", "v", "/a/b", "/a/b"), ""));
  // btrfs and reflink: inside a directory source, or beside the source (an
  // image file's reflink copy, and every snapshot in the journals of
  // earlier versions).
  for (const auto& kind : {"btrfs", "reflink"}) {
    EXPECT_NO_THROW(CheckLeftoverRecord(rec(kind, "disk", "/srv/img", "/srv/img/.vmback-disk-r7"), "r7")) << kind;
    EXPECT_NO_THROW(CheckLeftoverRecord(rec(kind, "disk", "/srv/img", "/srv/.vmback-disk-r7"), "r7")) << kind;
  }
  for (const std::string& bad : {
           rec("lvm", "disk", "/dev/vg0/disk", "/dev/vg0/root"),           // not vmback's name
           rec("lvm", "disk", "/dev/vg0/disk", "/dev/vg1/vmback-disk-r7"),  // not beside the source
           rec("lvm", "disk", "-/dev/vg0/disk", "-/dev/vg0/vmback-disk-r7"),
           rec("lvm", "disk", "dev/vg0/disk", "dev/vg0/vmback-disk-r7"),
           rec("lvm", "disk", "/dev/vg0/../vg0/disk", "/dev/vg0/../vg0/vmback-disk-r7"),
           rec("lvm", "disk", "/dev/vg0//disk", "/dev/vg0//vmback-disk-r7"),
           rec("lvm", "a/b", "/dev/vg0/disk", "/dev/vg0/vmback-a/b-r7"),
           rec("lvm", "", "/dev/vg0/disk", "/dev/vg0/vmback--r7"),
           rec("lvm", "dis k", "/dev/vg0/disk", "/dev/vg0/vmback-dis k-r7"),  // no LVM name
           rec("reflink", "disk", "/srv/img", "/srv/.vmback-disk-r7/.."),
           rec("reflink", "disk", "/srv/img", "/srv/precious"),
           rec("btrfs", "disk", "/srv/sv", "/.vmback-disk-r7"),
           rec("btrfs", "disk", "/srv/sv", "/srv/sv/sub/.vmback-disk-r7"),       // not at the top
           rec("reflink", "disk", "/srv/img", "/srv/img/.vmback-disk-r8"),      // another run's
           rec("reflink", "disk", "/srv/img", "/srv/img/.vmback-disk-r7/.."),
           rec("lvm", "disk", "/dev/vg0/disk", "/dev/vg0/disk/vmback-disk-r7"),  // an LV is never inside
       }) {
    try {
      CheckLeftoverRecord(bad, "r7");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << bad;
      EXPECT_TRUE(HasSubstr(e.what(), "refusing")) << e.what();
    }
  }
  // No run named by the journal: nothing is accepted.
  EXPECT_THROW(CheckLeftoverRecord(rec("lvm", "disk", "/dev/vg0/disk", "/dev/vg0/vmback-disk-"), ""), Error);
}

TEST(LeftoverSnapshotTest, ReflinkRemovesOnlyVmbackDirectories) {
  TempDir tmp;
  MakeDir(tmp / "precious");
  WriteFile(tmp / "precious/a", "a");
  Logger log(LogLevel::kInfo, false);
  std::string record = std::string("{\"snapshot\":\"reflink\",\"volume\":\"v\",\"source\":\"") +
                       (tmp / "x") + "\",\"target\":\"" + (tmp / "precious") + "\"}";
  EXPECT_THROW(DropLeftoverSnapshot(Env::Default(), record, "r1", &log), Error);
  EXPECT_EQ(ReadFile(tmp / "precious/a"), "a");
}

// ---- lvm (through the stand-in) ------------------------------------------------------

class LvmSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string fake = RepoRoot() + "/tests/helpers/fake_lvm";
    ASSERT_TRUE(fs::exists(fake)) << fake;
    // A wrapper named "lvm" (works even if fake_lvm lost its exec bit).
    WriteFile(bin_ / "lvm", "#!/bin/sh\nexec bash '" + fake + "' \"$@\"\n");
    ASSERT_EQ(::chmod((bin_ / "lvm").c_str(), 0755), 0);
    const char* path = std::getenv("PATH");
    old_path_ = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    ::setenv("PATH", (bin_.path() + ":" + old_path_).c_str(), 1);
    ::setenv("FAKE_LVM_LOG", (tmp_ / "lvm.log").c_str(), 1);
    ::unsetenv("FAKE_LVM_FREE");
    ::unsetenv("FAKE_LVM_BUSY_COUNT");
    SetLvremoveBackoffMs(1);

    MakeDir(tmp_ / "vg");
    lv_ = tmp_ / "vg/lv";
    content_ = RandomBytes(1 << 20, 7);
    WriteFile(lv_, content_);
  }
  void TearDown() override {
    ::setenv("PATH", old_path_.c_str(), 1);
    ::unsetenv("FAKE_LVM_LOG");
    ::unsetenv("FAKE_LVM_FREE");
    ::unsetenv("FAKE_LVM_BUSY_COUNT");
    SetLvremoveBackoffMs(200);
  }
  SnapshotSpec Spec() { return {"vm1", lv_, SnapshotKind::kLvm, "1G", "r1"}; }
  std::string SnapPath() { return tmp_ / "vg/vmback-vm1-r1"; }
  std::vector<std::string> Calls() {
    return fs::exists(tmp_ / "lvm.log") ? Lines(ReadFile(tmp_ / "lvm.log"))
                                        : std::vector<std::string>{};
  }
  std::string Create() { return "lvm lvcreate -s -n vmback-vm1-r1 -L 1G -- " + lv_; }
  std::string Remove() { return "lvm lvremove -f -- " + SnapPath(); }

  TempDir tmp_, bin_;
  std::string old_path_, lv_, content_;
  Logger log_{LogLevel::kInfo, false};
};

TEST_F(LvmSnapshotTest, CreatesAndDrops) {
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  EXPECT_EQ(snap->path(), SnapPath());
  EXPECT_EQ(ReadFile(snap->path()), content_);
  EXPECT_EQ(Calls(), std::vector<std::string>{Create()});
  snap->Drop();
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_EQ(Calls(), (std::vector<std::string>{Create(), Remove()}));
  snap.reset();  // dropped already: no second lvremove
  EXPECT_EQ(Calls().size(), 2u);
  EXPECT_EQ(ReadFile(lv_), content_);
  EXPECT_EQ(log_.warnings(), 0);
}

TEST_F(LvmSnapshotTest, RetriesLvremoveWhileInUse) {
  ::setenv("FAKE_LVM_BUSY_COUNT", "2", 1);
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  snap->Drop();
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_EQ(Calls(), (std::vector<std::string>{Create(), Remove(), Remove(), Remove()}));
}

TEST_F(LvmSnapshotTest, GivesUpWhenInUseTooLong) {
  ::setenv("FAKE_LVM_BUSY_COUNT", "100", 1);
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  try {
    snap->Drop();
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_TRUE(HasSubstr(m, "vm1")) << m;
    EXPECT_TRUE(HasSubstr(m, Remove())) << m;
    EXPECT_TRUE(HasSubstr(m, "Logical volume vg/vmback-vm1-r1 in use.")) << m;
  }
  EXPECT_TRUE(fs::exists(SnapPath()));
  // 1 + 5 retries.
  EXPECT_EQ(Calls().size(), 1u + 6u);
}

TEST_F(LvmSnapshotTest, InsufficientSpaceNamesTheVolume) {
  ::setenv("FAKE_LVM_FREE", "1048576", 1);
  try {
    TakeSnapshot(Env::Default(), Spec(), &log_);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << m;
    EXPECT_TRUE(HasSubstr(m, "volume vm1")) << m;
    EXPECT_TRUE(HasSubstr(m, Create())) << m;
    EXPECT_TRUE(HasSubstr(m, "insufficient free space")) << m;
  }
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_EQ(Calls(), std::vector<std::string>{Create()});
}

TEST_F(LvmSnapshotTest, RejectsNamesLvmCannotTake) {
  SnapshotSpec spec = Spec();
  spec.volume = "my vm";
  try {
    TakeSnapshot(Env::Default(), spec, &log_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
  }
  EXPECT_TRUE(Calls().empty());
}

TEST_F(LvmSnapshotTest, DestructorDrops) {
  {
    auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
    ASSERT_TRUE(fs::exists(SnapPath()));
  }
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_EQ(Calls(), (std::vector<std::string>{Create(), Remove()}));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LvmSnapshotTest, DestructorLogsFailureWithoutThrowing) {
  ::setenv("FAKE_LVM_BUSY_COUNT", "100", 1);
  {
    auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  }
  auto problems = log_.problems();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(HasSubstr(problems[0], "error: volume vm1")) << problems[0];
  EXPECT_TRUE(HasSubstr(problems[0], "in use")) << problems[0];
  EXPECT_TRUE(HasSubstr(problems[0], Remove())) << problems[0];
}

TEST_F(LvmSnapshotTest, DropLeftoverFromJournalRecord) {
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  std::string record = snap->JournalRecord();
  EXPECT_EQ(record.find('\n'), std::string::npos);
  (void)snap.release();  // a crash: the process never drops it
  ASSERT_TRUE(fs::exists(SnapPath()));

  DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);
  EXPECT_FALSE(fs::exists(SnapPath()));
  DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);  // gone already: fine
  EXPECT_EQ(Calls(), (std::vector<std::string>{Create(), Remove(), Remove()}));
  EXPECT_EQ(ReadFile(lv_), content_);
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LvmSnapshotTest, DropOfAVanishedSnapshotWarns) {
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  fs::remove(SnapPath());
  snap->Drop();
  EXPECT_EQ(log_.warnings(), 1);
}

// ---- file systems on loop devices ----------------------------------------------------

// Unmounts a mount a test made, also when the test fails half-way; declared
// after the directory it is in, so that it goes first.
struct UnmountAtEnd {
  std::string path;
  ~UnmountAtEnd() {
    RunResult r = Exec({"umount", path});
    if (r.exit_code != 0) r = Exec({"umount", "-l", path});
    EXPECT_EQ(r.exit_code, 0) << Describe({"umount", path}, r);
  }
};

class FsTest : public ::testing::Test {
 protected:
  void TearDown() override { fs_.Unmount(); }
  LoopFs fs_;
  Logger log_{LogLevel::kInfo, false};
};

// ---- reflink on XFS --------------------------------------------------------------------

class ReflinkXfsTest : public FsTest {
 protected:
  void SetUp() override {
    std::string why = fs_.Mount("xfs");
    if (!why.empty()) GTEST_SKIP() << "no XFS on a loop device: " << why;
  }
  SnapshotSpec Spec(const std::string& source) {
    return {"vm1", source, SnapshotKind::kReflink, "10G", "r1"};
  }
  // The snapshot of an image file in the file system's top directory:
  // beside it.
  std::string Hidden() { return fs_ / ".vmback-vm1-r1"; }
  // The snapshot of the directory dir: inside it.
  static std::string HiddenIn(const std::string& dir) { return dir + "/.vmback-vm1-r1"; }

  // A directory of images: sparse and dense files, a subdirectory, modes,
  // mtimes, a hard link and a symlink.
  void MakeImageDir(const std::string& dir) {
    MakeDir(dir, 0750);
    WriteFile(dir + "/a.img", RandomBytes(3 << 20, 1));
    WriteFileAt(dir + "/sparse.qcow2", 64 << 20, RandomBytes(5000, 2));
    WriteFileAt(dir + "/sparse.qcow2", 0, RandomBytes(70000, 3));
    MakeDir(dir + "/sub", 0700);
    WriteFile(dir + "/sub/b.raw", RandomBytes(100000, 4));
    ASSERT_EQ(::chmod((dir + "/sub/b.raw").c_str(), 0600), 0);
    WriteFile(dir + "/empty", "");
    ASSERT_EQ(::link((dir + "/a.img").c_str(), (dir + "/sub/a-link.img").c_str()), 0);
    ASSERT_EQ(::symlink("sub/b.raw", (dir + "/b-link").c_str()), 0);
    ASSERT_EQ(::chown((dir + "/sub/b.raw").c_str(), 1234, 5678), 0);
    SetMtimeNs(dir + "/a.img", kT0, 1);
    SetMtimeNs(dir + "/sparse.qcow2", kT0 + 1, 2);
    SetMtimeNs(dir + "/sub/b.raw", kT0 + 2, 3);
    SetMtimeNs(dir + "/b-link", kT0 + 3, 4);
    SetMtimeNs(dir + "/sub", kT0 + 4, 5);
  }
};

// Cloned range by range (64 MiB each): data across range boundaries, holes
// and an unaligned end come out identical, holes stay holes.
TEST_F(ReflinkXfsTest, ClonesALargeSparseFileRangeByRange) {
  std::string src = fs_ / "big.img";
  WriteFileAt(src, 0, RandomBytes(5000, 21));
  WriteFileAt(src, (64 << 20) - 3000, RandomBytes(6000, 22));  // across the first boundary
  WriteFileAt(src, 130 << 20, RandomBytes(70000, 23));
  WriteFileAt(src, (200 << 20) + 777, RandomBytes(1000, 24));  // an unaligned end
  auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
  EXPECT_EQ(fs::file_size(snap->path()), fs::file_size(src));
  EXPECT_TRUE(ReadFile(snap->path()) == ReadFile(src));
  struct stat st;
  ASSERT_EQ(::stat(snap->path().c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 8u << 20) << "holes filled in";
}

// In the freeze window the copy stops between ranges on a signal or at the
// deadline, and leaves nothing.
TEST_F(ReflinkXfsTest, StopsOnCancelAndAtTheDeadline) {
  std::string src = fs_ / "big.img";
  WriteFileAt(src, 200 << 20, "end");
  std::atomic<bool> cancel{true};
  RunLimits cancelled;
  cancelled.cancel = &cancel;
  RunLimits past;
  past.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  for (const RunLimits& limits : {cancelled, past}) {
    try {
      TakeSnapshot(Env::Default(), Spec(src), &log_, limits);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_TRUE(HasSubstr(m, "interrupted") || HasSubstr(m, "deadline")) << m;
      EXPECT_TRUE(HasSubstr(m, src)) << m;
    }
    EXPECT_FALSE(fs::exists(Hidden()));
  }
}

TEST_F(ReflinkXfsTest, ClonesAFile) {
  std::string src = fs_ / "disk.img";
  std::string content = RandomBytes(64 << 20, 11);
  WriteFile(src, content);
  SetMtimeNs(src, kT0, 42);
  uint64_t free_before = FreeBytes(fs_.mnt());

  auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
  EXPECT_EQ(snap->path(), Hidden() + "/disk.img");
  EXPECT_EQ(ReadFile(snap->path()), content);
  EXPECT_EQ(DescribeTree(snap->path()), DescribeTree(src));
  // Shares the blocks: cloning 64 MiB costs next to nothing.
  uint64_t free_after = FreeBytes(fs_.mnt());
  EXPECT_LT(free_before - std::min(free_before, free_after), 8u << 20)
      << free_before << " -> " << free_after;

  // Independent of later writes to the source.
  WriteFileAt(src, 4096, "changed after the snapshot");
  WriteFileAt(src, content.size(), "grown");
  EXPECT_EQ(ReadFile(snap->path()), content);

  snap->Drop();
  EXPECT_FALSE(fs::exists(Hidden()));
  EXPECT_TRUE(fs::exists(src));
  EXPECT_TRUE(log_.problems().empty());
}

// A directory's snapshot is made inside it (where it is sure to be in the
// same file system) and does not hold itself.
TEST_F(ReflinkXfsTest, ClonesADirectoryOfFiles) {
  std::string src = fs_ / "images";
  MakeImageDir(src);
  std::string before = DescribeTree(src, false);
  const std::string snap_dir = HiddenIn(src);

  auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
  EXPECT_EQ(snap->path(), snap_dir);
  EXPECT_EQ(snap->JournalRecord(), PlannedJournalRecord(Spec(src)));
  EXPECT_EQ(SnapshotPath(Spec(src)), snap_dir);
  EXPECT_FALSE(fs::exists(Hidden())) << "made beside the source";
  EXPECT_EQ(DescribeTree(snap->path(), false), before);
  struct stat st;
  ASSERT_EQ(::stat(snap_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);

  std::string a = ReadFile(src + "/a.img");
  WriteFileAt(src + "/a.img", 0, "changed after the snapshot");
  WriteFile(src + "/sub/b.raw", "rewritten");
  WriteFile(src + "/new.img", "new");
  EXPECT_EQ(ReadFile(snap_dir + "/a.img"), a);
  EXPECT_EQ(ReadFile(snap_dir + "/sub/a-link.img"), a);
  EXPECT_EQ(ReadFile(snap_dir + "/sub/b.raw"), RandomBytes(100000, 4));
  EXPECT_FALSE(fs::exists(snap_dir + "/new.img"));

  snap->Drop();
  EXPECT_FALSE(fs::exists(snap_dir));
  EXPECT_TRUE(fs::exists(src + "/sub/b.raw"));
  EXPECT_TRUE(log_.problems().empty());
}

// The source directory is the mount point of the file system itself (the
// usual /var/lib/libvirt/images on its own LV): its parent is another file
// system, where no reflink copy can be made.
TEST_F(ReflinkXfsTest, SourceThatIsAMountPoint) {
  const std::string src = fs_.mnt();
  WriteFile(src + "/a.img", RandomBytes(1 << 20, 31));
  MakeDir(src + "/sub");
  WriteFile(src + "/sub/b.img", RandomBytes(5000, 32));
  std::string before = DescribeTree(src, false);
  struct stat mnt, parent;
  ASSERT_EQ(::stat(src.c_str(), &mnt), 0);
  ASSERT_EQ(::stat(DirName(src).c_str(), &parent), 0);
  ASSERT_NE(mnt.st_dev, parent.st_dev) << "setup: not a mount point";

  auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
  EXPECT_EQ(snap->path(), HiddenIn(src));
  EXPECT_EQ(DescribeTree(snap->path(), false), before);
  EXPECT_FALSE(fs::exists(DirName(src) + "/.vmback-vm1-r1"));
  snap->Drop();
  EXPECT_FALSE(fs::exists(HiddenIn(src)));
  EXPECT_EQ(DescribeTree(src, false), before);
  EXPECT_TRUE(log_.problems().empty());
}

// Entries at the top named as vmback names its snapshots (a leftover whose
// journal was lost, another volume's snapshot of the same directory) are
// not copied into the snapshot, and are left where they are.
TEST_F(ReflinkXfsTest, LeavesOutOtherSnapshotsInTheSource) {
  std::string src = fs_ / "images";
  MakeImageDir(src);
  MakeDir(src + "/.vmback-vm1-r0", 0700);
  WriteFile(src + "/.vmback-vm1-r0/a.img", "an older run's");
  MakeDir(src + "/sub/.vmback-vm1-r0");  // not at the top: the volume's own

  auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
  EXPECT_FALSE(fs::exists(snap->path() + "/.vmback-vm1-r0"));
  EXPECT_TRUE(fs::exists(snap->path() + "/sub/.vmback-vm1-r0"));
  snap->Drop();
  EXPECT_EQ(ReadFile(src + "/.vmback-vm1-r0/a.img"), "an older run's");
  EXPECT_TRUE(log_.problems().empty());
}

// An image file that is a mount point of its own (a bind mount) would get
// its snapshot directory in another file system: a clear error, and
// nothing left.
TEST_F(ReflinkXfsTest, FileThatIsAMountPointIsAClearError) {
  TempDir other;
  const std::string file = fs_ / "disk.img";
  WriteFile(file, RandomBytes(100000, 33));
  const std::string src = other / "disk.img";
  WriteFile(src, "");
  std::vector<std::string> argv = {"mount", "--bind", file, src};
  RunResult r = Exec(argv);
  ASSERT_EQ(r.exit_code, 0) << Describe(argv, r);
  UnmountAtEnd bind{src};
  try {
    TakeSnapshot(Env::Default(), Spec(src), &log_);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << m;
    EXPECT_TRUE(HasSubstr(m, other / ".vmback-vm1-r1 is not on the file system of " + src)) << m;
    EXPECT_TRUE(HasSubstr(m, "mount point")) << m;
  }
  EXPECT_FALSE(fs::exists(other / ".vmback-vm1-r1"));
}

TEST_F(ReflinkXfsTest, DestructorDrops) {
  std::string src = fs_ / "images";
  MakeImageDir(src);
  {
    auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
    ASSERT_TRUE(fs::exists(HiddenIn(src) + "/sub/b.raw"));
  }
  EXPECT_FALSE(fs::exists(HiddenIn(src)));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(ReflinkXfsTest, DropLeftoverFromJournalRecord) {
  std::string file = fs_ / "disk.img";
  WriteFile(file, RandomBytes(100000, 5));
  std::string dir = fs_ / "images";
  MakeImageDir(dir);

  for (const std::string& src : {file, dir}) {
    const std::string where = src == file ? Hidden() : HiddenIn(dir);
    auto snap = TakeSnapshot(Env::Default(), Spec(src), &log_);
    std::string record = snap->JournalRecord();
    EXPECT_EQ(record.find('\n'), std::string::npos);
    EXPECT_TRUE(HasSubstr(record, "\"target\":\"" + where + "\"")) << record;
    (void)snap.release();  // a crash: the process never drops it
    ASSERT_TRUE(fs::exists(where)) << src;

    DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);
    EXPECT_FALSE(fs::exists(where)) << src;
    DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);  // gone already: fine
    EXPECT_TRUE(fs::exists(src));
  }
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(ReflinkXfsTest, RefusesAnExistingSnapshotDirectory) {
  std::string src = fs_ / "disk.img";
  WriteFile(src, "x");
  MakeDir(Hidden());
  WriteFile(Hidden() + "/keep", "k");
  EXPECT_THROW(TakeSnapshot(Env::Default(), Spec(src), &log_), Error);
  EXPECT_EQ(ReadFile(Hidden() + "/keep"), "k");
}

// A symlink planted where a directory's snapshot goes (inside it) is never
// followed: the run is refused and the place it points to stays untouched.
TEST_F(ReflinkXfsTest, RefusesASymlinkWhereTheSnapshotGoes) {
  std::string src = fs_ / "images";
  MakeImageDir(src);
  MakeDir(fs_ / "elsewhere");
  ASSERT_EQ(::symlink((fs_ / "elsewhere").c_str(), HiddenIn(src).c_str()), 0);
  try {
    TakeSnapshot(Env::Default(), Spec(src), &log_);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(HasSubstr(e.what(), HiddenIn(src) + " exists already")) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(fs_ / "elsewhere"));
  EXPECT_TRUE(fs::is_symlink(HiddenIn(src)));
}

// Every step of the directory copy goes through the Env: each write step
// (mkdir, clone, hard link, symlink) and each metadata step (chown, chmod,
// times) failing in turn leaves no half snapshot behind, the source as it
// was, and an error that names the path of the failing step.
TEST_F(ReflinkXfsTest, AFailingStepOfTheDirectoryCopyLeavesNothing) {
  // MakeImageDir's shape, with small files: DescribeTree reads them all.
  std::string src = fs_ / "images";
  MakeDir(src, 0750);
  WriteFile(src + "/a.img", RandomBytes(70000, 1));
  WriteFileAt(src + "/sparse.qcow2", 1 << 20, RandomBytes(5000, 2));
  MakeDir(src + "/sub", 0700);
  WriteFile(src + "/sub/b.raw", RandomBytes(1000, 4));
  WriteFile(src + "/empty", "");
  ASSERT_EQ(::link((src + "/a.img").c_str(), (src + "/sub/a-link.img").c_str()), 0);
  ASSERT_EQ(::symlink("sub/b.raw", (src + "/b-link").c_str()), 0);
  ASSERT_EQ(::chown((src + "/sub/b.raw").c_str(), 1234, 5678), 0);
  SetMtimeNs(src + "/sub", kT0, 5);
  const std::string before = DescribeTree(src, false);
  const std::string snap_dir = HiddenIn(src);
  int64_t writes = 0, metadata = 0;
  {
    FaultEnv counting(Env::Default(), FaultPlan{});
    TakeSnapshot(&counting, Spec(src), &log_)->Drop();
    writes = counting.write_steps();
    metadata = counting.metadata_steps();
  }
  // mkdir of the snapshot and of sub, 5 clones (a hard link is linked),
  // the link, the symlink; chown, chmod and times of each file and
  // directory, chown and times of the symlink.
  EXPECT_EQ(writes, 2 + 4 + 1 + 1);
  EXPECT_EQ(metadata, 3 * 6 + 2);
  auto check = [&](const FaultPlan& plan, const std::string& step) {
    FaultEnv env(Env::Default(), plan);
    try {
      TakeSnapshot(&env, Spec(src), &log_);
      ADD_FAILURE() << step << ": no error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_TRUE(HasSubstr(m, "(injected)")) << step << ": " << m;
      EXPECT_TRUE(HasSubstr(m, snap_dir)) << step << ": " << m;
    }
    EXPECT_FALSE(fs::exists(snap_dir)) << step << ": a half snapshot is left";
    EXPECT_EQ(DescribeTree(src, false), before) << step;
  };
  for (int64_t n = 1; n <= writes; n++) {
    FaultPlan plan;
    plan.fail_write_at = n;
    plan.write_errno = EIO;
    check(plan, "write step " + std::to_string(n));
  }
  for (int64_t n = 1; n <= metadata; n++) {
    FaultPlan plan;
    plan.fail_metadata_at = n;
    check(plan, "metadata step " + std::to_string(n));
  }
}

// ---- reflink where it is not supported --------------------------------------------------

class ReflinkTmpfsTest : public FsTest {
 protected:
  void SetUp() override {
    std::string why = fs_.MountTmpfs();
    if (!why.empty()) GTEST_SKIP() << "cannot mount a tmpfs: " << why;
  }
};

TEST_F(ReflinkTmpfsTest, UnsupportedIsAClearError) {
  for (std::string name : {"disk.img", "images"}) {
    std::string src = fs_ / name;
    if (name == "images") {
      MakeDir(src);
      WriteFile(src + "/a.img", "a");
    } else {
      WriteFile(src, "a");
    }
    SnapshotSpec spec{"vm1", src, SnapshotKind::kReflink, "10G", "r1"};
    try {
      TakeSnapshot(Env::Default(), spec, &log_);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::kConfig) << m;
      EXPECT_TRUE(HasSubstr(m, "volume vm1")) << m;
      EXPECT_TRUE(HasSubstr(m, "reflink")) << m;
      EXPECT_TRUE(HasSubstr(m, src)) << m;
      EXPECT_TRUE(HasSubstr(m, "\"lvm\"")) << m;
      EXPECT_TRUE(HasSubstr(m, "\"btrfs\"")) << m;
      EXPECT_TRUE(HasSubstr(m, "\"none\"")) << m;
    }
    EXPECT_FALSE(fs::exists(fs_ / ".vmback-vm1-r1")) << name;
  }
}

// ---- btrfs ------------------------------------------------------------------------------

class BtrfsSnapshotTest : public FsTest {
 protected:
  void SetUp() override {
    std::string why = fs_.Mount("btrfs");
    if (!why.empty()) GTEST_SKIP() << "no btrfs on a loop device: " << why;
    std::vector<std::string> argv = {"btrfs", "subvolume", "create", fs_ / "vms"};
    RunResult r = Exec(argv);
    ASSERT_EQ(r.exit_code, 0) << Describe(argv, r);
    WriteFile(fs_ / "vms/a.img", RandomBytes(2 << 20, 21));
    MakeDir(fs_ / "vms/sub");
    WriteFile(fs_ / "vms/sub/b.img", RandomBytes(10000, 22));
  }
  SnapshotSpec Spec() { return {"vm1", fs_ / "vms", SnapshotKind::kBtrfs, "10G", "r1"}; }
  // Inside the source subvolume.
  std::string SnapPath() { return fs_ / "vms/.vmback-vm1-r1"; }
};

TEST_F(BtrfsSnapshotTest, ReadOnlySnapshotWithTheContent) {
  std::string before = DescribeTree(fs_ / "vms", false);
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  EXPECT_EQ(snap->path(), SnapPath());
  EXPECT_EQ(SnapshotPath(Spec()), SnapPath());
  EXPECT_EQ(snap->JournalRecord(), PlannedJournalRecord(Spec()));
  EXPECT_FALSE(fs::exists(fs_ / ".vmback-vm1-r1")) << "made beside the source";
  EXPECT_EQ(DescribeTree(snap->path(), false), before) << "the snapshot holds itself";

  int fd = ::open((SnapPath() + "/new").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) ::close(fd);
  std::vector<std::string> argv = {"btrfs", "property", "get", "-ts", SnapPath(), "ro"};
  RunResult r = Exec(argv);
  EXPECT_EQ(r.exit_code, 0) << Describe(argv, r);
  EXPECT_TRUE(HasSubstr(r.out, "ro=true")) << r.out;

  WriteFileAt(fs_ / "vms/a.img", 0, "changed after the snapshot");
  EXPECT_EQ(ReadFile(SnapPath() + "/a.img"), RandomBytes(2 << 20, 21));

  snap->Drop();
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_TRUE(fs::exists(fs_ / "vms/sub/b.img"));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(BtrfsSnapshotTest, DestructorDrops) {
  {
    auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
    ASSERT_TRUE(fs::exists(SnapPath() + "/a.img"));
  }
  EXPECT_FALSE(fs::exists(SnapPath()));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(BtrfsSnapshotTest, DropLeftoverFromJournalRecord) {
  auto snap = TakeSnapshot(Env::Default(), Spec(), &log_);
  std::string record = snap->JournalRecord();
  EXPECT_EQ(record.find('\n'), std::string::npos);
  (void)snap.release();  // a crash: the process never drops it
  ASSERT_TRUE(fs::exists(SnapPath()));

  DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);
  EXPECT_FALSE(fs::exists(SnapPath()));
  DropLeftoverSnapshot(Env::Default(), record, "r1", &log_);  // gone already: fine
  EXPECT_TRUE(fs::exists(fs_ / "vms/a.img"));
  EXPECT_TRUE(log_.problems().empty());
}

// The source subvolume is mounted on a directory of its own (mount -o
// subvol=), whose parent is another file system: the snapshot is made
// inside it. A later snapshot shows an earlier one as an empty directory.
TEST_F(BtrfsSnapshotTest, SubvolumeMountedOnItsOwn) {
  TempDir other;
  const std::string src = other / "vms";
  MakeDir(src);
  RunResult dev = Exec({"findmnt", "-n", "-o", "SOURCE", "--", fs_.mnt()});
  ASSERT_EQ(dev.exit_code, 0) << dev.err;
  std::string device = dev.out.substr(0, dev.out.find('\n'));
  std::vector<std::string> argv = {"mount", "-t", "btrfs", "-o", "subvol=vms", device, src};
  RunResult r = Exec(argv);
  ASSERT_EQ(r.exit_code, 0) << Describe(argv, r);
  UnmountAtEnd subvol{src};
  std::string before = DescribeTree(src, false);
  SnapshotSpec spec{"vm1", src, SnapshotKind::kBtrfs, "10G", "r1"};
  try {
    auto snap = TakeSnapshot(Env::Default(), spec, &log_);
    EXPECT_EQ(snap->path(), src + "/.vmback-vm1-r1");
    EXPECT_EQ(DescribeTree(snap->path(), false), before);
    EXPECT_EQ(ReadFile(snap->path() + "/a.img"), RandomBytes(2 << 20, 21));
    spec.run_id = "r2";
    auto later = TakeSnapshot(Env::Default(), spec, &log_);
    EXPECT_TRUE(fs::is_empty(later->path() + "/.vmback-vm1-r1"));
    later->Drop();
    snap->Drop();
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  EXPECT_FALSE(fs::exists(src + "/.vmback-vm1-r1"));
  EXPECT_FALSE(fs::exists(src + "/.vmback-vm1-r2"));
  EXPECT_EQ(DescribeTree(src, false), before);
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(BtrfsSnapshotTest, FailureNamesTheCommandAndItsError) {
  SnapshotSpec spec = Spec();
  spec.source = fs_ / "vms/sub";  // a plain directory, not a subvolume
  try {
    TakeSnapshot(Env::Default(), spec, &log_);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_TRUE(HasSubstr(m, "volume vm1")) << m;
    EXPECT_TRUE(HasSubstr(m, "btrfs subvolume snapshot -r -- " + spec.source)) << m;
    EXPECT_TRUE(HasSubstr(m, "failed (exit")) << m;
  }
}

}  // namespace
}  // namespace vmback
