#include "config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "util/error.h"

namespace vmback {

namespace {

// Parses `text` as if it were the file "cfg.toml" in /etc/vmback and returns
// the Error message; fails the test if no kConfig Error is thrown.
std::string ParseError(const std::string& text) {
  try {
    ParseConfig(text, "/etc/vmback/cfg.toml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

// Expects the message to start with "/etc/vmback/cfg.toml:LINE: " and to
// contain `needle`.
void ExpectErrorAt(const std::string& text, int line, const std::string& needle) {
  std::string message = ParseError(text);
  std::string prefix = "/etc/vmback/cfg.toml:" + std::to_string(line) + ": ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_NE(message.find(needle), std::string::npos) << message;
}

const char kTarget[] = "[target]\npath = \"/backup\"\n";  // lines 1-2

}  // namespace

TEST(ConfigTest, ValidConfig) {
  test::TempDir dir;
  std::string file = dir / "vmback.toml";
  test::WriteFile(file,
                  "# comment\n"
                  "[target]\n"
                  "type = \"dir\"\n"
                  "path = \"store/../repo\"\n"
                  "\n"
                  "[[volume]]\n"
                  "name = \"images\"\n"
                  "source = \"/var/lib/libvirt/images\"\n"
                  "\n"
                  "[[volume]]\n"
                  "name = \"home\"\n"
                  "source = \"./data/home\"\n"
                  "one_file_system = false\n");
  Config config = LoadConfig(file);
  EXPECT_EQ(config.file, file);
  EXPECT_EQ(config.target.type, TargetType::kDir);
  EXPECT_EQ(config.target.path, dir.path() + "/repo");
  ASSERT_EQ(config.volumes.size(), 2u);
  EXPECT_EQ(config.volumes[0].name, "images");
  EXPECT_EQ(config.volumes[0].source, "/var/lib/libvirt/images");
  EXPECT_TRUE(config.volumes[0].one_file_system);
  EXPECT_EQ(config.volumes[0].line, 6);
  EXPECT_EQ(config.volumes[1].name, "home");
  EXPECT_EQ(config.volumes[1].source, dir.path() + "/data/home");
  EXPECT_FALSE(config.volumes[1].one_file_system);
  EXPECT_EQ(config.volumes[1].line, 10);
}

TEST(ConfigTest, TypeDefaultsToStore) {
  Config config = ParseConfig(
      "[target]\npath = \"/b\"\n[[volume]]\nname = \"v\"\nsource = \"/s\"\n", "/etc/c.toml");
  EXPECT_EQ(config.target.type, TargetType::kStore);
  EXPECT_EQ(config.target.path, "/b");
  ASSERT_EQ(config.volumes.size(), 1u);
  EXPECT_EQ(config.volumes[0].source, "/s");
}

TEST(ConfigTest, EncryptAndKeyFileBelongToTheStore) {
  const std::string vol = "[[volume]]\nname = \"v\"\nsource = \"/srv\"\n";
  Config c = ParseConfig("[target]\npath = \"/backup\"\nencrypt = true\nkey_file = \"/etc/vmback/store.key\"\n" + vol,
                         "/etc/vmback/cfg.toml");
  EXPECT_TRUE(c.target.encrypt);
  EXPECT_EQ(c.target.key_file, "/etc/vmback/store.key");
  Config plain = ParseConfig(std::string(kTarget) + vol, "/etc/vmback/cfg.toml");
  EXPECT_FALSE(plain.target.encrypt);
  EXPECT_EQ(plain.target.key_file, "");
  ExpectErrorAt("[target]\npath = \"/backup\"\nkey_file = \"store.key\"\n" + vol, 3, "absolute path");
  ExpectErrorAt("[target]\ntype = \"dir\"\npath = \"/backup\"\nencrypt = true\n" + vol, 4, "LUKS");
}

TEST(ConfigTest, BucketCopiesAndTheS3Table) {
  const std::string vol = "[[volume]]\nname = \"v\"\nsource = \"/srv\"\n";
  Config c = ParseConfig("[target]\npath = \"/backup\"\nmirrors = [\"/mnt/usb2\", \"s3://bk/host1\"]\n"
                         "[s3]\nendpoint = \"https://s3.example.net\"\naddressing = \"virtual\"\n"
                         "profile = \"backup\"\nupload_limit = \"5M\"\n" + vol,
                         "/etc/vmback/cfg.toml");
  EXPECT_EQ(c.target.mirrors, (std::vector<std::string>{"/mnt/usb2", "s3://bk/host1"}));
  EXPECT_TRUE(c.s3.given);
  EXPECT_EQ(c.s3.endpoint, "https://s3.example.net");
  EXPECT_EQ(c.s3.addressing, "virtual");
  EXPECT_EQ(c.s3.profile, "backup");
  EXPECT_EQ(c.s3.upload_limit, 5u << 20);
  // The store in a bucket, for a restore on a new host.
  EXPECT_EQ(ParseConfig("[target]\npath = \"s3://bk/host1\"\n" + vol, "/etc/vmback/cfg.toml").target.path,
            "s3://bk/host1");
  ExpectErrorAt("[target]\npath = \"/backup\"\nmirrors = [\"s3://bk\"]\n" + vol, 3, "s3://BUCKET/PREFIX");
  ExpectErrorAt("[target]\npath = \"/backup\"\nmirrors = [\"s3://bk//\"]\n" + vol, 3, "s3://BUCKET/PREFIX");
  ExpectErrorAt("[target]\npath = \"/backup\"\nmirrors = [\"s3:///host1\"]\n" + vol, 3, "s3://BUCKET/PREFIX");
  ExpectErrorAt("[target]\npath = \"s3://bk\"\n" + vol, 2, "s3://BUCKET/PREFIX");
  ExpectErrorAt("[target]\npath = \"s3://\"\n" + vol, 2, "s3://BUCKET/PREFIX");
  ExpectErrorAt(std::string(kTarget) + "[s3]\nendpoint = \"s3.example.net\"\n" + vol, 4, "must be a URL");
  ExpectErrorAt(std::string(kTarget) + "[s3]\naddressing = \"dns\"\n" + vol, 4, "'addressing'");
  ExpectErrorAt(std::string(kTarget) + "[s3]\nupload_limit = \"fast\"\n" + vol, 4, "'upload_limit'");
  ExpectErrorAt(std::string(kTarget) + "[s3]\nsecret_access_key = \"x\"\n" + vol, 4, "secret_access_key");
}

TEST(ConfigTest, RelativePathsFollowTheFileNotTheCwd) {
  test::TempDir dir;
  ASSERT_EQ(mkdir((dir / "conf").c_str(), 0700), 0);
  test::WriteFile(dir / "conf/c.toml",
                  "[target]\ntype = \"dir\"\npath = \"../repo\"\n[[volume]]\nname = \"v\"\nsource = \"src\"\n");
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof(old_cwd)), nullptr);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  Config config = LoadConfig("conf/c.toml");
  ASSERT_EQ(chdir(old_cwd), 0);
  EXPECT_EQ(config.file, "conf/c.toml");
  EXPECT_EQ(config.target.path, dir.path() + "/repo");
  EXPECT_EQ(config.volumes[0].source, dir.path() + "/conf/src");
}

TEST(ConfigTest, MalformedToml) {
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \n", 4, "expected value");
  ExpectErrorAt("[target\npath = \"/b\"\n", 1, "expected ']'");
  ExpectErrorAt(std::string(kTarget) + "path = \"/c\"\n", 3, "redefine");
}

TEST(ConfigTest, UnknownKeys) {
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\n\nsorce = 1\n",
                7, "unknown key 'sorce' in [[volume]]");
  ExpectErrorAt("[target]\npath = \"/b\"\ncompress = true\n", 3,
                "unknown key 'compress' in [target]");
  ExpectErrorAt(
      std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\n[extra]\nx = 1\n", 6,
      "unknown key 'extra'");
  ExpectErrorAt("verbose = true\n" + std::string(kTarget), 1, "unknown key 'verbose'");
  // A sub-table of a volume is an unknown key of that volume.
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\n[volume.opts]\n",
                6, "unknown key 'opts' in [[volume]]");
  // The earliest unknown key in the file is reported, not the first in key order.
  ExpectErrorAt("[target]\npath = \"/b\"\nzzz = 1\naaa = 2\n", 3, "'zzz'");
}

