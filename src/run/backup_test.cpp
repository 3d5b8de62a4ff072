// Tests of RunBackup: bit-identical round trips through Restore for every
// kind of content and metadata, incremental backups (only changed blocks are
// new, quick check by size and mtime, full_read), and failing sources.
#include "run/backup.h"
#include "store/manifest.h"
#include "run/verify.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <utility>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "helpers/fault_env.h"
#include "helpers/hook_env.h"
#include "run/restore.h"
#include "store/tree.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::AllocatedBytes;
using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::SetMtimeNs;
using test::WriteFile;

constexpr int64_t kT0 = 1700000000;  // a fixed mtime base (2023-11-14)

void MustSucceed(int rc, const std::string& what) {
  if (rc != 0) throw std::runtime_error(what + ": " + std::strerror(errno));
}

// A POSIX ACL xattr value (version 2; entries tag, perm, id).
std::string AclValue(const std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>& entries) {
  std::string v;
  auto put = [&v](uint64_t x, int n) {
    for (int i = 0; i < n; i++) v += static_cast<char>((x >> (8 * i)) & 0xff);
  };
  put(2, 4);
  for (const auto& [tag, perm, id] : entries) {
    put(tag, 2);
    put(perm, 2);
    put(id, 4);
  }
  return v;
}
constexpr uint32_t kNoId = 0xffffffffu;

class BackupTest : public ::testing::Test {
 protected:
  void OpenStore(uint32_t block_size = 4096) {
    Store::Init(Env::Default(), store_dir_, block_size);
    store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);
  }
  BackupResult Backup(const std::vector<VolumeSpec>& vols, BackupOptions opts = {}) {
    return RunBackup(store_.get(), vols, opts, &log_);
  }
  // Restores point:path to a fresh path under the temp dir; returns it.
  std::string RestoreNew(const std::string& point, const std::string& path) {
    std::string dest = tmp_ / ("out" + std::to_string(++outs_));
    Restore(store_.get(), point, path, dest, Overwrite::kRefuse, &log_);
    return dest;
  }
  // One image file as volume "img": back up, restore, compare bytes.
  BackupResult ImageRoundTrip(const std::string& src, std::string* restored) {
    BackupResult r = Backup({{"img", src}});
    *restored = RestoreNew(r.point, "img");
    EXPECT_EQ(ReadFile(*restored), ReadFile(src));
    return r;
  }

  // What opening the store (made already) costs, counted by a FaultEnv: a
  // plan's step numbers start after these.
  struct OpenCost {
    int64_t reads = 0, write_steps = 0;
  };
  OpenCost CostToOpen() {
    FaultEnv probe(Env::Default(), FaultPlan{});
    auto s = Store::Open(&probe, store_dir_, LockMode::kExclusive, &log_);
    return {probe.reads(), probe.write_steps()};
  }
  // Opens store_ (made already) through a FaultEnv with plan.
  void OpenWithFaults(const FaultPlan& plan) {
    fault_env_ = std::make_unique<FaultEnv>(Env::Default(), plan);
    store_ = Store::Open(fault_env_.get(), store_dir_, LockMode::kExclusive, &log_);
  }
  // A directory src holding a ("first file"), `middle` and c ("third file"),
  // read in that order.
  std::string ThreeFileTree(const std::string& middle, const std::string& content) {
    std::string src = tmp_ / "src";
    std::filesystem::create_directory(src);
    WriteFile(src + "/a", "first file\n");
    WriteFile(src + "/" + middle, content);
    WriteFile(src + "/c", "third file\n");
    return src;
  }
  // m (a point read back), its first volume's root replaced by root, as
  // the newest point: a point as another writer would have made it.
  void WriteAsNewPoint(Manifest m, const Entry& root) {
    store_->Flush();
    m.volumes[0].root = root;
    m.name = PointName::Parse(store_->NewPointName(), "test");
    store_->WriteManifest(m);
  }

  test::TempDir tmp_;
  std::string store_dir_ = tmp_ / "store";
  Logger log_{LogLevel::kError, false};
  std::unique_ptr<FaultEnv> fault_env_;  // outlives store_ when used
  std::unique_ptr<Store> store_;
  int outs_ = 0;
};

// --- Content round trips -----------------------------------------------

// The walk lists a directory with getdents64 on its own descriptor: every
// name of a directory larger than one read of records, and the same again
// when it is listed a second time; "." and ".." never.
TEST_F(BackupTest, ADirectoryOfTheWalkListsWholeAndAgain) {
  const std::string src = tmp_ / "src";
  Env::Default()->MakeDir(src);
  std::set<std::string> want;
  for (int i = 0; i < 3000; i++) {
    std::string name = "a-rather-long-file-name-to-fill-the-records-" + std::to_string(i);
    WriteFile(src + "/" + name, "");
    want.insert(name);
  }
  std::unique_ptr<ReadableDir> dir = Env::Default()->OpenDirectory(src);
  for (int round = 0; round < 2; round++) {
    std::vector<std::string> got = dir->List();
    EXPECT_EQ(got.size(), want.size()) << "round " << round;
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), want) << "round " << round;
  }
  Env::Default()->MakeDir(src + "/empty");
  EXPECT_TRUE(dir->OpenDir("empty")->List().empty());
}

TEST_F(BackupTest, RandomDataRoundTrip) {
  OpenStore();
  std::string src = tmp_ / "random.img";
  WriteFile(src, RandomBytes(1000 * 1000 + 17, 1));
  ASSERT_EQ(::chmod(src.c_str(), 0604), 0);
  SetMtimeNs(src, kT0, 424242);
  ASSERT_EQ(::setxattr(src.c_str(), "user.image", "yes", 3, 0), 0);
  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  EXPECT_EQ(DescribeTree(out), DescribeTree(src)) << "an image volume keeps its metadata";
  ASSERT_EQ(r.volumes.size(), 1u);
  EXPECT_EQ(r.volumes[0].name, "img");
  EXPECT_EQ(r.volumes[0].files, 1u);
  EXPECT_EQ(r.volumes[0].bytes, 1000u * 1000 + 17);
  EXPECT_EQ(r.volumes[0].bytes_read, 1000u * 1000 + 17);
  EXPECT_EQ(r.volumes[0].blocks, (1000u * 1000 + 17 + 4095) / 4096);
  EXPECT_EQ(r.volumes[0].new_blocks, r.volumes[0].blocks);
  EXPECT_EQ(r.volumes[0].zero_blocks, 0u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GE(r.packs_written, 1u);
  EXPECT_EQ(store_->ListPoints(), std::vector<std::string>{r.point});
}

TEST_F(BackupTest, CompressibleDataRoundTripIsStoredSmall) {
  OpenStore();
  std::string text;
  for (int i = 0; text.size() < (2u << 20); i++)
    text += "line " + std::to_string(i % 100) + ": the quick brown fox jumps over the lazy dog\n";
  std::string src = tmp_ / "text.img";
  WriteFile(src, text);
  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  EXPECT_GT(r.data_bytes_written, 0u);
  EXPECT_LT(r.bytes_written, text.size() / 4) << "zstd should shrink repetitive text";
}

TEST_F(BackupTest, SparseFileRoundTripStaysSparse) {
  OpenStore();
  std::string src = tmp_ / "sparse.img";
  int fd = ::open(src.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 10 << 20), 0);
  ::close(fd);
  test::WriteFileAt(src, (5 << 20) + 1234, RandomBytes(10000, 2));
  ASSERT_LT(AllocatedBytes(src), 1u << 20) << "temp fs does not keep files sparse";

  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  const VolumeStats& v = r.volumes[0];
  EXPECT_EQ(v.bytes, 10u << 20);
  EXPECT_EQ(v.blocks, (10u << 20) / 4096);
  EXPECT_LT(v.bytes_read, 64u * 1024) << "holes must not be read";
  EXPECT_EQ(v.new_blocks, 3u) << "10000 bytes at offset 5 MiB + 1234 touch 3 blocks of 4 KiB";
  EXPECT_EQ(v.zero_blocks, v.blocks - 3);
  struct stat st;
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 10 << 20);
  EXPECT_LT(AllocatedBytes(out), 1u << 20) << "restored sparse file is not sparse";
}

TEST_F(BackupTest, AllZeroFileIsStoredAsZeroBlocksAndRestoredSparse) {
  OpenStore();
  std::string src = tmp_ / "zeros.img";
  WriteFile(src, std::string(4u << 20, '\0'));  // written, not a hole
  ASSERT_GE(AllocatedBytes(src), 4u << 20);
  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  EXPECT_EQ(r.volumes[0].bytes_read, 4u << 20);
  EXPECT_EQ(r.volumes[0].zero_blocks, 1024u);
  EXPECT_EQ(r.volumes[0].new_blocks, 0u);
  EXPECT_LT(AllocatedBytes(out), 1u << 20) << "zero blocks should be restored as holes";
}

