// In-place targets: the parsers of the file systems' reports, point names,
// mount options, and opening a target (target.h). ZFS (zfs-fuse) and btrfs
// (RAID1 on loop devices) are exercised for real by
// tests/integration/zfs_target.sh and btrfs_target.sh.
#include "inplace/target.h"

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

TEST(PointStampTest, RoundTripsAndRejects) {
  int64_t t = int64_t{1795716962} * 1000000000;  // 2026-11-26T18:16:02Z
  EXPECT_EQ(FormatPointStamp(t), "2026-11-26T181602Z");
  EXPECT_EQ(ParsePointStamp("2026-11-26T181602Z"), t);
  EXPECT_EQ(ParsePointStamp("2026-11-26T181602Z.2"), t);
  for (const char* bad : {"", "2026-11-26", "2026-11-26T18:16:02Z", "2026-13-26T181602Z", "2026-11-26T181602Z.",
                          "2026-11-26T181602Z.x", "2026-11-26T181602Zjunk", "x026-11-26T181602Z"})
    EXPECT_LT(ParsePointStamp(bad), 0) << bad;
}

// As zfs-fuse 0.7 prints it, after a scrub that repaired one side of a mirror.
const char kZpoolRepaired[] =
    "  pool: vmbtest\n"
    " state: ONLINE\n"
    "status: One or more devices has experienced an unrecoverable error.  An\n"
    "\tattempt was made to correct the error.  Applications are unaffected.\n"
    " scrub: scrub completed after 0h0m with 0 errors on Thu Nov 26 19:57:06 2026\n"
    "config:\n"
    "\n"
    "\tNAME           STATE     READ WRITE CKSUM\n"
    "\tvmbtest        ONLINE       0     0     0\n"
    "\t  mirror-0     ONLINE       0     0     0\n"
    "\t    /tmp/a     ONLINE       0     0    37\n"
    "\t    /tmp/b     ONLINE       0     0     0\n"
    "\n"
    "errors: No known data errors\n";

const char kZpoolDataErrors[] =
    "  pool: p\n"
    " state: DEGRADED\n"
    "  scan: scrub repaired 0B in 00:00:01 with 2 errors on Thu Nov 26 19:57:06 2026\n"
    "config:\n"
    "\tNAME        STATE     READ WRITE CKSUM\n"
    "\tp           DEGRADED     0     0     0\n"
    "\t  sdb       ONLINE       0     0     4\n"
    "\t  sdc       UNAVAIL      0     0     0\n"
    "errors: 2 data errors, use '-v' for a list\n";

TEST(ScrubParseTest, ZpoolStatus) {
  ScrubReport r = ParseZpoolStatus(kZpoolRepaired);
  EXPECT_TRUE(r.ran);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.repaired, 37u);
  EXPECT_EQ(r.unrepaired, 0u);
  EXPECT_NE(r.summary.find("repaired 37"), std::string::npos) << r.summary;

  ScrubReport bad = ParseZpoolStatus(kZpoolDataErrors);
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.unrepaired, 2u);
  EXPECT_NE(bad.summary.find("sdc UNAVAIL"), std::string::npos) << bad.summary;

  ScrubReport clean = ParseZpoolStatus(std::string(kZpoolRepaired).replace(
      std::string(kZpoolRepaired).find("   37\n"), 6, "    0\n"));
  EXPECT_TRUE(clean.ok);
  EXPECT_EQ(clean.repaired, 0u);

  EXPECT_FALSE(ParseZpoolStatus("cannot open 'x': no such pool\n").ok);
}

TEST(ScrubParseTest, BtrfsScrub) {
  ScrubReport clean = ParseBtrfsScrub(
      "scrub done for 1b2c\nScrub started:    Thu Nov 26 20:00:00 2026\nStatus:           finished\n"
      "Duration:         0:00:00\nTotal to scrub:   1.00GiB\nRate:             0.00B/s\n"
      "Error summary:    no errors found\n");
  EXPECT_TRUE(clean.ran);
  EXPECT_TRUE(clean.ok);
  EXPECT_EQ(clean.repaired, 0u);

  ScrubReport fixed = ParseBtrfsScrub(
      "scrub done for 1b2c\nStatus:           finished\nError summary:    csum=3\n  Corrected:      3\n"
      "  Uncorrectable:  0\n  Unverified:     0\n");
  EXPECT_TRUE(fixed.ok);
  EXPECT_EQ(fixed.repaired, 3u);

  ScrubReport lost = ParseBtrfsScrub(
      "Error summary:    csum=5\n  Corrected:      1\n  Uncorrectable:  4\n  Unverified:     0\n");
  EXPECT_FALSE(lost.ok);
  EXPECT_EQ(lost.unrepaired, 4u);

  EXPECT_FALSE(ParseBtrfsScrub("ERROR: not a btrfs filesystem\n").ran);
}

