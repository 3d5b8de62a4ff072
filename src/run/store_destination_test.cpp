// The two destinations behind one interface (destination/destination.h):
// the same backup into the store and into a dir target gives figures that
// mean the same thing, per volume and in total.
#include "run/store_destination.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "store/store.h"
#include "util/error.h"

namespace vmback {
namespace {

class DestinationTest : public ::testing::Test {
 protected:
  DestinationTest() : log_(LogLevel::kWarning) {
    ::mkdir((dir_ / "src").c_str(), 0755);
    ::mkdir((dir_ / "src/tree").c_str(), 0755);
    test::WriteFile(dir_ / "src/tree/a", test::RandomBytes(200000, 1));
    test::WriteFile(dir_ / "src/disk.img", test::RandomBytes(1 << 20, 2));
  }

  std::vector<VolumeSpec> Volumes() const {
    return {{"tree", dir_ / "src/tree", true}, {"disk", dir_ / "src/disk.img", true}};
  }

  TargetConfig DirTarget() {
    ::mkdir((dir_ / "T").c_str(), 0755);
    TargetConfig t;
    t.type = TargetType::kDir;
    t.path = dir_ / "T";
    t.block_size = 4096;
    return t;
  }

  TargetConfig StoreTarget() {
    Store::Init(Env::Default(), dir_ / "S", 4096);
    TargetConfig t;
    t.path = dir_ / "S";
    return t;
  }

  test::TempDir dir_;
  Logger log_;
};

TEST_F(DestinationTest, DirTargetGivesEachVolumesBytesReadAndWritten) {
  auto dest = OpenDestination(Env::Default(), DirTarget(), DestinationAccess::kBackup, 0, &log_);
  BackupResult r = dest->Backup(Volumes(), BackupOptions{}, &log_);
  ASSERT_EQ(r.volumes.size(), 2u);
  ASSERT_EQ(r.inplace.size(), 2u);
  EXPECT_EQ(r.volumes[0].bytes_read, 200000u);
  EXPECT_EQ(r.volumes[0].bytes_written, 200000u);
  EXPECT_EQ(r.volumes[1].bytes_read, 1u << 20);
  EXPECT_EQ(r.volumes[1].bytes_written, 1u << 20);
  EXPECT_EQ(r.data_bytes_written, 200000u + (1u << 20));
  EXPECT_EQ(r.bytes_written, r.data_bytes_written + r.inplace[0].map_bytes_written + r.inplace[1].map_bytes_written);
  EXPECT_EQ(r.packs_written, 0u);
  EXPECT_EQ(BackupResultToJson(r)["inplace"].size(), 2u);
  EXPECT_EQ(dest->PointNames(), std::vector<std::string>{"current"});
  EXPECT_EQ(dest->ListPoints().points.at(0).volumes, (std::vector<std::string>{"tree", "disk"}));
  EXPECT_EQ(dest->MetricLabel(), "dir:" + (dir_ / "T"));
  EXPECT_FALSE(dest->TakesTags());
  EXPECT_THROW(CheckTags(*dest, {"one-off"}), Error);
}

TEST_F(DestinationTest, StoreGivesTotalsAndTheBytesOfASoleVolume) {
  TargetConfig target = StoreTarget();
  auto dest = OpenDestination(Env::Default(), target, DestinationAccess::kBackup, 0, &log_);
  BackupResult r = dest->Backup(Volumes(), BackupOptions{}, &log_);
  ASSERT_EQ(r.volumes.size(), 2u);
  EXPECT_TRUE(r.inplace.empty());
  EXPECT_FALSE(BackupResultToJson(r).contains("inplace"));
  EXPECT_EQ(r.volumes[1].bytes_read, 1u << 20);
  // Two volumes share packs: the store knows only the point's total.
  EXPECT_EQ(r.volumes[0].bytes_written, 0u);
  EXPECT_GE(r.data_bytes_written, 200000u + (1u << 20));
  EXPECT_GT(r.bytes_written, 0u);
  EXPECT_GE(r.packs_written, 1u);
  EXPECT_TRUE(dest->TakesTags());
  EXPECT_NO_THROW(CheckTags(*dest, {"one-off"}));

  BackupResult one = dest->Backup({{"disk", dir_ / "src/disk.img", true}}, BackupOptions{}, &log_);
  ASSERT_EQ(one.volumes.size(), 1u);
  EXPECT_EQ(one.volumes[0].bytes_written, one.bytes_written);
  dest->Backup(Volumes(), BackupOptions{}, &log_);
  EXPECT_EQ(dest->PointNames().size(), 3u);

  // The prune after a backup upgrades the store's lock; each volume set is
  // its own retention group.
  RetentionPolicy keep_one;
  keep_one.keep_last = 1;
  PruneSummary p = dest->Prune(keep_one, PruneRequest{}, &log_);
  EXPECT_FALSE(p.skipped);
  EXPECT_EQ(p.deleted, std::vector<std::string>{r.point});
  EXPECT_TRUE(p.gc.has_value());
  EXPECT_EQ(dest->ListPoints().points.size(), 2u);
}

}  // namespace
}  // namespace vmback