TEST(ConfigTest, WrongTypes) {
  ExpectErrorAt("[target]\npath = 42\n", 2, "'path' in [target] must be a string, not integer");
  ExpectErrorAt("[target]\ntype = true\npath = \"/b\"\n", 2, "must be a string, not boolean");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = [\"/s\"]\n", 5,
                "'source' in [[volume]] must be a string, not array");
  ExpectErrorAt(std::string(kTarget) +
                    "[[volume]]\nname = \"v\"\nsource = \"/s\"\none_file_system = \"yes\"\n",
                6, "'one_file_system' in [[volume]] must be a boolean, not string");
  ExpectErrorAt("target = \"/b\"\n", 1, "'target' must be a table, not string");
  ExpectErrorAt(std::string(kTarget) + "[volume]\nname = \"v\"\nsource = \"/s\"\n", 3,
                "must be an array of tables");
}

TEST(ConfigTest, Target) {
  std::string message = ParseError("[[volume]]\nname = \"v\"\nsource = \"/s\"\n");
  EXPECT_NE(message.find("/etc/vmback/cfg.toml"), std::string::npos) << message;
  EXPECT_NE(message.find("[target]"), std::string::npos) << message;

  ExpectErrorAt("\n[target]\ntype = \"store\"\n", 2, "[target] has no 'path'");
  ExpectErrorAt("[target]\npath = \"\"\n", 2, "'path' in [target] is empty");
  ExpectErrorAt("[target]\npath = \"/b\"\n\ntype = \"tape\"\n", 4, "target type 'tape' is unknown");
  ExpectErrorAt("[target]\ntype = \"zfs\"\n", 1, "[target] has no 'dataset'");
  ExpectErrorAt("[target]\ntype = \"zfs\"\ndataset = \"/mnt/usb\"\n", 3, "must name a ZFS dataset");
  ExpectErrorAt("[target]\ntype = \"zfs\"\ndataset = \"p/d@snap\"\n", 3, "must name a ZFS dataset");
  ExpectErrorAt("[target]\ntype = \"btrfs\"\ndataset = \"p/d\"\npath = \"/b\"\n", 1,
                "'dataset' belongs to a zfs target only");
  ExpectErrorAt("[target]\ntype = \"dir\"\npath = \"/b\"\nmirrors = [\"/c\"]\n", 1,
                "'mirrors' belongs to the built-in store");
  // A store's copies are named by absolute paths (issue 12, case 5): they
  // are recorded so in each copy's config.json.
  ExpectErrorAt("[target]\npath = \"usb1/vmback\"\n", 2,
                "'path' in [target] must be an absolute path for a store, not \"usb1/vmback\"");
  ExpectErrorAt("[target]\npath = \"/mnt/usb1/vmback\"\nmirrors = [\"/mnt/usb3/vmback\",\n  \"usb2/vmback\"]\n", 3,
                "'mirrors' in [target] must hold absolute paths, not \"usb2/vmback\"");
  ExpectErrorAt("[target]\ntype = \"btrfs\"\npath = \"/b\"\nblock_size = \"100K\"\n", 4, "power of two");
  ExpectErrorAt("[target]\npath = \"/b\"\nblock_size = \"128K\"\n", 3, "store init --block-size");
  ExpectErrorAt("[target]\ntype = \"dir\"\npath = \"/b\"\nsnapshot_prefix = \"x-\"\n", 4,
                "belongs to zfs and btrfs targets");
  ExpectErrorAt("[target]\ntype = \"zfs\"\ndataset = \"p/d\"\nsnapshot_prefix = \"a/b\"\n", 4,
                "without '/'");

  Config zfs = ParseConfig("[target]\ntype = \"zfs\"\ndataset = \"usb/vmback\"\nsnapshot_prefix = \"nightly-\"\n"
                           "block_size = \"64K\"\n[[volume]]\nname = \"v\"\nsource = \"/s\"\n",
                           "/etc/vmback/cfg.toml");
  EXPECT_EQ(zfs.target.type, TargetType::kZfs);
  EXPECT_EQ(zfs.target.dataset, "usb/vmback");
  EXPECT_EQ(zfs.target.snapshot_prefix, "nightly-");
  EXPECT_EQ(zfs.target.block_size, 64u * 1024);
  EXPECT_TRUE(zfs.target.path.empty());
  Config btrfs = ParseConfig("[target]\ntype = \"btrfs\"\npath = \"vols/backup\"\n[[volume]]\nname = \"v\"\n"
                             "source = \"/s\"\n",
                             "/etc/vmback/cfg.toml");
  EXPECT_EQ(btrfs.target.path, "/etc/vmback/vols/backup");
  EXPECT_EQ(btrfs.target.snapshot_prefix, "vmback-");
  EXPECT_EQ(btrfs.target.block_size, 0u);
}