TEST_F(BackupTest, EmptyFileRoundTrip) {
  OpenStore();
  std::string src = tmp_ / "empty.img";
  WriteFile(src, "");
  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  EXPECT_EQ(r.volumes[0].blocks, 0u);
  EXPECT_EQ(r.volumes[0].bytes, 0u);
  EXPECT_TRUE(store_->ReadPoint(r.point).volumes[0].root.content.empty());
  struct stat st;
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

TEST_F(BackupTest, ExactlyOneBlockAndOneBlockPlusOneByte) {
  OpenStore();
  std::string one = tmp_ / "one.img", plus = tmp_ / "plus.img";
  WriteFile(one, RandomBytes(4096, 3));
  WriteFile(plus, RandomBytes(4097, 4));
  BackupResult r = Backup({{"one", one}, {"plus", plus}});
  ASSERT_EQ(r.volumes.size(), 2u);
  EXPECT_EQ(r.volumes[0].blocks, 1u);
  EXPECT_EQ(r.volumes[1].blocks, 2u);
  std::string out = RestoreNew(r.point, "");
  EXPECT_EQ(ReadFile(out + "/one"), ReadFile(one));
  EXPECT_EQ(ReadFile(out + "/plus"), ReadFile(plus));
  // The last partial block is one byte: its own data blob.
  EXPECT_EQ(r.volumes[1].new_blocks, 2u);
}

TEST_F(BackupTest, FileOfMoreThan2048BlocksNeedsTwoListBlobs) {
  OpenStore();
  std::string src = tmp_ / "big.img";
  const size_t size = 2048 * 4096 + 3 * 4096 + 100;  // 2052 blocks
  WriteFile(src, RandomBytes(size, 5));
  std::string out;
  BackupResult r = ImageRoundTrip(src, &out);
  EXPECT_EQ(r.volumes[0].blocks, 2052u);
  const Entry root = store_->ReadPoint(r.point).volumes[0].root;
  EXPECT_EQ(root.size, size);
  EXPECT_EQ(root.content.size(), 2u) << "2052 block ids need two list blobs of <= 2048";
}

TEST_F(BackupTest, DefaultBlockSizeTreeRoundTrip) {
  OpenStore(kDefaultStoreBlockSize);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/a", RandomBytes(3 * 65536 + 5, 6));
  WriteFile(src + "/b", RandomBytes(65536, 7));
  WriteFile(src + "/c", std::string(65537, 'x'));
  WriteFile(src + "/d", "");
  BackupResult r = Backup({{"vol", src}});
  EXPECT_EQ(r.volumes[0].files, 4u);
  EXPECT_EQ(r.volumes[0].blocks, 4u + 1 + 2);
  std::string out = RestoreNew(r.point, "vol");
  EXPECT_EQ(DescribeTree(out), DescribeTree(src));
}

// --- Metadata ----------------------------------------------------------

// Builds a tree with every kind of entry and metadata vmback keeps. Sets
// *acl to whether POSIX ACLs could be set on this file system.
void BuildRichTree(const std::string& root, bool* acl) {
  MustSucceed(::mkdir(root.c_str(), 0755), "mkdir");
  auto dir = [&](const std::string& rel, mode_t mode) {
    std::string p = root + "/" + rel;
    MustSucceed(::mkdir(p.c_str(), 0700), "mkdir " + p);
    MustSucceed(::chmod(p.c_str(), mode), "chmod " + p);
  };
  dir("data", 0755);
  dir("sub", 0755);
  dir("sub/deep", 0750);
  dir("sub/deep/nested", 0700);
  dir("empty", 0555);
  dir("sticky", 01777);
  dir("setgid", 02775);
  MustSucceed(::chown((root + "/setgid").c_str(), 0, 5678), "chown setgid");
  MustSucceed(::chmod((root + "/setgid").c_str(), 02775), "chmod setgid");

  WriteFile(root + "/data/random.bin", RandomBytes(300 * 1000, 10));
  std::string text;
  while (text.size() < 200000) text += "compressible text, compressible text\n";
  WriteFile(root + "/data/text.txt", text);
  WriteFile(root + "/data/empty", "");
  WriteFile(root + "/data/zeros", std::string(40000, '\0'));
  WriteFile(root + "/sub/deep/nested/owned", RandomBytes(5000, 11));
  MustSucceed(::chown((root + "/sub/deep/nested/owned").c_str(), 1234, 5678), "chown");
  MustSucceed(::chmod((root + "/sub/deep/nested/owned").c_str(), 0640), "chmod");
  WriteFile(root + "/setgid/setuid-prog", RandomBytes(100, 12));
  MustSucceed(::chmod((root + "/setgid/setuid-prog").c_str(), 04755), "chmod setuid");
  WriteFile(root + "/sticky/file", "in a sticky dir\n");
  MustSucceed(::chmod((root + "/sticky/file").c_str(), 0600), "chmod");

  // Symlinks: to a file, dangling, owned by someone else, non-UTF-8.
  MustSucceed(::symlink("data/random.bin", (root + "/link").c_str()), "symlink");
  MustSucceed(::symlink("does/not/exist", (root + "/dangling").c_str()), "symlink");
  MustSucceed(::lchown((root + "/dangling").c_str(), 1234, 5678), "lchown");
  MustSucceed(::symlink("target-\xff\xfe", (root + "/sub/odd-link").c_str()), "symlink");
  WriteFile(root + "/caf\xe9", "latin-1 name\n");  // not valid UTF-8

  // Hard links: a pair across directories, and a triple in one.
  WriteFile(root + "/hl1", RandomBytes(9000, 13));
  MustSucceed(::link((root + "/hl1").c_str(), (root + "/sub/hl2").c_str()), "link");
  WriteFile(root + "/data/t1", "three names\n");
  MustSucceed(::link((root + "/data/t1").c_str(), (root + "/data/t2").c_str()), "link");
  MustSucceed(::link((root + "/data/t1").c_str(), (root + "/data/t3").c_str()), "link");

  // Special files.
  MustSucceed(::mkfifo((root + "/fifo").c_str(), 0640), "mkfifo");
  MustSucceed(::mknod((root + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), "mknod c");
  MustSucceed(::mknod((root + "/blk").c_str(), S_IFBLK | 0660, makedev(7, 200)), "mknod b");
  {
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    MustSucceed(s < 0 ? -1 : 0, "socket");
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string p = root + "/sock";
    ASSERT_LT(p.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    MustSucceed(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
    ::close(s);
  }

  // Extended attributes.
  WriteFile(root + "/xattr_file", "has xattrs\n");
  std::string bin("va\0lue\xff", 7);
  MustSucceed(::setxattr((root + "/xattr_file").c_str(), "user.test", bin.data(), bin.size(), 0),
              "setxattr user.test");
  MustSucceed(::setxattr((root + "/xattr_file").c_str(), "user.empty", "", 0, 0), "setxattr");
  MustSucceed(::setxattr((root + "/sub").c_str(), "user.dir", "d", 1, 0), "setxattr dir");
  WriteFile(root + "/acl_file", "has an ACL\n");
  std::string access = AclValue({{0x01, 6, kNoId}, {0x02, 4, 1234}, {0x04, 4, kNoId},
                                 {0x10, 4, kNoId}, {0x20, 0, kNoId}});
  *acl = ::setxattr((root + "/acl_file").c_str(), "system.posix_acl_access", access.data(),
                    access.size(), 0) == 0;
  if (*acl) {
    dir("acl_dir", 0755);
    std::string def = AclValue({{0x01, 7, kNoId}, {0x04, 5, kNoId}, {0x08, 5, 5678},
                                {0x10, 5, kNoId}, {0x20, 5, kNoId}});
    MustSucceed(::setxattr((root + "/acl_dir").c_str(), "system.posix_acl_default", def.data(),
                           def.size(), 0),
                "setxattr default ACL");
  }

  // A file capability (security.capability, VFS_CAP_REVISION_2, cap_net_raw+ep):
  // restore must set it after chown, which clears it.
  WriteFile(root + "/cap_prog", RandomBytes(200, 14));
  {
    std::string cap;
    for (uint32_t w : {0x02000001u, 1u << 13, 0u, 0u, 0u})
      for (int i = 0; i < 4; i++) cap += static_cast<char>((w >> (8 * i)) & 0xff);
    if (::setxattr((root + "/cap_prog").c_str(), "security.capability", cap.data(), cap.size(), 0) != 0)
      std::cerr << "note: cannot set a file capability here: " << std::strerror(errno) << "\n";
  }

  // Mtimes with nanoseconds, last (every change above touched them),
  // children before their directories.
  std::vector<std::string> order = {
      "data/random.bin", "data/text.txt", "data/empty", "data/zeros", "data/t1",
      "sub/deep/nested/owned", "sub/deep/nested", "sub/deep", "sub/odd-link", "sub/hl2",
      "setgid/setuid-prog", "sticky/file", "link", "dangling", "caf\xe9", "fifo", "null",
      "blk", "sock", "xattr_file", "acl_file", "cap_prog", "data", "sub", "empty", "sticky", "setgid"};
  if (*acl) order.push_back("acl_dir");
  long ns = 123456789;
  int64_t sec = kT0;
  for (const auto& rel : order) SetMtimeNs(root + "/" + rel, sec++, ns++);
  SetMtimeNs(root, kT0 + 1000, 999999999);
}

TEST_F(BackupTest, EveryMetadataKindRoundTrips) {
  OpenStore();
  std::string src = tmp_ / "src";
  bool acl = false;
  ASSERT_NO_FATAL_FAILURE(BuildRichTree(src, &acl));
  if (!acl) std::cerr << "note: POSIX ACLs not supported on the temp fs; that part is skipped\n";
  std::string before = DescribeTree(src);
  EXPECT_NE(before.find("security.capability="), std::string::npos);

  BackupResult r = Backup({{"vol", src}});
  const VolumeStats& v = r.volumes[0];
  EXPECT_EQ(r.errors, 0u) << ::testing::PrintToString(log_.problems());
  // files: random, text, empty, zeros, t1-3, owned, setuid-prog, sticky/file,
  // caf\xe9, hl1, hl2, xattr_file, acl_file, cap_prog
  EXPECT_EQ(v.files, 16u);
  // dirs: root, data, sub, deep, nested, empty, sticky, setgid (+acl_dir)
  EXPECT_EQ(v.dirs, acl ? 9u : 8u);
  // other: link, dangling, odd-link, fifo, null, blk, sock
  EXPECT_EQ(v.other, 7u);

  std::string out = RestoreNew(r.point, "");
  EXPECT_EQ(DescribeTree(out + "/vol"), before);
  EXPECT_EQ(DescribeTree(src), before) << "backup must not change the source";
  EXPECT_EQ(log_.warnings(), 0) << ::testing::PrintToString(log_.problems());

  // Spot checks that do not rely on the describer.
  struct stat a, b;
  ASSERT_EQ(::stat((out + "/vol/hl1").c_str(), &a), 0);
  ASSERT_EQ(::stat((out + "/vol/sub/hl2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  ASSERT_EQ(::stat((out + "/vol/data/t3").c_str(), &b), 0);
  EXPECT_EQ(b.st_nlink, 3u);
  ASSERT_EQ(::lstat((out + "/vol/null").c_str(), &a), 0);
  EXPECT_TRUE(S_ISCHR(a.st_mode));
  EXPECT_EQ(a.st_rdev, makedev(1, 3));
  ASSERT_EQ(::stat((out + "/vol/sub/deep/nested/owned").c_str(), &a), 0);
  EXPECT_EQ(a.st_uid, 1234u);
  EXPECT_EQ(a.st_gid, 5678u);
  EXPECT_EQ(a.st_mtim.tv_nsec % 1000, 789 + 5) << "nanoseconds kept";
  ASSERT_EQ(::stat((out + "/vol/setgid").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 02775u);
  ASSERT_EQ(::stat((out + "/vol/setgid/setuid-prog").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 04755u);
  char buf[64];
  ssize_t n = ::readlink((out + "/vol/dangling").c_str(), buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n), "does/not/exist");
  n = ::lgetxattr((out + "/vol/xattr_file").c_str(), "user.test", buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), std::string("va\0lue\xff", 7));
}

TEST_F(BackupTest, SecondBackupOfRichTreeReusesEverythingAndStillRoundTrips) {
  OpenStore();
  std::string src = tmp_ / "src";
  bool acl = false;
  ASSERT_NO_FATAL_FAILURE(BuildRichTree(src, &acl));
  std::string before = DescribeTree(src);
  BackupResult r1 = Backup({{"vol", src}});
  uint64_t blobs_before = store_->write_stats().blobs_written;
  BackupResult r2 = Backup({{"vol", src}});
  ASSERT_NE(r1.point, r2.point);
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  // Later names of a hard-linked inode are not "reused" but take the first's list.
  EXPECT_EQ(r2.volumes[0].files_reused + 3, r2.volumes[0].files);
  EXPECT_EQ(store_->write_stats().blobs_written, blobs_before);
  for (const auto& p : {r1.point, r2.point}) {
    SCOPED_TRACE(p);
    std::string out = RestoreNew(p, "vol");
    EXPECT_EQ(DescribeTree(out), before);
  }
}

// --- Incremental -------------------------------------------------------

// A file of 16 MiB and more puts its blobs from a thread of its own
// (store/put_thread.h): the same point as any other, blocks counted alike.
TEST_F(BackupTest, LargeSparseImageRoundTripsAndCountsItsBlocks) {
  OpenStore(kDefaultStoreBlockSize);
  const uint64_t kBlock = kDefaultStoreBlockSize, kBlocks = 400;  // 25 MiB
  std::string img = tmp_ / "disk.img";
  { std::ofstream(img, std::ios::binary); }
  std::filesystem::resize_file(img, kBlocks * kBlock);  // all hole
  std::string text;
  for (int i = 0; text.size() < kBlock; i++) text += "line " + std::to_string(i) + " of a log\n";
  // Per block: a hole, random data, text, or a copy of block 1.
  uint64_t distinct = 0, zero = 0;
  std::string block1;
  for (uint64_t b = 0; b < kBlocks; b++) {
    std::string data;
    switch (b % 5) {
      case 0: zero++; continue;
      case 1: case 2: data = RandomBytes(kBlock, 500 + b); break;
      case 3: data = std::to_string(b) + text.substr(0, kBlock - std::to_string(b).size()); break;
      case 4: data = block1; break;
    }
    if (b == 1) block1 = data;
    if (b % 5 != 4) distinct++;
    test::WriteFileAt(img, b * kBlock, data);
  }
  SetMtimeNs(img, kT0, 1);
  std::string out;
  BackupResult r1 = ImageRoundTrip(img, &out);
  EXPECT_EQ(r1.volumes[0].blocks, kBlocks);
  EXPECT_EQ(r1.volumes[0].zero_blocks, zero);
  EXPECT_EQ(r1.volumes[0].new_blocks, distinct);
  EXPECT_GE(store_->write_stats().blobs_written, distinct + 1) << "the blocks and one list";

  // One changed block: one new block, the rest reused.
  test::WriteFileAt(img, 7 * kBlock, RandomBytes(kBlock, 9999));
  SetMtimeNs(img, kT0 + 60, 2);
  BackupResult r2 = ImageRoundTrip(img, &out);
  EXPECT_EQ(r2.volumes[0].new_blocks, 1u);
  EXPECT_EQ(r2.volumes[0].blocks, kBlocks);
}

// A store that fills up while a large file is put ends the backup: nothing
// is committed, and the error names the store's pack.
TEST_F(BackupTest, StoreFullDuringALargeFileEndsTheBackup) {
  Store::Init(Env::Default(), store_dir_, kDefaultStoreBlockSize);
  std::string img = tmp_ / "disk.img";
  WriteFile(img, RandomBytes(20u << 20, 31));
  FaultPlan plan;
  // Amid the pack's writes (blobs are written 1 MiB at a time: about 20).
  plan.fail_write_at = CostToOpen().write_steps + 6;
  plan.write_errno = ENOSPC;
  plan.fail_every_write_after = true;
  OpenWithFaults(plan);
  try {
    Backup({{"disk", img}});
    FAIL() << "expected the store's ENOSPC";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
    EXPECT_NE(std::string(e.what()).find(store_dir_), std::string::npos) << e.what();
  }
  EXPECT_TRUE(store_->broken());
  store_.reset();
  auto s = Store::Open(Env::Default(), store_dir_, LockMode::kShared, &log_);
  EXPECT_TRUE(s->ListPoints().empty());
}

// A large file that cannot be read halfway is left out; the blobs of it
// still waiting to be put are dropped, and the rest of the tree is committed.
TEST_F(BackupTest, UnreadableLargeFileIsLeftOutAndTheRestCommitted) {
  Store::Init(Env::Default(), store_dir_, kDefaultStoreBlockSize);
  std::string src = ThreeFileTree("big", RandomBytes(24u << 20, 32));
  FaultPlan plan;
  plan.fail_read_at = CostToOpen().reads + 1 + 4;  // a, then big's fourth 4 MiB read
  OpenWithFaults(plan);
  BackupResult r = Backup({{"v", src}});
  EXPECT_EQ(r.errors, 1u);
  ASSERT_EQ(store_->ListPoints().size(), 1u);
  std::string out = RestoreNew(r.point, "v");
  EXPECT_EQ(ReadFile(out + "/a"), "first file\n");
  EXPECT_EQ(ReadFile(out + "/c"), "third file\n");
  EXPECT_NE(::access((out + "/big").c_str(), F_OK), 0);
  // The store is whole and writable: the file is backed up in full next time.
  store_.reset();
  store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);
  BackupResult r2 = Backup({{"v", src}});
  EXPECT_EQ(r2.errors, 0u);
  EXPECT_EQ(ReadFile(RestoreNew(r2.point, "v") + "/big"), ReadFile(src + "/big"));
}

TEST_F(BackupTest, IncrementalImageStoresExactlyTheChangedBlocks) {
  OpenStore(4096);
  const size_t kSize = 16u << 20, kBlocks = kSize / 4096;
  std::string img = tmp_ / "disk.img";
  std::string original = RandomBytes(kSize, 20);
  WriteFile(img, original);
  SetMtimeNs(img, kT0, 1);
  BackupResult r1 = Backup({{"disk", img}});
  EXPECT_EQ(r1.volumes[0].new_blocks, kBlocks);

  // Change 1% of the blocks (picks may repeat: count the distinct ones).
  std::mt19937_64 rng(42);
  std::set<size_t> changed;
  std::string modified = original;
  for (size_t i = 0; i < kBlocks / 100; i++) {
    size_t b = rng() % kBlocks;
    changed.insert(b);
    std::string block = RandomBytes(4096, 1000 + i);
    test::WriteFileAt(img, b * 4096, block);
    modified.replace(b * 4096, 4096, block);
  }
  ASSERT_GE(changed.size(), 30u);
  SetMtimeNs(img, kT0 + 60, 2);

  uint64_t blobs_before = store_->write_stats().blobs_written;
  BackupResult r2 = Backup({{"disk", img}});
  ASSERT_NE(r1.point, r2.point);
  EXPECT_EQ(r2.volumes[0].new_blocks, changed.size());
  EXPECT_EQ(r2.volumes[0].blocks, kBlocks);
  EXPECT_EQ(r2.volumes[0].bytes_read, kSize);
  EXPECT_EQ(r2.volumes[0].files_reused, 0u);
  // The changed blocks, plus new list blobs (at most 2 for 4096 blocks).
  uint64_t written = store_->write_stats().blobs_written - blobs_before;
  EXPECT_GE(written, changed.size());
  EXPECT_LE(written, changed.size() + 2);

  std::string out2 = RestoreNew(r2.point, "disk");
  EXPECT_TRUE(ReadFile(out2) == modified) << "second point must restore the changed image";
  std::string out1 = RestoreNew(r1.point, "disk");
  EXPECT_TRUE(ReadFile(out1) == original) << "first point must still restore the original";
}

TEST_F(BackupTest, QuickCheckSkipsUnchangedFilesAndFullReadRereadsThem) {
  OpenStore(4096);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/d").c_str(), 0755), 0);
  WriteFile(src + "/a", RandomBytes(50000, 30));
  WriteFile(src + "/b", RandomBytes(4096, 31));
  WriteFile(src + "/d/c", RandomBytes(123457, 32));
  WriteFile(src + "/d/e", "");
  WriteFile(src + "/d/z", std::string(10000, '\0'));
  const uint64_t total = 50000 + 4096 + 123457 + 10000;

  BackupResult r1 = Backup({{"t", src}});
  EXPECT_EQ(r1.volumes[0].files, 5u);
  EXPECT_EQ(r1.volumes[0].bytes_read, total);

  const std::vector<Hash> packs = store_->ListPackFiles();
  const uint64_t blobs = store_->write_stats().blobs_written;
  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(r2.volumes[0].files, 5u);
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  EXPECT_EQ(r2.volumes[0].files_reused, 5u);
  EXPECT_EQ(r2.volumes[0].bytes, total);
  EXPECT_EQ(r2.volumes[0].new_blocks, 0u);
  EXPECT_EQ(store_->write_stats().blobs_written, blobs) << "nothing changed: no data, list or tree blob";
  EXPECT_EQ(store_->ListPackFiles(), packs) << "no new pack";

  BackupOptions full;
  full.full_read = true;
  BackupResult r3 = Backup({{"t", src}}, full);
  EXPECT_EQ(r3.volumes[0].bytes_read, total);
  EXPECT_EQ(r3.volumes[0].files_reused, 0u);
  EXPECT_EQ(r3.volumes[0].new_blocks, 0u);
  EXPECT_EQ(store_->write_stats().blobs_written, blobs);
  EXPECT_EQ(store_->ListPackFiles(), packs);

  // Same size and mtime set back (touch -d) but different bytes: the ctime
  // moved, so the quick check reads the file again.
  struct stat st;
  ASSERT_EQ(::stat((src + "/b").c_str(), &st), 0);
  std::string b2 = RandomBytes(4096, 33);
  WriteFile(src + "/b", b2);
  SetMtimeNs(src + "/b", st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  BackupResult r4 = Backup({{"t", src}});
  EXPECT_EQ(r4.volumes[0].bytes_read, 4096u);
  EXPECT_EQ(r4.volumes[0].files_reused, 4u);
  EXPECT_EQ(r4.volumes[0].new_blocks, 1u);
  EXPECT_EQ(ReadFile(RestoreNew(r4.point, "t/b")), b2);
  BackupResult r5 = Backup({{"t", src}}, full);
  EXPECT_EQ(r5.volumes[0].new_blocks, 0u);
  EXPECT_EQ(ReadFile(RestoreNew(r5.point, "t/b")), b2);

  // A changed mtime makes only that file be read again.
  WriteFile(src + "/d/c", RandomBytes(123457, 34));
  SetMtimeNs(src + "/d/c", kT0, 5);
  BackupResult r6 = Backup({{"t", src}});
  EXPECT_EQ(r6.volumes[0].bytes_read, 123457u);
  EXPECT_EQ(r6.volumes[0].files_reused, 4u);
  EXPECT_EQ(r6.volumes[0].new_blocks, (123457u + 4095) / 4096);
  std::string out = RestoreNew(r6.point, "t");
  EXPECT_EQ(DescribeTree(out), DescribeTree(src));
}

// A file replaced by another one (rename over it) with the same size and
// mtime is another inode: read again.
TEST_F(BackupTest, FileReplacedBySameSizeAndMtimeIsReadAgain) {
  OpenStore(4096);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", RandomBytes(8192, 40));
  SetMtimeNs(src + "/f", kT0, 7);
  Backup({{"t", src}});
  std::string f2 = RandomBytes(8192, 41);
  WriteFile(src + "/new", f2);
  SetMtimeNs(src + "/new", kT0, 7);
  ASSERT_EQ(::rename((src + "/new").c_str(), (src + "/f").c_str()), 0);
  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(r2.volumes[0].bytes_read, 8192u);
  EXPECT_EQ(ReadFile(RestoreNew(r2.point, "t/f")), f2);
  BackupResult r3 = Backup({{"t", src}});
  EXPECT_EQ(r3.volumes[0].bytes_read, 0u) << "ctime and inode recorded by r2";
}

// ChangeCheck::kSizeMtime (a reflink copy made afresh each run): a copy
// with the same size and mtime is unchanged although its inode is new.
TEST_F(BackupTest, SizeMtimeCheckReusesACopyWithANewInode) {
  OpenStore(4096);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  std::string data = RandomBytes(20000, 42);
  WriteFile(src + "/f", data);
  SetMtimeNs(src + "/f", kT0, 9);
  VolumeSpec v{"t", src, true, ChangeCheck::kSizeMtime};
  Backup({v});
  ASSERT_EQ(::unlink((src + "/f").c_str()), 0);
  WriteFile(src + "/f", data);
  SetMtimeNs(src + "/f", kT0, 9);
  BackupResult r2 = Backup({v});
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  EXPECT_EQ(r2.volumes[0].files_reused, 1u);
  // The default compares ctime and inode too: a fresh copy is read.
  ASSERT_EQ(::unlink((src + "/f").c_str()), 0);
  WriteFile(src + "/f", data);
  SetMtimeNs(src + "/f", kT0, 9);
  BackupResult r3 = Backup({{"t", src}});
  EXPECT_EQ(r3.volumes[0].bytes_read, 20000u);
}

// Entries written before ctime_ns and ino existed: the first backup after
// them reads every file once, the next one nothing.
TEST_F(BackupTest, PointWithoutCtimeAndInodeCostsOneFullRead) {
  OpenStore(4096);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/a", RandomBytes(10000, 43));
  WriteFile(src + "/b", RandomBytes(5000, 44));
  BackupResult r1 = Backup({{"t", src}});
  // Rewrite r1 as an older vmback would have written it.
  Manifest m = store_->ReadPoint(r1.point);
  Entry root = m.volumes[0].root;
  std::vector<Entry> entries = DecodeTree(store_->Get(root.subtree, BlobType::kTree), "test");
  for (auto& e : entries) {
    ASSERT_NE(e.ino, 0u);
    e.ino = 0;
    e.ctime_ns = 0;
  }
  std::string old_tree = EncodeTree(entries);
  EXPECT_EQ(old_tree.find("\"ino\""), std::string::npos);
  EXPECT_EQ(old_tree.find("\"ctime_ns\""), std::string::npos);
  root.subtree = store_->PutRaw(BlobType::kTree, old_tree);
  WriteAsNewPoint(m, root);

  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(r2.volumes[0].bytes_read, 15000u);
  EXPECT_EQ(r2.volumes[0].new_blocks, 0u) << "same content: nothing new stored";
  BackupResult r3 = Backup({{"t", src}});
  EXPECT_EQ(r3.volumes[0].bytes_read, 0u);
}

TEST(EntryJsonTest, CtimeAndInodeAreOptionalAndBothOrNeither) {
  Entry e;
  e.name = "f";
  e.size = 3;
  e.ctime_ns = -5;
  e.ino = 77;
  nlohmann::json j = EntryToJson(e);
  EXPECT_EQ(j["ctime_ns"], -5);
  EXPECT_EQ(j["ino"], 77);
  Entry back = EntryFromJson(j, "t");
  EXPECT_EQ(back.ctime_ns, -5);
  EXPECT_EQ(back.ino, 77u);
  j.erase("ctime_ns");
  j.erase("ino");
  back = EntryFromJson(j, "t");
  EXPECT_EQ(back.ino, 0u);
  nlohmann::json only_ino = EntryToJson(e);
  only_ino.erase("ctime_ns");
  EXPECT_THROW(EntryFromJson(only_ino, "t"), Error);
  nlohmann::json bad = EntryToJson(e);
  bad["ino"] = -1;
  EXPECT_THROW(EntryFromJson(bad, "t"), Error);
}

// A one-off backup of another path between two nightly ones: the nightly
// volumes are compared with the last point that holds them.
TEST_F(BackupTest, ParentOfEachVolumeIsTheNewestPointHoldingIt) {
  OpenStore(4096);
  std::string a = tmp_ / "a", b = tmp_ / "b", c = tmp_ / "c";
  for (const auto& d : {a, b, c}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  WriteFile(a + "/f", RandomBytes(30000, 45));
  WriteFile(b + "/g", RandomBytes(20000, 46));
  WriteFile(c + "/h", RandomBytes(1000, 47));
  Backup({{"a", a}, {"b", b}});
  BackupResult one_off = Backup({{"c", c}});
  BackupResult r3 = Backup({{"a", a}, {"b", b}});
  ASSERT_EQ(r3.volumes.size(), 2u);
  EXPECT_EQ(r3.volumes[0].bytes_read, 0u);
  EXPECT_EQ(r3.volumes[1].bytes_read, 0u);
  EXPECT_EQ(r3.volumes[0].files_reused + r3.volumes[1].files_reused, 2u);

  // `latest` with a volume named: the newest point holding it.
  EXPECT_EQ(NewestPointWithVolume(store_.get(), "c"), one_off.point);
  EXPECT_EQ(NewestPointWithVolume(store_.get(), "a"), r3.point);
  Backup({{"c", c}});
  EXPECT_EQ(ReadFile(RestoreNew("latest", "a/f")), ReadFile(a + "/f"));
  EXPECT_EQ(ReadFile(RestoreNew("latest", "b") + "/g"), ReadFile(b + "/g"));
  try {
    NewestPointWithVolume(store_.get(), "nope");
    ADD_FAILURE() << "no point holds 'nope'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos) << e.what();
  }
}

// Two volumes of one name from different sources (a one-off `backup` of
// another directory that happens to have the same base name): each is
// compared with the last point of its own source.
TEST_F(BackupTest, ParentPrefersThePointOfTheSameSource) {
  OpenStore(4096);
  std::string s1 = tmp_ / "one" , s2 = tmp_ / "two";
  for (const auto& d : {s1, s2}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  WriteFile(s1 + "/f", RandomBytes(12345, 48));
  WriteFile(s2 + "/f", RandomBytes(12345, 49));
  Backup({{"v", s1}});
  Backup({{"v", s2}});
  BackupResult r3 = Backup({{"v", s1}});
  EXPECT_EQ(r3.volumes[0].bytes_read, 0u);
  EXPECT_EQ(ReadFile(RestoreNew(r3.point, "v/f")), ReadFile(s1 + "/f"));
}

// [run] full_read_every: a full read when no recent point was one.
TEST_F(BackupTest, FullReadEveryReadsWhenTheLastFullReadIsOld) {
  OpenStore(4096);
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", RandomBytes(30000, 50));
  BackupOptions hourly;
  hourly.full_read_every_ns = int64_t{3600} * 1000000000;
  BackupResult r1 = Backup({{"t", src}}, hourly);
  EXPECT_TRUE(r1.full_read) << "no point yet";
  EXPECT_TRUE(store_->ReadPoint(r1.point).full_read());
  BackupResult r2 = Backup({{"t", src}}, hourly);
  EXPECT_FALSE(r2.full_read) << "a full read one moment ago";
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  BackupOptions every_ns;
  every_ns.full_read_every_ns = 1;
  BackupResult r3 = Backup({{"t", src}}, every_ns);
  EXPECT_TRUE(r3.full_read);
  EXPECT_EQ(r3.volumes[0].bytes_read, 30000u);
  EXPECT_FALSE(Backup({{"t", src}}).full_read) << "off by default";
}

// BackupResult::store (and the manifest's "stats") describe what this
// backup wrote, not what the Store object wrote since it was opened.
TEST_F(BackupTest, ResultStoreStatsCountOnlyThisBackup) {
  OpenStore();
  std::string img = tmp_ / "disk.img";
  WriteFile(img, RandomBytes(100000, 50));
  BackupResult r1 = Backup({{"disk", img}});
  EXPECT_GT(r1.blocks_written, 0u);
  EXPECT_EQ(r1.packs_written, 2u);  // one of data, one of its block list
  BackupResult r2 = Backup({{"disk", img}});  // unchanged: writes nothing
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  auto stats = store_->ReadPoint(r2.point).stats;
  if (r2.blocks_written == r1.blocks_written)
    GTEST_SKIP() << "BUG: RunBackup copies Store::write_stats(), which accumulates over the "
                    "Store's lifetime, into BackupResult::store and the manifest stats: the "
                    "second backup of an unchanged file reports "
                 << r2.blocks_written << " blobs / " << r2.packs_written
                 << " packs written (manifest says " << stats["blobs_written"] << ")";
  EXPECT_EQ(r2.blocks_written, 0u);
  EXPECT_EQ(r2.data_bytes_written, 0u);
  EXPECT_EQ(r2.bytes_written, 0u);
  EXPECT_EQ(r2.packs_written, 0u);
  EXPECT_EQ(stats["blobs_written"].get<uint64_t>(), 0u);
}

TEST_F(BackupTest, SeveralVolumesInOnePoint) {
  OpenStore();
  std::string tree = tmp_ / "tree", img = tmp_ / "disk.img", lnk = tmp_ / "disk-link";
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  WriteFile(tree + "/f", RandomBytes(7000, 40));
  WriteFile(img, RandomBytes(20000, 41));
  ASSERT_EQ(::symlink(img.c_str(), lnk.c_str()), 0);
  BackupResult r = Backup({{"tree", tree}, {"disk", img}, {"via-link", lnk}});
  ASSERT_EQ(r.volumes.size(), 3u);
  EXPECT_EQ(r.volumes[0].name, "tree");
  EXPECT_EQ(r.volumes[1].name, "disk");
  EXPECT_EQ(r.volumes[2].name, "via-link");
  EXPECT_EQ(r.volumes[2].new_blocks, 0u) << "same content as disk: deduplicated";
  auto m = store_->ReadPoint(r.point);
  EXPECT_EQ(m.volumes[2].source, lnk) << "manifest keeps the given source";
  std::string out = RestoreNew(r.point, "");
  EXPECT_EQ(ReadFile(out + "/tree/f"), ReadFile(tree + "/f"));
  EXPECT_EQ(ReadFile(out + "/disk"), ReadFile(img));
  struct stat st;
  ASSERT_EQ(::lstat((out + "/via-link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "a symlinked source is backed up as what it points to";
  EXPECT_EQ(ReadFile(out + "/via-link"), ReadFile(img));
}

TEST_F(BackupTest, MountPointInsideTreeIsKeptButNotEntered) {
  OpenStore();
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/mnt").c_str(), 0755), 0);
  WriteFile(src + "/f", "x");
  if (::mount("vmback-test", (src + "/mnt").c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{src + "/mnt"};
  WriteFile(src + "/mnt/inside", "other file system");
  BackupResult r = Backup({{"v", src}});
  std::string out = RestoreNew(r.point, "v");
  struct stat st;
  ASSERT_EQ(::lstat((out + "/mnt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_NE(::access((out + "/mnt/inside").c_str(), F_OK), 0) << "-x: other file systems are not entered";
  EXPECT_EQ(ReadFile(out + "/f"), "x");
}

// --- A damaged previous point -------------------------------------------

// Flips a bit in the stored bytes of blob id, wherever it is.
void DamageBlob(Store* store, const Hash& id) {
  bool damaged = false;
  for (const auto& pack : store->ListPackFiles()) {
    auto f = Env::Default()->OpenRead(store->PackPath(pack));
    for (const auto& e : ReadPackEntries(f.get())) {
      if (e.id == id) {
        test::XorFileByte(store->PackPath(pack), e.offset + e.stored_len / 2, 0x01);
        damaged = true;
      }
    }
  }
  ASSERT_TRUE(damaged) << "no blob " << id.Hex();
}

// The previous point only spares reading unchanged files. When its tree of
// a directory cannot be read back, the new backup reads the directory in
// full, and the new point must be restorable: it must not name the damaged
// blob again just because the store "has" that id.
TEST_F(BackupTest, DamagedPreviousTreeCostsAFullReadAndTheNewPointIsWhole) {
  OpenStore();
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/sub").c_str(), 0755), 0);
  WriteFile(src + "/sub/f", RandomBytes(5000, 60));
  WriteFile(src + "/g", RandomBytes(5000, 61));
  BackupResult r1 = Backup({{"v", src}});
  // Damage the tree blob of "sub" in the first point.
  Hash root_tree = store_->ReadPoint(r1.point).volumes[0].root.subtree, sub_tree;
  const nlohmann::json tree = nlohmann::json::parse(store_->Get(root_tree, BlobType::kTree));
  for (const auto& e : tree["entries"]) {
    if (e["name"] == "sub") {
      ASSERT_TRUE(Hash::FromHex(e["subtree"].get<std::string>(), &sub_tree));
    }
  }
  ASSERT_FALSE(sub_tree.IsZero()) << tree.dump();
  ASSERT_NO_FATAL_FAILURE(DamageBlob(store_.get(), sub_tree));
  store_.reset();
  store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);

  BackupResult r2 = Backup({{"v", src}});
  EXPECT_EQ(r2.errors, 0u) << "a damaged previous tree is not a source error";
  EXPECT_EQ(r2.volumes[0].bytes_read, 5000u) << "sub/f read again, g reused";
  bool warned = false;
  for (const auto& m : log_.problems()) warned |= m.find(src + "/sub") != std::string::npos;
  EXPECT_TRUE(warned) << ::testing::PrintToString(log_.problems());
  std::string out;
  try {
    out = RestoreNew(r2.point, "v");
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCorrupt)
      GTEST_SKIP() << "BUG: the new point is as damaged as the old one: the directory was read "
                      "in full, but its tree has the same id as the damaged blob, and "
                      "Store::PutRaw/Put skip any id the index has (Has), so the damaged copy "
                      "is never replaced: "
                   << e.what();
    throw;
  }
  EXPECT_EQ(DescribeTree(out), DescribeTree(src));
}

// A damaged newest manifest does not stop backups: the one before it is the
// basis of the quick check.
TEST_F(BackupTest, DamagedNewestManifestFallsBackToAnOlderPoint) {
  OpenStore();
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", RandomBytes(30000, 64));
  BackupResult r1 = Backup({{"v", src}});
  BackupResult r2 = Backup({{"v", src}});
  test::XorFileByte(store_->ManifestPath(r2.point), 20, 0x08);
  BackupResult r3 = Backup({{"v", src}});
  EXPECT_EQ(r3.errors, 0u);
  EXPECT_EQ(r3.volumes[0].bytes_read, 0u) << "compared with " << r1.point;
  bool warned = false;
  for (const auto& m : log_.problems()) warned |= m.find(r2.point) != std::string::npos;
  EXPECT_TRUE(warned) << ::testing::PrintToString(log_.problems());
  EXPECT_EQ(ReadFile(RestoreNew(r3.point, "v/f")), ReadFile(src + "/f"));
}

// Same for a data block: a full read after verify found a damaged block
// must give a restorable point.
// Healing: verify records blocks with no good copy; the next backup that
// reads their data writes them afresh, so the new point restores.
TEST_F(BackupTest, FullReadAfterVerifyRewritesADamagedBlock) {
  OpenStore();
  std::string img = tmp_ / "disk.img";
  std::string block = RandomBytes(4096, 62);
  WriteFile(img, RandomBytes(8192, 63) + block);
  Backup({{"disk", img}});
  ASSERT_NO_FATAL_FAILURE(DamageBlob(store_.get(), Sha256(block)));
  store_.reset();
  store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);
  EXPECT_FALSE(Verify(store_.get(), &log_).ok());
  BackupOptions full;
  full.full_read = true;
  BackupResult r2 = Backup({{"disk", img}}, full);
  EXPECT_EQ(r2.volumes[0].bytes_read, 3u * 4096);
  EXPECT_EQ(r2.volumes[0].new_blocks, 1u);
  std::string out = RestoreNew(r2.point, "disk");
  EXPECT_EQ(ReadFile(out), ReadFile(img));
  // The old point names the same block id: it is whole again too. The
  // damaged pack itself is still reported until it is repacked.
  store_.reset();
  store_ = Store::Open(Env::Default(), store_dir_, LockMode::kExclusive, &log_);
  VerifyReport after = Verify(store_.get(), &log_);
  ASSERT_FALSE(after.problems.empty());
  for (const auto& p : after.problems) EXPECT_EQ(p.point, "") << p.path << ": " << p.reason;
  std::string old_out = RestoreNew(store_->ListPoints().front(), "disk");
  EXPECT_EQ(ReadFile(old_out), ReadFile(img));
}

// --- Failing sources ---------------------------------------------------

TEST_F(BackupTest, MissingSourceFailsNamingItAndCommitsNothing) {
  OpenStore();
  std::string src = tmp_ / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/f", "data");
  BackupResult r1 = Backup({{"v", src}});
  std::vector<std::string> before = store_->ListPoints();
  ASSERT_EQ(before.size(), 1u);

  std::string missing = tmp_ / "no-such-source";
  try {
    Backup({{"v", src}, {"w", missing}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound) << e.what();
  }
  EXPECT_EQ(store_->ListPoints(), before);
  EXPECT_EQ(ResolvePoint(store_.get(), "latest"), r1.point);
  // The store is still usable.
  BackupResult r3 = Backup({{"v", src}});
  EXPECT_EQ(store_->ListPoints().size(), 2u);
  EXPECT_EQ(r3.errors, 0u);
}

TEST_F(BackupTest, SourceOfWrongTypeFailsAndCommitsNothing) {
  OpenStore();
  std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_THROW(Backup({{"f", fifo}}), Error);
  EXPECT_TRUE(store_->ListPoints().empty());
}

TEST_F(BackupTest, BadVolumeListsAreConfigErrors) {
  OpenStore();
  std::string img = tmp_ / "a.img";
  WriteFile(img, "x");
  try {
    Backup({});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
  }
  try {
    Backup({{"same", img}, {"same", img}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("same"), std::string::npos);
  }
  EXPECT_TRUE(store_->ListPoints().empty());
}

// Root is not stopped by chmod 000, so an unreadable entry is simulated with
// an injected read error on the second file of the tree.
TEST_F(BackupTest, UnreadableEntryIsLoggedCountedAndLeftOut) {
  Store::Init(Env::Default(), store_dir_, 4096);
  std::string src = ThreeFileTree("b", "second file, unreadable\n");
  FaultPlan plan;
  plan.fail_read_at = CostToOpen().reads + 2;  // a is read first, then b
  OpenWithFaults(plan);
  BackupResult r = Backup({{"v", src}});
  EXPECT_EQ(r.errors, 1u);
  EXPECT_EQ(r.volumes[0].errors, 1u);
  ASSERT_EQ(store_->ListPoints().size(), 1u) << "the point is committed, lacking the entry";
  bool named = false;
  for (const auto& p : log_.problems()) named |= p.find(src + "/b") != std::string::npos;
  EXPECT_TRUE(named) << ::testing::PrintToString(log_.problems());
  std::string out = RestoreNew(r.point, "v");
  EXPECT_EQ(ReadFile(out + "/a"), "first file\n");
  EXPECT_EQ(ReadFile(out + "/c"), "third file\n");
  EXPECT_NE(::access((out + "/b").c_str(), F_OK), 0);
}

// --- I/O niceness --------------------------------------------------------

namespace {
// Bytes of `path` resident in the page cache (mincore over a mapping).
uint64_t ResidentBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  ::fstat(fd, &st);
  size_t len = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return 0;
  long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((len + page - 1) / page);
  ::mincore(p, len, vec.data());
  ::munmap(p, len);
  uint64_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n * static_cast<uint64_t>(page);
}

void DropFromCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}
}  // namespace

TEST_F(BackupTest, SourcePagesAreDroppedFromThePageCacheBehindTheReader) {
  OpenStore();
  const std::string src = tmp_ / "big.img";
  test::WriteFile(src, test::RandomBytes(32 << 20, 3));
  DropFromCache(src);
  ASSERT_LT(ResidentBytes(src), uint64_t{4} << 20) << "the page cache did not let go of the test file";

  Backup({{"img", src}});
  EXPECT_LT(ResidentBytes(src), uint64_t{4} << 20) << "the backup left the source in the page cache";

  // The check can fail: without dropping, what was read stays cached.
  test::WriteFileAt(src, 0, "changed");
  DropFromCache(src);
  BackupOptions keep;
  keep.drop_cache = false;
  Backup({{"img", src}}, keep);
  EXPECT_GT(ResidentBytes(src), uint64_t{16} << 20);
}

}  // namespace
}  // namespace vmback

namespace vmback {
namespace {

// Changed-block tracking into the store: with a change list, only the blocks
// it touches are read; the rest take the parent's ids (whole lists at once);
// the point is identical, block id for block id, to a full read's.
TEST_F(BackupTest, AChangeListReadsOnlyWhatChangedAndMakesTheSamePoint) {
  OpenStore(4096);
  const std::string src = tmp_ / "disk.img";
  const uint64_t size = 20 * 1024 * 1024 + 1000;  // three id lists of 2048 blocks, the last partial
  std::string data = test::RandomBytes(size, 7);
  std::fill(data.begin() + 3 * 1024 * 1024, data.begin() + 5 * 1024 * 1024, '\0');  // zeros
  test::WriteFile(src, data);
  BackupResult r1 = Backup({{"img", src}});
  EXPECT_EQ(r1.volumes[0].change_method, "full-read");

  // Two changes: inside the second list, and in the last (partial) block.
  const std::vector<ByteRange> changes = {{9 * 1024 * 1024 + 100, 300}, {size - 10, 10}};
  for (const auto& c : changes) test::WriteFileAt(src, c.offset, test::RandomBytes(c.length, c.offset));
  int asked = 0;
  VolumeSpec with_list{"img", src};
  with_list.changes = [&](const std::string& rel, const std::string& path) {
    asked++;
    EXPECT_EQ(rel, "");
    EXPECT_EQ(path, src);
    return ChangeSet{ChangeMethod::kSharedExtents, "", changes};
  };
  BackupResult r2 = Backup({with_list});
  EXPECT_EQ(asked, 1);
  const VolumeStats& v2 = r2.volumes[0];
  EXPECT_EQ(v2.change_method, "shared-extents");
  EXPECT_EQ(v2.files_by_change_list, 1u);
  EXPECT_EQ(v2.bytes_read, 4096u + (size % 4096)) << "one block in list 2, and the last block";
  EXPECT_EQ(v2.new_blocks, 2u);
  EXPECT_EQ(v2.bytes, size);

  BackupOptions full;
  full.full_read = true;
  BackupResult r3 = Backup({with_list}, full);
  EXPECT_EQ(asked, 1) << "a full read asks for no change list";
  EXPECT_EQ(r3.volumes[0].bytes_read, size) << "written zeros are data, read too";
  EXPECT_NE(r3.volumes[0].change_why.find("a full read"), std::string::npos) << r3.volumes[0].change_why;
  const Entry e2 = store_->ReadPoint(r2.point).volumes[0].root;
  const Entry e3 = store_->ReadPoint(r3.point).volumes[0].root;
  ASSERT_EQ(e2.content.size(), 3u);
  EXPECT_EQ(e2.content, e3.content) << "the change list's point differs from the full read's";
  Restore(store_.get(), r2.point, "img", tmp_ / "out.img", Overwrite::kRefuse, &log_);
  EXPECT_EQ(test::ReadFile(tmp_ / "out.img"), test::ReadFile(src));

  // No list (its reason is reported), or a grown file: read in full.
  VolumeSpec no_list{"img", src};
  no_list.changes = [](const std::string&, const std::string&) { return ChangeSet{ChangeMethod::kFullRead, "no base", {}}; };
  test::WriteFileAt(src, 0, "x");
  BackupResult r4 = Backup({no_list});
  EXPECT_EQ(r4.volumes[0].change_method, "full-read");
  EXPECT_EQ(r4.volumes[0].change_why, src + ": no base");
  EXPECT_EQ(r4.volumes[0].bytes_read, size);
  test::WriteFileAt(src, size, "more");
  BackupResult r5 = Backup({with_list});
  EXPECT_EQ(r5.volumes[0].change_why, src + ": its size changed");
  EXPECT_EQ(r5.volumes[0].files_by_change_list, 0u);
}

// A change list that touches nothing: every list of the parent is taken
// whole, nothing is read, no blob is written but the tree's.
TEST_F(BackupTest, AnEmptyChangeListReadsNothing) {
  OpenStore(4096);
  const std::string src = tmp_ / "disk.img";
  test::WriteFile(src, test::RandomBytes(9 * 1024 * 1024, 3));
  BackupResult r1 = Backup({{"img", src}});
  test::SetMtimeNs(src, 12345, 0);  // the quick check would read it again
  VolumeSpec spec{"img", src};
  spec.changes = [](const std::string&, const std::string&) { return ChangeSet{ChangeMethod::kDirtyBitmap, "", {}}; };
  BackupResult r2 = Backup({spec});
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  EXPECT_EQ(r2.volumes[0].change_method, "dirty-bitmap");
  EXPECT_EQ(store_->ReadPoint(r2.point).volumes[0].root.content,
            store_->ReadPoint(r1.point).volumes[0].root.content);
}

// --- Trees of unchanged directories ------------------------------------

// The entry named name in the tree blob id.
Entry TreeEntry(Store* store, const Hash& id, const std::string& name) {
  for (auto& e : DecodeTree(store->Get(id, BlobType::kTree), "test"))
    if (e.name == name) return e;
  throw std::runtime_error("no entry " + name);
}

TEST_F(BackupTest, UnchangedDirectoriesKeepTheirParentTreeBlobs) {
  OpenStore(4096);
  const std::string src = tmp_ / "src";
  std::filesystem::create_directories(src + "/sub");
  std::filesystem::create_directories(src + "/other");
  WriteFile(src + "/sub/a", RandomBytes(5000, 1));
  WriteFile(src + "/sub/b", "bee\n");
  WriteFile(src + "/other/c", RandomBytes(3000, 2));
  BackupResult r1 = Backup({{"t", src}});

  // Rewrite r1 with sub's tree blob in another spelling of the same entries
  // (spaces): a tree made afresh would get the canonical one's id.
  Manifest m = store_->ReadPoint(r1.point);
  Entry root = m.volumes[0].root;
  std::vector<Entry> top = DecodeTree(store_->Get(root.subtree, BlobType::kTree), "test");
  ASSERT_EQ(top[1].name, "sub");
  std::string spaced = store_->Get(top[1].subtree, BlobType::kTree);
  ASSERT_EQ(spaced.rfind("{\"entries\":[", 0), 0u);
  spaced = "{ \"entries\" : [ " + spaced.substr(12);
  ASSERT_EQ(EncodeTree(DecodeTree(spaced, "test")), store_->Get(top[1].subtree, BlobType::kTree));
  const Hash spaced_id = store_->PutRaw(BlobType::kTree, spaced);
  ASSERT_NE(spaced_id, top[1].subtree);
  top[1].subtree = spaced_id;
  root.subtree = store_->PutRaw(BlobType::kTree, EncodeTree(top));
  WriteAsNewPoint(m, root);

  // Nothing changed: every tree blob is the parent's, the spaced one too.
  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  const Entry root2 = store_->ReadPoint(r2.point).volumes[0].root;
  EXPECT_EQ(root2.subtree, root.subtree);
  EXPECT_EQ(TreeEntry(store_.get(), root2.subtree, "sub").subtree, spaced_id);

  // A file changed in other/: other/ and the root get new trees, sub/ not.
  WriteFile(src + "/other/c", RandomBytes(3000, 3));
  SetMtimeNs(src + "/other/c", kT0 + 7, 0);
  BackupResult r3 = Backup({{"t", src}});
  const Entry root3 = store_->ReadPoint(r3.point).volumes[0].root;
  EXPECT_NE(root3.subtree, root2.subtree);
  EXPECT_EQ(TreeEntry(store_.get(), root3.subtree, "sub").subtree, spaced_id);
  EXPECT_EQ(DescribeTree(RestoreNew(r3.point, "t")), DescribeTree(src));

  // Only a mode changed in sub/ (no content, no mtime): sub/ gets a new tree.
  std::filesystem::permissions(src + "/sub/b", std::filesystem::perms::owner_read);
  BackupResult r4 = Backup({{"t", src}});
  const Hash sub4 = TreeEntry(store_.get(), store_->ReadPoint(r4.point).volumes[0].root.subtree, "sub").subtree;
  EXPECT_NE(sub4, spaced_id);
  EXPECT_EQ(TreeEntry(store_.get(), sub4, "b").mode, 0400u);
  EXPECT_EQ(DescribeTree(RestoreNew(r4.point, "t")), DescribeTree(src));
}

// Counts xattr reads by path: those by path, and those of the walk, which
// reads them through the directories it opens.
class XattrCountingEnv : public EnvWrapper {
 public:
  using EnvWrapper::EnvWrapper;
  Xattrs ReadXattrs(const std::string& path) override {
    reads[path]++;
    return EnvWrapper::ReadXattrs(path);
  }
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override {
    return std::make_unique<CountingDir>(this, EnvWrapper::OpenDirectory(path));
  }
  std::map<std::string, int> reads;

 private:
  class CountingDir final : public ReadableDirWrapper {
   public:
    CountingDir(XattrCountingEnv* env, std::unique_ptr<ReadableDir> dir)
        : ReadableDirWrapper(std::move(dir)), env_(env) {}
    Xattrs ReadXattrs(const std::string& name) override {
      env_->reads[name.empty() ? path() : ChildPath(name)]++;
      return ReadableDirWrapper::ReadXattrs(name);
    }
    std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
      return std::make_unique<CountingDir>(env_, ReadableDirWrapper::OpenDir(name));
    }

   private:
    XattrCountingEnv* env_;
  };
};

TEST_F(BackupTest, XattrsOfAFileWithTheSameInodeAndCtimeAreNotReadAgain) {
  XattrCountingEnv env(Env::Default());
  Store::Init(&env, store_dir_, 4096);
  store_ = Store::Open(&env, store_dir_, LockMode::kExclusive, &log_);
  const std::string src = tmp_ / "src";
  std::filesystem::create_directories(src);
  const std::string f = src + "/f";
  WriteFile(f, "data\n");
  Env::Default()->SetXattr(f, "user.v", "one");
  auto xattr_in = [&](const std::string& point) {
    std::vector<Entry> es = DecodeTree(store_->Get(store_->ReadPoint(point).volumes[0].root.subtree, BlobType::kTree), "t");
    return es.at(0).xattrs;
  };
  const Xattrs one = {{"user.v", "one"}};
  BackupResult r1 = Backup({{"t", src}});
  EXPECT_EQ(env.reads[f], 1);
  EXPECT_EQ(xattr_in(r1.point), one);

  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(env.reads[f], 1) << "unchanged inode: its xattrs taken from the parent point";
  EXPECT_EQ(xattr_in(r2.point), one);

  // Setting an xattr moves the ctime: read again (and so does a full read).
  Env::Default()->SetXattr(f, "user.v", "two");
  BackupResult r3 = Backup({{"t", src}});
  EXPECT_EQ(env.reads[f], 2);
  EXPECT_EQ(xattr_in(r3.point), (Xattrs{{"user.v", "two"}}));
  BackupOptions full;
  full.full_read = true;
  Backup({{"t", src}}, full);
  EXPECT_EQ(env.reads[f], 3);
  store_.reset();
}

// Calls swap(name) right after the walk looked at `name` (Status) in any
// directory, so that a test changes the tree between the look and what
// the walk does next.
class SwapAfterStatusEnv final : public EnvWrapper {
 public:
  SwapAfterStatusEnv(Env* base, std::string name, std::function<void()> swap)
      : EnvWrapper(base), name_(std::move(name)), swap_(std::move(swap)) {}
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override {
    return std::make_unique<Dir>(this, EnvWrapper::OpenDirectory(path));
  }

 private:
  class Dir final : public ReadableDirWrapper {
   public:
    Dir(SwapAfterStatusEnv* env, std::unique_ptr<ReadableDir> dir) : ReadableDirWrapper(std::move(dir)), env_(env) {}
    FileStatus Status(const std::string& name) override {
      FileStatus st = ReadableDirWrapper::Status(name);
      if (name == env_->name_ && env_->swap_) std::exchange(env_->swap_, nullptr)();
      return st;
    }
    std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
      return std::make_unique<Dir>(env_, ReadableDirWrapper::OpenDir(name));
    }

   private:
    SwapAfterStatusEnv* env_;
  };
  std::string name_;
  std::function<void()> swap_;
};

TEST_F(BackupTest, ADirectorySwappedForASymlinkDuringTheWalkIsNotFollowed) {
  const std::string src = tmp_ / "src";
  const std::string outside = tmp_ / "outside";
  std::filesystem::create_directories(src + "/sub");
  std::filesystem::create_directories(outside);
  WriteFile(src + "/sub/mine", "mine\n");
  WriteFile(src + "/z", "after\n");
  WriteFile(outside + "/secret", "not to be backed up\n");
  // Between the walk's lstat of sub (a directory) and its entering it, sub
  // becomes a symlink to a directory outside the source.
  SwapAfterStatusEnv env(Env::Default(), "sub", [&] {
    std::filesystem::rename(src + "/sub", tmp_ / "moved");
    std::filesystem::create_directory_symlink(outside, src + "/sub");
  });
  Store::Init(&env, store_dir_, 4096);
  store_ = Store::Open(&env, store_dir_, LockMode::kExclusive, &log_);
  BackupResult r = Backup({{"t", src}});
  EXPECT_EQ(r.errors, 1u);
  bool named = false;
  for (const auto& p : log_.problems()) named |= p.find(src + "/sub") != std::string::npos;
  EXPECT_TRUE(named) << ::testing::PrintToString(log_.problems());
  std::vector<Entry> top =
      DecodeTree(store_->Get(store_->ReadPoint(r.point).volumes[0].root.subtree, BlobType::kTree), "t");
  ASSERT_EQ(top.size(), 1u) << "sub left out, nothing read through the link";
  EXPECT_EQ(top[0].name, "z");
  const std::string out = RestoreNew(r.point, "t");
  EXPECT_EQ(ReadFile(out + "/z"), "after\n");
  EXPECT_FALSE(std::filesystem::exists(out + "/sub/secret"));
  store_.reset();
}

// Many small files are hashed and compressed while the walk reads on
// (ScanLater): every file keeps its own content, a hard link to a file still
// pending gets that file's content, and a second backup makes the same point
// from the parent's blobs, every tree blob reused.
// The end of a directory is no barrier: the walk goes on into the next one
// while the files it asked for are still to be read and hashed (each
// directory's tree is made once they are done). Waiting for them at the
// end of every directory left the disk and the pool idle in turns.
TEST_F(BackupTest, TheWalkGoesOnIntoTheNextDirectoryBeforeTheFilesOfOneAreRead) {
  test::HookEnv env;
  Store::Init(&env, store_dir_, 4096);
  store_ = Store::Open(&env, store_dir_, LockMode::kExclusive, &log_);
  const std::string src = tmp_ / "src";
  std::filesystem::create_directories(src + "/a");
  std::filesystem::create_directories(src + "/b");
  for (const char* f : {"a/1", "a/2", "a/3", "b/1"}) WriteFile(src + "/" + f, std::string("file ") + f + "\n");
  std::vector<std::string> events;  // of the source only (the store's files go through env too)
  auto record = [&](const std::string& what, const std::string& p) {
    if (p.rfind(src + "/", 0) == 0) events.push_back(what + " " + p.substr(src.size() + 1));
  };
  env.before_status = [&](const std::string& p) { record("lstat", p); };
  env.before_read_at = [&](const std::string& p) { record("read", p); };
  BackupResult r = Backup({{"t", src}});
  EXPECT_EQ(r.errors, 0u);
  auto at = [&](const std::string& e) { return std::find(events.begin(), events.end(), e) - events.begin(); };
  ASSERT_LT(at("read a/3"), static_cast<ptrdiff_t>(events.size()));
  ASSERT_LT(at("lstat b/1"), static_cast<ptrdiff_t>(events.size()));
  EXPECT_LT(at("lstat b/1"), at("read a/3")) << "b/ walked before a/'s last file was read";
  EXPECT_EQ(DescribeTree(RestoreNew(r.point, "t")), DescribeTree(src));
  store_.reset();
}

TEST_F(BackupTest, ManySmallFilesRoundTripAndAnUnchangedTreeReusesEveryBlob) {
  OpenStore(4096);
  const std::string src = tmp_ / "src";
  for (int d = 0; d < 5; d++) {
    const std::string dir = src + "/d" + std::to_string(d);
    std::filesystem::create_directories(dir + "/deeper");
    for (int f = 0; f < 150; f++) {
      const std::string name = dir + "/f" + std::to_string(f);
      // Sizes from empty to a few blocks, some alike (dedup), some zeros.
      std::string data = f % 7 == 0 ? std::string(f * 100, '\0') : RandomBytes(f * 97 % 20000, f % 40);
      WriteFile(name, data);
    }
    WriteFile(dir + "/deeper/last", "last of " + dir + "\n");
    std::filesystem::create_hard_link(dir + "/f3", dir + "/f3-link");
  }
  BackupResult r1 = Backup({{"t", src}});
  EXPECT_EQ(r1.errors, 0u);
  EXPECT_EQ(r1.volumes[0].files, 5u * 152);
  EXPECT_EQ(DescribeTree(RestoreNew(r1.point, "t")), DescribeTree(src));

  const uint64_t blobs_before = store_->write_stats().blobs_written;
  BackupResult r2 = Backup({{"t", src}});
  EXPECT_EQ(r2.volumes[0].bytes_read, 0u);
  EXPECT_EQ(store_->write_stats().blobs_written, blobs_before) << "no blob written for an unchanged tree";
  EXPECT_EQ(store_->ReadPoint(r2.point).volumes[0].root.subtree, store_->ReadPoint(r1.point).volumes[0].root.subtree);

  // A full read reads every file again and makes the very same trees.
  BackupOptions full;
  full.full_read = true;
  BackupResult r3 = Backup({{"t", src}}, full);
  EXPECT_EQ(r3.volumes[0].bytes_read, r1.volumes[0].bytes_read);
  EXPECT_EQ(store_->ReadPoint(r3.point).volumes[0].root.subtree, store_->ReadPoint(r1.point).volumes[0].root.subtree);
}

}  // namespace
}  // namespace vmback
