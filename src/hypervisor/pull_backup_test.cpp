// Tests of the pull-mode backup pieces of hypervisor/: the XML (checked
// against libvirt's own schemas with virt-xml-validate), checkpoint names,
// the checkpoint calls on libvirt's test driver (which has checkpoints but no
// backup jobs), and the NBD socket directory as the QEMU user sees it.
#include <grp.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "hypervisor/hypervisor.h"
#include "hypervisor/libvirt_internal.h"
#include "os/subprocess.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::Exec;
using test::TempDir;
using test::WriteFile;

PullBackupSpec Spec() {
  PullBackupSpec spec;
  spec.socket = "/run/vmback/nbd-1/o'dd&<name>\".sock";
  spec.disks = {{"vda", "/run/vmback/nbd-1/vda.scratch"}, {"vdb", "/run/vmback/nbd-1/vdb.scratch"}};
  spec.skip = {"sda"};
  spec.incremental = "vmback-2026-12-03T020000Z";
  spec.checkpoint = "vmback-2026-12-04T020000Z";
  return spec;
}

// Validates xml against libvirt's schema (e.g. "domainbackup") when
// virt-xml-validate is installed; returns what it said.
void ExpectValid(const std::string& xml, const std::string& schema) {
  TempDir dir;
  WriteFile(dir / "doc.xml", xml);
  RunResult r = Exec({"virt-xml-validate", dir / "doc.xml", schema});
  if (r.exit_code == 127) return;  // not installed (libvirt-clients)
  EXPECT_EQ(r.exit_code, 0) << xml << r.out << r.err;
}

TEST(PullBackupXmlTest, IncrementalWithScratchFilesEscaped) {
  std::string xml = PullBackupXml(Spec());
  EXPECT_EQ(xml,
            "<domainbackup mode='pull'>\n"
            "  <incremental>vmback-2026-12-03T020000Z</incremental>\n"
            "  <server transport='unix' socket='/run/vmback/nbd-1/o&apos;dd&amp;&lt;name&gt;&quot;.sock'/>\n"
            "  <disks>\n"
            "    <disk name='vda' backup='yes' type='file'>\n"
            "      <scratch file='/run/vmback/nbd-1/vda.scratch'/>\n"
            "    </disk>\n"
            "    <disk name='vdb' backup='yes' type='file'>\n"
            "      <scratch file='/run/vmback/nbd-1/vdb.scratch'/>\n"
            "    </disk>\n"
            "    <disk name='sda' backup='no'/>\n"
            "  </disks>\n"
            "</domainbackup>\n");
  ExpectValid(xml, "domainbackup");
}

TEST(PullBackupXmlTest, FullBackupHasNoIncremental) {
  PullBackupSpec spec = Spec();
  spec.incremental.clear();
  spec.skip.clear();
  std::string xml = PullBackupXml(spec);
  EXPECT_EQ(xml.find("<incremental>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<disk name='vdb' backup='yes'"), std::string::npos) << xml;
  ExpectValid(xml, "domainbackup");
}

TEST(PullBackupXmlTest, CheckpointHasABitmapPerDisk) {
  std::string xml = CheckpointXml(Spec());
  EXPECT_EQ(xml,
            "<domaincheckpoint>\n"
            "  <name>vmback-2026-12-04T020000Z</name>\n"
            "  <disks>\n"
            "    <disk name='vda' checkpoint='bitmap'/>\n"
            "    <disk name='vdb' checkpoint='bitmap'/>\n"
            "    <disk name='sda' checkpoint='no'/>\n"
            "  </disks>\n"
            "</domaincheckpoint>\n");
  ExpectValid(xml, "domaincheckpoint");
  PullBackupSpec none;
  none.checkpoint = "vmback-x";
  ExpectValid(CheckpointXml(none), "domaincheckpoint");  // no empty <disks>
}