TEST(ConfigTest, RunReportAndOutOfRangeNumbers) {
  const std::string vol = "[[volume]]\nname = \"v\"\nsource = \"/s\"\n";
  // Found by fuzzing: a number beyond int was truncated (4294967296 -> 0) and accepted.
  ExpectErrorAt(std::string(kTarget) + "[run]\nmax_freeze = 4294967296\n" + vol, 4, "max_freeze");
  ExpectErrorAt("[target]\npath = \"/b\"\nlock_wait = 4294967296\n" + vol, 3, "lock_wait");
  ExpectErrorAt(std::string(kTarget) + "[run]\nread_limit = \"fast\"\n" + vol, 4, "read_limit");
  ExpectErrorAt(std::string(kTarget) + "[report]\nkeep = 0\n" + vol, 4, "'keep'");
  ExpectErrorAt(std::string(kTarget) + "[report]\ncolour = 1\n" + vol, 4, "unknown key 'colour'");

  Config c = ParseConfig(std::string(kTarget) + "[run]\nread_limit = \"50M\"\n[report]\ndir = \"reports\"\nkeep = 7\n"
                         "metrics_file = \"/var/lib/node/vmback.prom\"\n" + vol,
                         "/etc/vmback/cfg.toml");
  EXPECT_EQ(c.run.read_limit, uint64_t{50} << 20);
  EXPECT_EQ(c.report.dir, "/etc/vmback/reports");
  EXPECT_EQ(c.report.keep, 7);
  EXPECT_EQ(c.report.metrics_file, "/var/lib/node/vmback.prom");
  EXPECT_EQ(c.run.full_read_every_ns, 0) << "no periodic full read unless asked";

  c = ParseConfig(std::string(kTarget) + "[run]\nfull_read_every = \"30d\"\n" + vol, "/etc/vmback/cfg.toml");
  EXPECT_EQ(c.run.full_read_every_ns, int64_t{30} * 86400 * 1000000000);
  ExpectErrorAt(std::string(kTarget) + "[run]\nfull_read_every = \"1M\"\n" + vol, 4, "1M");
  ExpectErrorAt(std::string(kTarget) + "[run]\nfull_read_every = 30\n" + vol, 4, "full_read_every");
}

