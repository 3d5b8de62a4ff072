// The example configuration shipped in the package (packaging/
// vmback.toml.example) loads with the real config loader, and it and the
// man page (docs/vmback.8) document every key the loader accepts. The keys
// are read from the loader's own source (its CheckKeys lists), so a key
// added there fails this test until it is documented.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "config/config.h"
#include "helpers/test_util.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::ReadFile;
using test::RepoRoot;
using test::TempDir;
using test::WriteFile;

std::string ExamplePath() { return RepoRoot() + "/packaging/vmback.toml.example"; }

// Every string in every CheckKeys({...}) list of src/config/config.cpp.
// (Plain string search: std::regex recurses per character and would
// overflow the stack on a whole source file.)
std::set<std::string> AcceptedKeys() {
  std::string source = ReadFile(RepoRoot() + "/src/config/config.cpp");
  std::set<std::string> keys;
  const std::string open = "CheckKeys({";
  for (size_t pos = source.find(open); pos != std::string::npos; pos = source.find(open, pos)) {
    pos += open.size();
    size_t end = source.find('}', pos);
    if (end == std::string::npos) break;
    std::string body = source.substr(pos, end - pos);
    for (size_t q = body.find('"'); q != std::string::npos; q = body.find('"', q)) {
      size_t close = body.find('"', q + 1);
      if (close == std::string::npos) break;
      keys.insert(body.substr(q + 1, close - q - 1));
      q = close + 1;
    }
  }
  return keys;
}

TEST(ExampleConfigTest, LoadsWithTheRealLoader) {
  Config c;
  try {
    c = LoadConfig(ExamplePath());
  } catch (const Error& e) {
    FAIL() << e.what();
  }
  EXPECT_EQ(c.target.type, TargetType::kStore);
  EXPECT_EQ(c.target.path, "/mnt/usb1/vmback");
  EXPECT_EQ(c.target.mirrors, std::vector<std::string>{"/mnt/usb2/vmback"});
  EXPECT_EQ(c.target.lock_wait_seconds, 600);
  EXPECT_EQ(c.retention.keep_last, 3);
  EXPECT_EQ(c.retention.daily, 7);
  EXPECT_GT(c.retention.keep_within_ns, 0);
  EXPECT_EQ(c.libvirt_uri, "qemu:///system");
  EXPECT_EQ(c.run.state_dir, "/var/lib/vmback");
  EXPECT_EQ(c.report.dir, "/var/lib/vmback/reports");
  EXPECT_EQ(c.report.keep, 30);
  ASSERT_EQ(c.vms.size(), 2u);
  EXPECT_EQ(c.vms[0].quiesce, QuiesceMethod::kAgent);
  ASSERT_EQ(c.volumes.size(), 3u);
  EXPECT_EQ(c.volumes[0].snapshot, SnapshotKind::kLvm);
  EXPECT_EQ(c.volumes[0].vms, (std::vector<std::string>{"MySQL", "web"}));
  EXPECT_TRUE(c.volumes[1].vms_auto);
  EXPECT_EQ(c.volumes[2].source, "/");
  // The host's root is read live by choice: no warning every night.
  EXPECT_EQ(c.volumes[2].snapshot, SnapshotKind::kNone);
  EXPECT_TRUE(c.volumes[2].snapshot_given);
}

// The keys shown commented out for the in-place targets are right too.
TEST(ExampleConfigTest, TheCommentedZfsTargetLoads) {
  std::string text = ReadFile(ExamplePath());
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t pos = text.find(from);
    ASSERT_NE(pos, std::string::npos) << from;
    text.replace(pos, from.size(), to);
  };
  replace("type = \"store\"", "type = \"zfs\"");
  replace("\npath = \"/mnt/usb1/vmback\"", "\n");
  replace("\nmirrors = [", "\n# mirrors = [");
  replace("# dataset = ", "dataset = ");
  replace("# snapshot_prefix = ", "snapshot_prefix = ");
  replace("# block_size = ", "block_size = ");
  TempDir tmp;
  WriteFile(tmp / "zfs.toml", text);
  try {
    Config c = LoadConfig(tmp / "zfs.toml");
    EXPECT_EQ(c.target.type, TargetType::kZfs);
    EXPECT_EQ(c.target.dataset, "usbpool/vmback");
  } catch (const Error& e) {
    ADD_FAILURE() << e.what() << "\n" << text;
  }
}

TEST(ExampleConfigTest, ExampleAndManPageDocumentEveryKey) {
  std::set<std::string> keys = AcceptedKeys();
  ASSERT_GE(keys.size(), 20u) << "could not find the loader's CheckKeys lists";
  std::string example = ReadFile(ExamplePath());
  std::string man = ReadFile(RepoRoot() + "/docs/vmback.8");
  for (const auto& key : keys) {
    SCOPED_TRACE(key);
    // A key line ("key = ", maybe commented out) or a table header.
    bool in_example = false;
    // (an array of tables that needs another target: commented out too)
    for (const std::string& form : {"\n" + key + " = ", "\n# " + key + " = ", "\n[" + key + "]\n",
                                    "\n[[" + key + "]]\n", "\n# [[" + key + "]]\n"})
      in_example = in_example || example.find(form) != std::string::npos;
    EXPECT_TRUE(in_example) << "packaging/vmback.toml.example lacks '" << key << "'";
    EXPECT_NE(man.find(key), std::string::npos) << "docs/vmback.8 lacks '" << key << "'";
  }
}

}  // namespace
}  // namespace vmback