TEST(ZfsInitTest, CommandsMirrorTheDevicesWithChecksumsAndCompression) {
  auto cmds = ZfsInitCommands("usb", {"/dev/sdb", "/dev/sdc"}, "");
  ASSERT_EQ(cmds.size(), 5u);
  EXPECT_EQ(cmds[0], (std::vector<std::string>{"zpool", "create", "usb", "mirror", "/dev/sdb", "/dev/sdc"}));
  EXPECT_EQ(cmds[1], (std::vector<std::string>{"zfs", "set", "compression=on", "usb"}));
  EXPECT_EQ(cmds[2], (std::vector<std::string>{"zfs", "set", "checksum=sha256", "usb"}));
  EXPECT_EQ(cmds[4], (std::vector<std::string>{"zfs", "create", "-o", "devices=off", "-o", "setuid=off", "-o",
                                               "exec=off", "usb/vmback"}));
  auto one = ZfsInitCommands("p", {"/dev/sdb"}, "/mnt/p");
  EXPECT_EQ(one[0], (std::vector<std::string>{"zpool", "create", "-m", "/mnt/p", "p", "/dev/sdb"}));
}

TEST(MountOptionsTest, TheMountHoldingThePathIsTheLongestMatchOnTop) {
  const std::string info =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "30 22 8:17 / /mnt/usb rw,nodev,nosuid,noexec,relatime - ext4 /dev/sdb1 rw\n"
      "31 22 8:33 / /mnt/usb\\040disk rw,nodev,relatime - ext4 /dev/sdc1 rw\n"
      "32 30 0:40 / /mnt/usb/inner rw,relatime - tmpfs tmpfs rw\n"
      "33 30 0:41 / /mnt/usb/inner rw,nodev,nosuid,noexec - tmpfs tmpfs rw\n";
  std::string point;
  EXPECT_TRUE(MissingMountOptions(info, "/mnt/usb/vmback", &point).empty());
  EXPECT_EQ(point, "/mnt/usb");
  EXPECT_EQ(MissingMountOptions(info, "/srv/vmback", &point), (std::vector<std::string>{"nodev", "nosuid", "noexec"}));
  EXPECT_EQ(point, "/");
  EXPECT_EQ(MissingMountOptions(info, "/mnt/usb disk/t", &point), (std::vector<std::string>{"nosuid", "noexec"}));
  EXPECT_EQ(point, "/mnt/usb disk");
  // Two mounts on one point: the later one is on top.
  EXPECT_TRUE(MissingMountOptions(info, "/mnt/usb/inner/t", &point).empty());
  // Not a parent: /mnt/usbx is on /.
  EXPECT_EQ(MissingMountOptions(info, "/mnt/usbx", &point).size(), 3u);
}

TEST(TargetOpenTest, ClearErrors) {
  Logger log(LogLevel::kWarning);
  test::TempDir dir;
  TargetConfig c;
  c.type = TargetType::kDir;
  c.path = dir / "missing";
  try {
    OpenInplaceTarget(Env::Default(), c, &log);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(c.path), std::string::npos) << e.what();
  }
  c.type = TargetType::kBtrfs;
  c.path = dir.path();
  try {
    OpenInplaceTarget(Env::Default(), c, &log);  // a temp dir is not on btrfs here, or not a subvolume
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
  }
}

// Opening a target asks the Env (the OS seam), not the system: the file
// system type and what is at the path are the Env's answers.
class TargetSeamEnv final : public EnvWrapper {
 public:
  TargetSeamEnv() : EnvWrapper(Env::Default()) {}
  std::string hidden;  // reported missing
  uint64_t FileSystemType(const std::string&) override { return 0x9123683E; }  // BTRFS_SUPER_MAGIC
  FileStatus StatusFollowingLinks(const std::string& path) override {
    return path == hidden ? FileStatus{} : EnvWrapper::StatusFollowingLinks(path);
  }
};

TEST(TargetOpenTest, AsksTheEnv) {
  Logger log(LogLevel::kWarning);
  test::TempDir dir;
  TargetSeamEnv env;
  TargetConfig c;
  c.type = TargetType::kBtrfs;
  c.path = dir.path();
  try {
    OpenInplaceTarget(&env, c, &log);  // "on btrfs", but a plain directory
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not a subvolume"), std::string::npos) << e.what();
  }
  c.type = TargetType::kDir;
  env.hidden = CanonicalPath(dir.path());
  try {
    OpenInplaceTarget(&env, c, &log);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound) << e.what();
    EXPECT_EQ(std::string(e.what()),
              "target directory " + c.path + ": No such file or directory (create it first)");
  }
}

}  // namespace
}  // namespace vmback