TEST(ConfigTest, Volumes) {
  std::string message = ParseError(kTarget);
  EXPECT_NE(message.find("/etc/vmback/cfg.toml"), std::string::npos) << message;
  EXPECT_NE(message.find("[[volume]]"), std::string::npos) << message;

  ExpectErrorAt("volume = []\n" + std::string(kTarget), 1, "at least one [[volume]]");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nsource = \"/s\"\n", 3,
                "[[volume]] has no 'name'");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\n", 3,
                "[[volume]] has no 'source'");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"a/b\"\nsource = \"/s\"\n", 4,
                "invalid volume name 'a/b'");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"..\"\nsource = \"/s\"\n", 4,
                "invalid volume name");
}

// Issue 12: a volume without 'vms' quiesces the VMs with a disk on it
// ("auto"); vms = [] means none. Whether 'vms' and 'snapshot' were written
// is kept: an explicit snapshot = "none" is a choice, the default is not.
TEST(ConfigTest, VolumeDefaultsAreKnownFromChoices) {
  auto volume = [](const std::string& lines) {
    return ParseConfig(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\n" + lines,
                       "/etc/vmback/cfg.toml")
        .volumes.at(0);
  };
  VolumeConfig v = volume("");
  EXPECT_TRUE(v.vms_auto);
  EXPECT_FALSE(v.vms_given);
  EXPECT_TRUE(v.vms.empty());
  EXPECT_EQ(v.snapshot, SnapshotKind::kNone);
  EXPECT_FALSE(v.snapshot_given);

  v = volume("vms = []\nsnapshot = \"none\"\n");
  EXPECT_FALSE(v.vms_auto);
  EXPECT_TRUE(v.vms_given);
  EXPECT_TRUE(v.vms.empty());
  EXPECT_EQ(v.snapshot, SnapshotKind::kNone);
  EXPECT_TRUE(v.snapshot_given);

  v = volume("vms = \"auto\"\n");
  EXPECT_TRUE(v.vms_auto);
  EXPECT_TRUE(v.vms_given);

  v = volume("vms = [\"a\"]\n[[vm]]\nname = \"a\"\n");
  EXPECT_FALSE(v.vms_auto);
  EXPECT_EQ(v.vms, std::vector<std::string>{"a"});
}

