// PointFs, the file system `vmback mount` serves, called as FUSE calls it
// (no kernel mount here: tests/integration/mount.sh mounts it for real),
// over a real store and a real dir target.
#include "mount/point_fs.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "run/store_destination.h"
#include "store/store.h"
#include "util/error.h"

namespace vmback {
namespace {

class ManualClock : public Clock {
 public:
  TimePoint Now() override { return now; }
  void SleepUntil(TimePoint t) override { now = std::max(now, t); }
  TimePoint now{};
};

constexpr uint64_t kImage = 1 << 20;

class PointFsTest : public ::testing::Test {
 protected:
  PointFsTest() : log_(LogLevel::kError) {
    ::mkdir((dir_ / "src").c_str(), 0755);
    ::mkdir((dir_ / "src/tree").c_str(), 0755);
    ::mkdir((dir_ / "src/tree/sub").c_str(), 0750);
    test::WriteFile(dir_ / "src/tree/a", test::RandomBytes(200000, 1));
    test::WriteFile(dir_ / "src/tree/sub/b", "bee\n");
    ::chmod((dir_ / "src/tree/sub/b").c_str(), 0640);
    ::symlink("a", (dir_ / "src/tree/link").c_str());
    // An image: data, a hole of 16 blocks, data, and a hole to the end.
    test::WriteFile(dir_ / "src/disk.img", "");
    test::WriteFileAt(dir_ / "src/disk.img", 0, test::RandomBytes(8192, 2));
    test::WriteFileAt(dir_ / "src/disk.img", 81920, test::RandomBytes(4096, 3));
    ::truncate((dir_ / "src/disk.img").c_str(), kImage);
  }

  TargetConfig StoreTarget() {
    Store::Init(Env::Default(), dir_ / "S", 4096);
    TargetConfig t;
    t.path = dir_ / "S";
    return t;
  }

  TargetConfig DirTarget() {
    ::mkdir((dir_ / "T").c_str(), 0755);
    TargetConfig t;
    t.type = TargetType::kDir;
    t.path = dir_ / "T";
    t.block_size = 4096;
    return t;
  }

  std::string Backup(const TargetConfig& target) {
    auto dest = OpenDestination(Env::Default(), target, DestinationAccess::kBackup, 0, &log_);
    return dest->Backup({{"tree", dir_ / "src/tree", true}, {"disk.img", dir_ / "src/disk.img", true}},
                        BackupOptions{}, &log_)
        .point;
  }

  std::unique_ptr<PointFs> Mount(const TargetConfig& target, PointFsOptions options = {}) {
    options.clock = &clock_;
    return std::make_unique<PointFs>(
        [this, target] { return OpenDestination(Env::Default(), target, DestinationAccess::kRead, 0, &log_); },
        options, &log_);
  }

  static std::vector<std::string> Names(PointFs* fs, const std::string& path) {
    std::vector<std::pair<std::string, FuseAttr>> entries;
    EXPECT_EQ(fs->ReadDir(path, &entries), 0) << path;
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.first);
    return names;
  }

  static std::string ReadAll(PointFs* fs, const std::string& path, size_t chunk) {
    uint64_t h = 0;
    bool direct = true;
    EXPECT_EQ(fs->Open(path, &h, &direct), 0) << path;
    EXPECT_FALSE(direct) << path << ": a small file keeps the page cache";
    std::string out;
    std::string buf(chunk, '\0');
    for (;;) {
      int64_t n = fs->Read(h, out.size(), buf.data(), chunk);
      EXPECT_GE(n, 0) << path;
      if (n <= 0) break;
      out.append(buf.data(), static_cast<size_t>(n));
    }
    fs->Release(h);
    return out;
  }