TEST(PullBackupXmlTest, ControlCharactersAndMissingTargetsAreRefused) {
  PullBackupSpec spec = Spec();
  spec.checkpoint = "vmback-\x01";
  try {
    CheckpointXml(spec);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("the checkpoint name"), std::string::npos) << e.what();
  }
  spec = Spec();
  spec.disks[1].target.clear();
  EXPECT_THROW(PullBackupXml(spec), Error);
}

TEST(CheckpointNameTest, OnlyVmbacksOwn) {
  EXPECT_EQ(CheckpointName("2026-12-04T020000Z"), "vmback-2026-12-04T020000Z");
  EXPECT_TRUE(IsVmbackCheckpoint("vmback-2026-12-04T020000Z"));
  EXPECT_FALSE(IsVmbackCheckpoint("vmback-"));
  EXPECT_FALSE(IsVmbackCheckpoint("nightly"));
  EXPECT_FALSE(IsVmbackCheckpoint("xvmback-1"));
}

// ------------------------------------------------------------ test driver

// test:///default: its state is shared by the connections of this process,
// so a raw connection makes the checkpoints vmback then lists and deletes.
class CheckpointDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = virConnectOpen("test:///default");
    ASSERT_NE(raw_, nullptr);
    dom_ = virDomainLookupByName(raw_, "test");
    ASSERT_NE(dom_, nullptr);
    hv_ = ConnectLibvirt("test:///default", &log_);
  }
  void TearDown() override {
    if (dom_ != nullptr) {
      for (const char* n : {"vmback-a", "vmback-b", "theirs"}) {
        virDomainCheckpointPtr c = virDomainCheckpointLookupByName(dom_, n, 0);
        if (c != nullptr) {
          virDomainCheckpointDelete(c, 0);
          virDomainCheckpointFree(c);
        }
      }
      virDomainFree(dom_);
    }
    if (raw_ != nullptr) virConnectClose(raw_);
  }
  void Make(const std::string& name) {
    PullBackupSpec spec;
    spec.checkpoint = name;
    spec.disks = {{"vda", ""}};
    virDomainCheckpointPtr c = virDomainCheckpointCreateXML(dom_, CheckpointXml(spec).c_str(), 0);
    ASSERT_NE(c, nullptr) << virGetLastErrorMessage();
    virDomainCheckpointFree(c);
  }

  virConnectPtr raw_ = nullptr;
  virDomainPtr dom_ = nullptr;
  Logger log_;
  std::unique_ptr<Hypervisor> hv_;
};