TEST(ConfigTest, DuplicateVolumeNamesNameBothLines) {
  ExpectErrorAt(std::string(kTarget) +
                    "[[volume]]\nname = \"v\"\nsource = \"/a\"\n"   // line 3
                    "[[volume]]\nname = \"w\"\nsource = \"/b\"\n"   // line 6
                    "[[volume]]\nname = \"v\"\nsource = \"/c\"\n",  // line 9
                9, "duplicate volume name 'v' (first declared at line 3)");
}

TEST(ConfigTest, MissingFileNamesThePath) {
  test::TempDir dir;
  std::string file = dir / "nope.toml";
  try {
    LoadConfig(file);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    std::string message = e.what();
    EXPECT_NE(message.find(file), std::string::npos) << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  }
}

TEST(ConfigTest, UnreadableFileNamesThePath) {
  test::TempDir dir;  // a directory opens, but cannot be read as a file
  try {
    LoadConfig(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos) << e.what();
  }
}

TEST(ConfigTest, IsValidVolumeName) {
  EXPECT_TRUE(IsValidVolumeName("images"));
  EXPECT_TRUE(IsValidVolumeName("vm-1.qcow2"));
  EXPECT_TRUE(IsValidVolumeName("..."));
  EXPECT_TRUE(IsValidVolumeName("\xc3\xa9t\xc3\xa9"));  // UTF-8 is fine
  EXPECT_FALSE(IsValidVolumeName(""));
  EXPECT_FALSE(IsValidVolumeName("."));
  EXPECT_FALSE(IsValidVolumeName(".."));
  EXPECT_FALSE(IsValidVolumeName("a/b"));
  EXPECT_FALSE(IsValidVolumeName("/"));
  EXPECT_FALSE(IsValidVolumeName("a\nb"));
  EXPECT_FALSE(IsValidVolumeName("a\tb"));
  EXPECT_FALSE(IsValidVolumeName(std::string_view("a\0b", 3)));
  EXPECT_FALSE(IsValidVolumeName("a\x7f"));
  EXPECT_TRUE(IsValidVolumeName(std::string(255, 'x')));
  EXPECT_FALSE(IsValidVolumeName(std::string(256, 'x')));
}

}  // namespace vmback