  test::TempDir dir_;
  Logger log_;
  ManualClock clock_;
};

TEST_F(PointFsTest, TheTopHoldsEveryPointAndLatest) {
  TargetConfig target = StoreTarget();
  const std::string point = Backup(target);
  auto fs = Mount(target);
  EXPECT_EQ(Names(fs.get(), "/"), (std::vector<std::string>{point, "latest"}));
  FuseAttr a;
  ASSERT_EQ(fs->GetAttr("/", &a), 0);
  EXPECT_EQ(a.type, "dir");
  ASSERT_EQ(fs->GetAttr("/latest", &a), 0);
  EXPECT_EQ(a.type, "symlink");
  std::string target_name;
  ASSERT_EQ(fs->ReadLink("/latest", &target_name), 0);
  EXPECT_EQ(target_name, point);
  ASSERT_EQ(fs->GetAttr("/" + point, &a), 0);
  EXPECT_EQ(a.type, "dir");
  EXPECT_GT(a.mtime_ns, 0) << "a point's directory shows the point's time";
  EXPECT_EQ(Names(fs.get(), "/" + point), (std::vector<std::string>{"disk.img", "tree"}));
  EXPECT_EQ(fs->GetAttr("/no-such-point", &a), -ENOENT);
  EXPECT_EQ(fs->GetAttr("/" + point + "/tree/nope", &a), -ENOENT);
  EXPECT_EQ(fs->GetAttr("/" + point + "/nope", &a), -ENOENT);
}

TEST_F(PointFsTest, FilesReadBackWithTheirMetadata) {
  TargetConfig target = StoreTarget();
  const std::string point = Backup(target);
  auto fs = Mount(target);
  const std::string tree = "/" + point + "/tree";
  EXPECT_EQ(Names(fs.get(), tree), (std::vector<std::string>{"a", "link", "sub"}));
  FuseAttr a;
  ASSERT_EQ(fs->GetAttr(tree + "/sub/b", &a), 0);
  EXPECT_EQ(a.type, "file");
  EXPECT_EQ(a.mode, 0640u);
  EXPECT_EQ(a.size, 4u);
  ASSERT_EQ(fs->GetAttr(tree + "/sub", &a), 0);
  EXPECT_EQ(a.type, "dir");
  EXPECT_EQ(a.mode, 0750u);
  std::string link;
  ASSERT_EQ(fs->ReadLink(tree + "/link", &link), 0);
  EXPECT_EQ(link, "a");
  EXPECT_EQ(fs->ReadLink(tree + "/a", &link), -EINVAL);
  for (size_t chunk : {4096u, 131072u, 7777u})
    EXPECT_EQ(ReadAll(fs.get(), tree + "/a", chunk), test::ReadFile(dir_ / "src/tree/a")) << chunk;
  EXPECT_EQ(ReadAll(fs.get(), "/" + point + "/disk.img", 65536), test::ReadFile(dir_ / "src/disk.img"));
  uint64_t h = 0;
  bool direct = false;
  EXPECT_EQ(fs->Open("/" + point, &h, &direct), -EISDIR);
  char c;
  EXPECT_EQ(fs->Read(12345, 0, &c, 1), -EBADF);
}

TEST_F(PointFsTest, HolesShowThroughSeek) {
  TargetConfig target = StoreTarget();
  const std::string point = Backup(target);
  auto fs = Mount(target);
  uint64_t h = 0;
  bool direct = false;
  ASSERT_EQ(fs->Open("/" + point + "/disk.img", &h, &direct), 0);
  EXPECT_EQ(fs->Seek(h, 0, SEEK_DATA), 0);
  EXPECT_EQ(fs->Seek(h, 0, SEEK_HOLE), 8192);
  EXPECT_EQ(fs->Seek(h, 8192, SEEK_DATA), 81920);
  EXPECT_EQ(fs->Seek(h, 81920, SEEK_HOLE), 86016);
  EXPECT_EQ(fs->Seek(h, 86016, SEEK_DATA), -ENXIO) << "no data after the last block";
  EXPECT_EQ(fs->Seek(h, kImage - 1, SEEK_HOLE), static_cast<int64_t>(kImage - 1)) << "an offset in a hole";
  EXPECT_EQ(fs->Seek(h, kImage, SEEK_HOLE), -ENXIO);
  EXPECT_EQ(fs->Seek(h, 0, SEEK_END), -EINVAL);
  fs->Release(h);
}

TEST_F(PointFsTest, ImagesAreReadPastThePageCache) {
  ::truncate((dir_ / "src/disk.img").c_str(), PointFs::kDirectFrom);
  TargetConfig target = StoreTarget();
  const std::string point = Backup(target);
  auto fs = Mount(target);
  uint64_t h = 0;
  bool direct = false;
  ASSERT_EQ(fs->Open("/" + point + "/disk.img", &h, &direct), 0);
  EXPECT_TRUE(direct);
  std::string buf(1 << 20, 'x');
  ASSERT_EQ(fs->Read(h, 0, buf.data(), buf.size()), static_cast<int64_t>(buf.size())) << "1 MiB at once";
  EXPECT_EQ(buf, test::ReadFile(dir_ / "src/disk.img").substr(0, 1 << 20));
  fs->Release(h);
}

TEST_F(PointFsTest, APointCommittedWhileMountedAppears) {
  TargetConfig target = StoreTarget();
  const std::string first = Backup(target);
  auto fs = Mount(target);
  ASSERT_EQ(Names(fs.get(), "/").size(), 2u);
  test::WriteFile(dir_ / "src/tree/sub/b", "changed\n");
  const std::string second = Backup(target);
  clock_.now += std::chrono::seconds(3);
  EXPECT_EQ(Names(fs.get(), "/"), (std::vector<std::string>{first, second, "latest"}));
  std::string latest;
  ASSERT_EQ(fs->ReadLink("/latest", &latest), 0);
  EXPECT_EQ(latest, second);
  EXPECT_EQ(ReadAll(fs.get(), "/" + second + "/tree/sub/b", 4096), "changed\n");
  EXPECT_EQ(ReadAll(fs.get(), "/" + first + "/tree/sub/b", 4096), "bee\n");
}

TEST_F(PointFsTest, OnePointAtTheTop) {
  TargetConfig target = StoreTarget();
  const std::string point = Backup(target);
  PointFsOptions options;
  options.point = "latest";
  auto fs = Mount(target, options);
  EXPECT_EQ(fs->single_point(), point);
  EXPECT_EQ(Names(fs.get(), "/"), (std::vector<std::string>{"disk.img", "tree"}));
  EXPECT_EQ(ReadAll(fs.get(), "/tree/sub/b", 4096), "bee\n");
  options.point = "no-such-point";
  EXPECT_THROW(Mount(target, options), Error);
}

TEST_F(PointFsTest, AnOwnerGivenShowsEverythingAsItsOwnReadOnly) {
  TargetConfig target = StoreTarget();
  Backup(target);
  PointFsOptions options;
  options.point = "latest";
  options.owner = std::make_pair(4321u, 8765u);
  auto fs = Mount(target, options);
  FuseAttr a;
  ASSERT_EQ(fs->GetAttr("/disk.img", &a), 0);
  EXPECT_EQ(a.uid, 4321u);
  EXPECT_EQ(a.gid, 8765u);
  EXPECT_EQ(a.mode, 0400u);
  ASSERT_EQ(fs->GetAttr("/tree", &a), 0);
  EXPECT_EQ(a.mode, 0500u);
}

TEST_F(PointFsTest, OnlyTheGivenPathsAndTheirDirectoriesAreShown) {
  TargetConfig target = StoreTarget();
  Backup(target);
  PointFsOptions options;
  options.point = "latest";
  options.only = {"tree/sub/b"};
  auto fs = Mount(target, options);
  EXPECT_EQ(Names(fs.get(), "/"), std::vector<std::string>{"tree"});
  EXPECT_EQ(Names(fs.get(), "/tree"), std::vector<std::string>{"sub"});
  EXPECT_EQ(Names(fs.get(), "/tree/sub"), std::vector<std::string>{"b"});
  EXPECT_EQ(ReadAll(fs.get(), "/tree/sub/b", 4096), "bee\n");
  FuseAttr a;
  uint64_t h = 0;
  bool direct = false;
  EXPECT_EQ(fs->GetAttr("/disk.img", &a), -ENOENT);
  EXPECT_EQ(fs->Open("/disk.img", &h, &direct), -ENOENT);
  std::vector<std::pair<std::string, FuseAttr>> entries;
  EXPECT_EQ(fs->ReadDir("/tree/su", &entries), -ENOENT) << "a prefix of a name is not its directory";
}

TEST_F(PointFsTest, ADirTargetIsServedAlike) {
  TargetConfig target = DirTarget();
  Backup(target);
  auto fs = Mount(target);
  EXPECT_EQ(Names(fs.get(), "/"), (std::vector<std::string>{"current", "latest"}));
  EXPECT_EQ(Names(fs.get(), "/current/tree"), (std::vector<std::string>{"a", "link", "sub"}));
  EXPECT_EQ(ReadAll(fs.get(), "/current/tree/a", 131072), test::ReadFile(dir_ / "src/tree/a"));
  EXPECT_EQ(ReadAll(fs.get(), "/current/disk.img", 65536), test::ReadFile(dir_ / "src/disk.img"));
}

}  // namespace
}  // namespace vmback