TEST_F(CheckpointDriverTest, ListsAllAndDeletesOnlyVmbacks) {
  Make("vmback-a");
  Make("theirs");
  Make("vmback-b");
  EXPECT_EQ(hv_->Checkpoints("test"), (std::vector<std::string>{"theirs", "vmback-a", "vmback-b"}));
  try {
    hv_->DeleteCheckpoint("test", "theirs");
    FAIL() << "deleted a checkpoint vmback did not make";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'theirs' was not made by vmback"), std::string::npos)
        << e.what();
  }
  hv_->DeleteCheckpoint("test", "vmback-a");
  EXPECT_EQ(hv_->Checkpoints("test"), (std::vector<std::string>{"theirs", "vmback-b"}));
  try {
    hv_->DeleteCheckpoint("test", "vmback-a");
    FAIL() << "no error for a checkpoint that is gone";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("VM 'test'"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointDriverTest, BackupJobsFailClearlyWhereUnsupported) {
  try {
    hv_->BeginBackup("test", Spec());
    FAIL() << "the test driver began a backup";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("VM 'test': cannot begin a pull-mode backup (incremental from "
                     "'vmback-2026-12-03T020000Z', checkpoint 'vmback-2026-12-04T020000Z')"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("not supported"), std::string::npos) << m;
  }
  try {
    hv_->EndBackup("test");
    FAIL() << "the test driver ended a backup job";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("VM 'test': cannot end its backup job"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(hv_->Checkpoints("test").empty()) << "a failed begin made its checkpoint";
  try {
    hv_->Checkpoints("nosuchvm");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  }
}

// A hung libvirtd or QEMU monitor: each of the four pull-backup calls is
// given up at its deadline, with an error naming the VM and the call, long
// before the call itself would return.
TEST_F(CheckpointDriverTest, EachBackupCallIsGivenUpAtItsDeadline) {
  using std::chrono::milliseconds;
  using libvirt_internal::SetBackupCallDelayForTesting;
  using libvirt_internal::SetBackupCallTimeoutForTesting;
  Make("vmback-a");
  SetBackupCallTimeoutForTesting(milliseconds(200));
  struct Case {
    const char* call;  // as SetBackupCallDelayForTesting names it
    const char* said;  // in the message
    std::function<void()> run;
  };
  const std::vector<Case> cases = {
      {"backup-begin", "VM 'test': beginning a pull-mode backup (full) (virDomainBackupBegin) timed out after 200 ms",
       [&] {
         PullBackupSpec spec = Spec();
         spec.incremental.clear();
         spec.checkpoint.clear();
         hv_->BeginBackup("test", spec);
       }},
      {"backup-end", "VM 'test': ending its backup job (virDomainAbortJob) timed out after 200 ms",
       [&] { hv_->EndBackup("test"); }},
      {"checkpoint-list", "VM 'test': listing its checkpoints (virDomainListAllCheckpoints) timed out after 200 ms",
       [&] { hv_->Checkpoints("test"); }},
      {"checkpoint-delete",
       "VM 'test': deleting checkpoint 'vmback-a' (virDomainCheckpointDelete) timed out after 200 ms",
       [&] { hv_->DeleteCheckpoint("test", "vmback-a"); }},
  };
  for (const Case& c : cases) {
    SetBackupCallDelayForTesting(c.call, milliseconds(1500));
    const auto start = std::chrono::steady_clock::now();
    try {
      c.run();
      ADD_FAILURE() << c.call << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.said), std::string::npos) << c.call << ": " << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000)) << c.call << " was waited for";
    SetBackupCallDelayForTesting(c.call, milliseconds(0));
  }
  SetBackupCallTimeoutForTesting(milliseconds(0));
  // The calls given up still finish on their own: the late delete is done.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!hv_->Checkpoints("test").empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(milliseconds(50));
  EXPECT_TRUE(hv_->Checkpoints("test").empty());
}

// ------------------------------------------------------------ socket directory

// Runs argv as user and group (setpriv, with the user's other groups too).
RunResult RunAs(const std::string& user, const std::string& group, std::vector<std::string> argv) {
  std::vector<std::string> full = {"setpriv", "--reuid=" + user, "--regid=" + group, "--init-groups"};
  full.insert(full.end(), argv.begin(), argv.end());
  return Exec(full);
}

std::vector<std::string> BindSocket(const std::string& path) {
  return {"/usr/bin/python3", "-c",
          "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", path};
}

TEST(NbdSocketDirTest, TheQemuUserBindsThereAndNobodyElseDoes) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (chown to the QEMU group)";
  if (getgrnam(kQemuGroup) == nullptr) GTEST_SKIP() << "no group " << kQemuGroup << " (libvirt)";
  TempDir parent;
  ASSERT_EQ(chmod(parent.path().c_str(), 0711), 0);
  std::string dir = MakeNbdSocketDir(parent.path());
  struct stat st;
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01730u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, getgrnam(kQemuGroup)->gr_gid);

  RunResult r = RunAs("libvirt-qemu", kQemuGroup, BindSocket(dir + "/vm.sock"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunAs("libvirt-qemu", kQemuGroup, {"ls", dir});
  EXPECT_NE(r.exit_code, 0) << "the QEMU user could list the directory";
  r = RunAs("nobody", "nogroup", BindSocket(dir + "/other.sock"));
  EXPECT_NE(r.exit_code, 0) << "another user could bind a socket there";
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
}

TEST(NbdSocketDirTest, AMissingGroupIsAnErrorNamingIt) {
  TempDir parent;
  try {
    MakeNbdSocketDir(parent.path(), "vmback-no-such-group");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("vmback-no-such-group"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vmback