namespace vmback {
namespace {

// track_changes keeps a snapshot as the next run's base: only reflink and
// btrfs snapshots can be kept and compared by their extents.
TEST(ConfigTest, TrackChangesNeedsAKeepableSnapshot) {
  Config c = ParseConfig(std::string(kTarget) +
                             "[[volume]]\nname = \"v\"\nsource = \"/s\"\nsnapshot = \"reflink\"\ntrack_changes = true\n",
                         "t.toml");
  EXPECT_TRUE(c.volumes[0].track_changes);
  EXPECT_FALSE(ParseConfig(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\n", "t.toml")
                   .volumes[0]
                   .track_changes);
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\nsnapshot = \"lvm\"\ntrack_changes = true\n",
                7, "track_changes needs snapshot = \"reflink\" or \"btrfs\"");
  ExpectErrorAt(std::string(kTarget) + "[[volume]]\nname = \"v\"\nsource = \"/s\"\ntrack_changes = \"yes\"\n", 6,
                "must be a boolean");
}

}  // namespace
}  // namespace vmback

namespace vmback {
namespace {

TEST(ConfigTest, StoreKeepBad) {
  const std::string kBase = "[target]\npath = \"/s\"\n[[volume]]\nname = \"v\"\nsource = \"/srv\"\n";
  const int64_t day = 24LL * 3600 * 1000000000;
  EXPECT_EQ(ParseConfig(kBase, "c.toml").store.keep_bad_ns, 30 * day);
  EXPECT_EQ(ParseConfig(kBase + "[store]\nkeep_bad = \"7d\"\n", "c.toml").store.keep_bad_ns,
            7 * day);
  try {
    ParseConfig(kBase + "[store]\nkeep_bad = \"soon\"\n", "c.toml");
    FAIL() << "keep_bad = \"soon\" was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("c.toml:7: 'keep_bad'"), std::string::npos) << e.what();
  }
}

// exclude and exclude_caches are decoded and every pattern checked here:
// a bad one is an error naming the file, line, volume and pattern.
TEST(ConfigTest, VolumeExcludes) {
  const std::string vol = std::string(kTarget) + "[[volume]]\nname = \"home\"\nsource = \"/home\"\n";  // 3-5
  Config c = ParseConfig(vol + "exclude = [\"/var/cache/*\", \"*.tmp\", \"tmp/\"]\nexclude_caches = true\n", "t.toml");
  ASSERT_EQ(c.volumes[0].exclude.size(), 3u);
  EXPECT_EQ(c.volumes[0].exclude[0], "/var/cache/*");
  EXPECT_EQ(c.volumes[0].exclude[2], "tmp/");
  EXPECT_TRUE(c.volumes[0].exclude_caches);
  Config d = ParseConfig(vol, "t.toml");
  EXPECT_TRUE(d.volumes[0].exclude.empty());
  EXPECT_FALSE(d.volumes[0].exclude_caches);

  ExpectErrorAt(vol + "exclude = [\"*.tmp\", \"[abc\"]\n", 6,
                "volume 'home': exclude pattern \"[abc\": a '[' is not closed by ']'");
  ExpectErrorAt(vol + "exclude = [\"\"]\n", 6, "volume 'home': exclude pattern \"\": it is empty");
  ExpectErrorAt(vol + "exclude = [\"!keep\"]\n", 6, "negation ('!') is not supported");
  ExpectErrorAt(vol + "exclude = [\"" + std::string(2000, 'a') + "\"]\n", 6, "longer than 1024 bytes");
  ExpectErrorAt(vol + "exclude = \"*.tmp\"\n", 6, "must be an array of strings");
  ExpectErrorAt(vol + "exclude = [1]\n", 6, "must hold only strings");
  ExpectErrorAt(vol + "exclude_caches = \"yes\"\n", 6, "must be a boolean");
  std::string many = "exclude = [";
  for (int i = 0; i <= 4096; i++) many += "\"p" + std::to_string(i) + "\",";
  ExpectErrorAt(vol + many + "]\n", 6, "volume 'home' has 4097 exclude patterns, more than 4096");
}

}  // namespace
// [[replicate]]: decoded for a zfs target, with its own retention; every
// name that goes on a command line or into an ssh command is checked here.
TEST(ConfigTest, Replicate) {
  const std::string kZfs =
      "[target]\ntype = \"zfs\"\ndataset = \"tank/vmback\"\n[retention]\ndaily = 7\n"
      "[[volume]]\nname = \"v\"\nsource = \"/srv\"\n";  // lines 1-8
  Config c = ParseConfig(kZfs +
                             "[[replicate]]\ndataset = \"usb2/vmback\"\n"
                             "[[replicate]]\ndataset = \"off/site-1/vmback\"\nhost = \"backup@site.example\"\n"
                             "[replicate.retention]\nmonthly = 12\nkeep_within = \"2d\"\n",
                         "/etc/vmback/cfg.toml");
  ASSERT_EQ(c.replicas.size(), 2u);
  EXPECT_EQ(c.replicas[0].dataset, "usb2/vmback");
  EXPECT_EQ(c.replicas[0].host, "");
  EXPECT_FALSE(c.replicas[0].retention_given);
  EXPECT_EQ(c.replicas[0].line, 9);
  EXPECT_EQ(c.replicas[1].where(), "backup@site.example:off/site-1/vmback");
  EXPECT_TRUE(c.replicas[1].retention_given);
  EXPECT_EQ(c.replicas[1].retention.monthly, 12);
  EXPECT_EQ(c.replicas[1].retention.daily, 0);
  EXPECT_EQ(c.replicas[1].retention.keep_within_ns, 2 * 24LL * 3600 * 1000000000);
  EXPECT_TRUE(ParseConfig(kZfs, "c.toml").replicas.empty());
  // An empty [replicate.retention]: the receiver keeps every point (vmback
  // destroys nothing there), not the target's [retention].
  c = ParseConfig(kZfs + "[[replicate]]\ndataset = \"a/b\"\n[replicate.retention]\n", "c.toml");
  ASSERT_EQ(c.replicas.size(), 1u);
  EXPECT_TRUE(c.replicas[0].retention_given);
  EXPECT_TRUE(c.replicas[0].retention.empty());

  ExpectErrorAt(kTarget + std::string("[[volume]]\nname = \"v\"\nsource = \"/srv\"\n[[replicate]]\ndataset = \"a/b\"\n"),
                6, "needs a zfs target, not a store target");
  ExpectErrorAt(kZfs + "[[replicate]]\nhost = \"h\"\n", 9, "[[replicate]] has no 'dataset'");
  for (const char* bad : {"a b/c", "-F", "a//b", "a/b/", "/abs", "a@snap", "a;rm -rf /", "a/$(x)", "a/../b", "a/.", ".."})
    ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"" + bad + "\"\n", 10, "must name a ZFS dataset");
  for (const char* bad : {"-oProxyCommand=x", "a b", "h;x", "h/x", ""})
    ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"a/b\"\nhost = \"" + bad + "\"\n", 11,
                  "must be an ssh destination");
  ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"tank/vmback\"\n", 9, "is the target's own dataset");
  ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"a/b\"\n[[replicate]]\ndataset = \"a/b\"\n", 11,
                "given twice (first at line 9)");
  ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"a/b\"\nsend = 1\n", 11, "unknown key 'send' in [[replicate]]");
  ExpectErrorAt(kZfs + "[[replicate]]\ndataset = \"a/b\"\n[replicate.retention]\ndaily = -1\n", 12,
                "'daily' must be between 0 and 1000000");
  ExpectErrorAt("replicate = \"a/b\"\n" + kZfs, 1, "must be an array of tables");
}

}  // namespace vmback
