// Tests of snapshot = "libvirt" in `vmback run` (job/libvirt_volume.h): the
// disks of a running VM are read from its pull-mode backup export, fully on
// the first run and then only the extents its checkpoint's dirty bitmap
// marks, and every broken chain is a full read that says why.
//
// The hypervisor here stands in for libvirtd (tests/e2e/guest.sh runs the
// real one): its BeginBackup exports the VM's qcow2 image with qemu-nbd, as
// libvirt does (export "vda", the bitmap "backup-vda" holding what changed
// since the checkpoint the backup builds on), and keeps one persistent qcow2
// bitmap per checkpoint (qemu-img bitmap). The guest's writes are made with
// qemu-io between runs. Skipped without qemu-nbd (Debian: qemu-utils) or the
// libvirt-qemu group (the socket directory's group).
#include "job/libvirt_volume.h"

#include <grp.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"
#include "helpers/nbd_server.h"
#include "helpers/test_util.h"
#include "job/job.h"
#include "job/journal.h"
#include "run/restore.h"
#include "store/store.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using test::Exec;
using test::ReadFile;
using test::WriteFile;

constexpr uint64_t kDiskSize = 8 << 20;
constexpr uint64_t kGranule = 64 << 10;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void RunOk(const std::vector<std::string>& argv) {
  RunResult r = Exec(argv);
  ASSERT_EQ(r.exit_code, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": " << r.err;
}

// libvirt's part, played with qemu-nbd and qcow2 bitmaps.
class ExportingHypervisor : public Hypervisor {
 public:
  ExportingHypervisor(std::string dir, std::string image) : dir_(std::move(dir)), image_(std::move(image)) {}

  DomainInfo web;
  std::vector<std::string> checkpoints;
  std::vector<PullBackupSpec> begun;
  int ended = 0;

  DomainInfo Domain(const std::string& name) override {
    if (name != web.name) ThrowNotFound("no VM " + name);
    return web;
  }
  std::vector<DomainInfo> Domains() override { return {web}; }
  std::unique_ptr<QuiescedVm> Quiesce(const std::string&, QuiesceMethod, std::chrono::milliseconds) override {
    return nullptr;  // nothing to undo: the test has no guest to freeze
  }
  void Recover(const std::string&, QuiesceMethod) override {}

  void BeginBackup(const std::string& vm, const PullBackupSpec& spec) override {
    if (server_) throw Error(ErrorKind::kOther, vm + ": a backup job is running already");
    if (!spec.incremental.empty() &&
        std::find(checkpoints.begin(), checkpoints.end(), spec.incremental) == checkpoints.end())
      throw Error(ErrorKind::kOther, vm + ": no checkpoint " + spec.incremental);
    begun.push_back(spec);
    if (!spec.incremental.empty())
      RunOk({"qemu-img", "bitmap", "--add", "--merge", spec.incremental, image_, "backup-vda"});
    if (!spec.checkpoint.empty()) {
      RunOk({"qemu-img", "bitmap", "--add", "--enable", image_, spec.checkpoint});
      checkpoints.push_back(spec.checkpoint);
    }
    std::vector<std::string> argv = {"qemu-nbd", "--read-only", "--persistent", "--shared=8",
                                     "--socket=" + spec.socket, "--export-name=vda", "--format=qcow2"};
    if (!spec.incremental.empty()) argv.push_back("--bitmap=backup-vda");
    argv.push_back(image_);
    server_ = std::make_unique<test::NbdServer>(argv, spec.socket, dir_ + "/qemu-nbd.log");
  }
  void EndBackup(const std::string& vm) override {
    if (!server_) throw Error(ErrorKind::kOther, vm + ": no job is active");
    server_.reset();
    if (!begun.back().incremental.empty()) RunOk({"qemu-img", "bitmap", "--remove", image_, "backup-vda"});
    ended++;
  }
  std::vector<std::string> Checkpoints(const std::string&) override {
    std::vector<std::string> sorted = checkpoints;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  void DeleteCheckpoint(const std::string& vm, const std::string& name) override {
    auto it = std::find(checkpoints.begin(), checkpoints.end(), name);
    if (it == checkpoints.end()) ThrowNotFound(vm + ": no checkpoint " + name);
    checkpoints.erase(it);
    RunOk({"qemu-img", "bitmap", "--remove", image_, name});
  }
  bool Exporting() const { return server_ != nullptr; }

 private:
  std::string dir_;
  std::string image_;
  std::unique_ptr<test::NbdServer> server_;
};

class LibvirtVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Exec({"qemu-nbd", "--version"}).exit_code != 0) GTEST_SKIP() << "qemu-nbd is not installed (qemu-utils)";
    if (::getgrnam(kQemuGroup) == nullptr) GTEST_SKIP() << "no group " << kQemuGroup << " (libvirt)";
    root_ = CanonicalPath(tmp_.path());
    fs::create_directories(Root("images"));
    image_ = Root("images/web.qcow2");
    RunOk({"qemu-img", "create", "-q", "-f", "qcow2", image_, std::to_string(kDiskSize)});
    Write(0, 1 << 20, 1);
    Write(3 << 20, 512 << 10, 2);
    WriteFile(Root("images/notes.txt"), "not a disk\n");
    hv_ = std::make_unique<ExportingHypervisor>(root_, image_);
    hv_->web = {"web", true, false, {image_}, {{image_, "vda", "qcow2"}}, ""};
    Store::Init(Env::Default(), Root("store"), 16384);
  }

  std::string Root(const std::string& rel) const { return root_ + "/" + rel; }

  // The guest writes: pattern over [offset, offset + length).
  void Write(uint64_t offset, uint64_t length, int pattern) {
    RunOk({"qemu-io", "-f", "qcow2",
           "-c", "write -P " + std::to_string(pattern) + " " + std::to_string(offset) + " " + std::to_string(length),
           image_});
  }

  Config MakeConfig(const std::string& target = "") const {
    return ParseConfig("[target]\n" + (target.empty() ? "path = \"" + Root("store") + "\"" : target) + "\n\n[run]\nstate_dir = \"" + Root("state") +
                           "\"\nnbd_dir = \"" + Root("nbd") + "\"\n\n[[volume]]\nname = \"images\"\nsource = \"" + Root("images") +
                           "\"\nsnapshot = \"libvirt\"\n",
                       Root("vmback.toml"));
  }

  JobReport Run(StepHook hook = {}, bool full_read = false, JobKind kind = JobKind::kRun,
                const std::string& target = "") {
    JobOptions o;
    o.kind = kind;
    o.hook = std::move(hook);
    o.full_read = full_read;
    o.run_id = "r" + std::to_string(++runs_);
    return RunJob(MakeConfig(target), Env::Default(), hv_.get(), o, &log_);
  }

  // The point holds the disk as the guest sees it (qemu-img convert's raw
  // image) and the other file as it is.
  void ExpectRestores(const std::string& point) {
    RunOk({"qemu-img", "convert", "-U", "-O", "raw", image_, Root("expected.raw")});
    auto store = Store::Open(Env::Default(), Root("store"), LockMode::kShared, &log_);
    const std::string dest = Root("restore-" + point);
    Restore(store.get(), point, "", dest, Overwrite::kRefuse, &log_);
    EXPECT_TRUE(ReadFile(dest + "/images/web.qcow2") == ReadFile(Root("expected.raw"))) << point;
    EXPECT_EQ(ReadFile(dest + "/images/notes.txt"), "not a disk\n");
    fs::remove_all(dest);
  }

  const VolumeStats& Volume(const JobReport& r) { return r.backup.volumes.at(0); }

  // The block list ids of the disk's entry in point.
  std::vector<Hash> DiskBlocks(const std::string& point) {
    auto store = Store::Open(Env::Default(), Root("store"), LockMode::kShared, &log_);
    const Entry root = store->ReadPoint(point).volumes.at(0).root;
    for (const Entry& e : DecodeTree(store->Get(root.subtree, BlobType::kTree), "tree"))
      if (e.name == "web.qcow2") return e.content;
    ADD_FAILURE() << "no web.qcow2 in " << point;
    return {};
  }

  // Nothing of a backup job is left: no export, no socket directory, no journal.
  void ExpectNothingLeft(const std::string& what) {
    EXPECT_FALSE(hv_->Exporting()) << what;
    if (fs::exists(Root("nbd")))
      for (const auto& e : fs::directory_iterator(Root("nbd"))) ADD_FAILURE() << what << ": left " << e.path();
    EXPECT_FALSE(fs::exists(Root("state/journal"))) << what;
  }

  test::TempDir tmp_;
  std::string root_;
  std::string image_;
  std::unique_ptr<ExportingHypervisor> hv_;
  Logger log_{LogLevel::kError, false};
  int runs_ = 0;
};

TEST_F(LibvirtVolumeTest, FirstRunIsFullThenOnlyTheDirtyExtentsAreRead) {
  JobReport r1 = Run();
  ASSERT_EQ(hv_->begun.size(), 1u);
  EXPECT_EQ(hv_->begun[0].incremental, "");
  EXPECT_EQ(hv_->begun[0].checkpoint, "vmback-r1");
  EXPECT_EQ(hv_->begun[0].timeout, std::chrono::milliseconds(10000)) << "[run] call_timeout bounds the begin";
  EXPECT_EQ(Volume(r1).change_method, "full-read");
  ExpectRestores(r1.point);
  ExpectNothingLeft("run 1");

  // The guest changes 4 KiB in one granule and 100 KiB across two.
  Write(1 << 20, 4096, 7);
  Write((5 << 20) + 30000, 100 << 10, 8);
  JobReport r2 = Run();
  ASSERT_EQ(hv_->begun.size(), 2u);
  EXPECT_EQ(hv_->begun[1].incremental, "vmback-r1");
  EXPECT_EQ(Volume(r2).change_method, "dirty-bitmap") << Volume(r2).change_why;
  EXPECT_EQ(Volume(r2).files_by_change_list, 1u);
  EXPECT_GT(Volume(r2).bytes_read, 0u);
  EXPECT_LE(Volume(r2).bytes_read, 4 * kGranule + 16) << "more than the dirty granules was read";
  ExpectRestores(r2.point);
  // The older checkpoint goes once the newer point is committed.
  EXPECT_EQ(hv_->checkpoints, std::vector<std::string>{"vmback-r2"});
  ExpectNothingLeft("run 2");

  // The same disk read in full makes the same point, block id for block id.
  JobReport full = Run({}, true);
  EXPECT_EQ(Volume(full).change_method, "full-read");
  EXPECT_EQ(DiskBlocks(full.point), DiskBlocks(r2.point)) << "the dirty-bitmap point differs from a full read's";
  EXPECT_FALSE(DiskBlocks(r2.point).empty());

  // Nothing written: nothing read.
  JobReport r4 = Run();
  EXPECT_EQ(hv_->begun[3].incremental, "vmback-r3");
  EXPECT_LE(Volume(r4).bytes_read, 16u);
  ExpectRestores(r4.point);
}

TEST_F(LibvirtVolumeTest, ABrokenChainIsAFullReadThatSaysWhy) {
  Run();
  // Someone deleted the checkpoint (virsh checkpoint-delete).
  hv_->checkpoints.clear();
  Write(2 << 20, 4096, 3);
  JobReport r = Run();
  EXPECT_EQ(hv_->begun.back().incremental, "");
  EXPECT_EQ(Volume(r).change_method, "full-read");
  EXPECT_TRUE(Has(Volume(r).change_why, "checkpoint vmback-r1 of VM web is gone")) << Volume(r).change_why;
  ExpectRestores(r.point);

  // The disk was replaced: another source for vda than recorded.
  const std::string state = ReadFile(Root("state/checkpoint-web.json"));
  std::string other = state;
  other.replace(other.find(image_), image_.size(), Root("images/old.qcow2"));
  WriteFile(Root("state/checkpoint-web.json"), other);
  r = Run();
  EXPECT_TRUE(Has(Volume(r).change_why, "disk vda of VM web was replaced")) << Volume(r).change_why;

  // A record vmback did not write: not JSON, or a checkpoint name it never makes.
  WriteFile(Root("state/checkpoint-web.json"), "{not json");
  r = Run();
  EXPECT_TRUE(Has(Volume(r).change_why, "is not valid JSON")) << Volume(r).change_why;
  WriteFile(Root("state/checkpoint-web.json"),
            R"({"vm":"web","checkpoint":"vmback-../../x","point":"p","disks":{"vda":")" + image_ + "\"}}");
  r = Run();
  EXPECT_TRUE(Has(Volume(r).change_why, "not a checkpoint record vmback wrote")) << Volume(r).change_why;
  EXPECT_EQ(hv_->begun.back().incremental, "");
  ExpectRestores(r.point);

  // A full read asked for (--full-read) reads all, though the chain holds.
  r = Run({}, true);
  EXPECT_EQ(Volume(r).change_method, "full-read");
  EXPECT_GT(Volume(r).bytes_read, uint64_t{1} << 20);
}

TEST_F(LibvirtVolumeTest, ARawDiskHasNoCheckpointAndIsReadInFullEachTime) {
  hv_->web.disks[0].format = "raw";
  Run();
  Write(1 << 20, 4096, 5);
  JobReport r = Run();
  EXPECT_EQ(hv_->begun.back().checkpoint, "");
  EXPECT_TRUE(hv_->checkpoints.empty());
  EXPECT_TRUE(Has(Volume(r).change_why, "disk vda of VM web is raw, not qcow2")) << Volume(r).change_why;
}

TEST_F(LibvirtVolumeTest, AFailureWhileReadingEndsTheJobAndLeavesNoJournal) {
  EXPECT_THROW(Run([](const std::string& step) {
                 if (step == "sync") throw Error(ErrorKind::kIo, "injected");
               }),
               Error);
  EXPECT_EQ(hv_->ended, 1);
  ExpectNothingLeft("after a failure");
  // The checkpoint made with the failed run is not the chain's: the next
  // run is still a first (full) one, and then builds on its own.
  JobReport r = Run();
  EXPECT_EQ(hv_->begun.back().incremental, "");
  EXPECT_EQ(hv_->checkpoints, std::vector<std::string>{"vmback-r2"});
  ExpectRestores(r.point);
}

TEST_F(LibvirtVolumeTest, TheNextRunEndsTheJobOfAKilledRun) {
  // What a run killed while reading leaves: its journal names the job.
  fs::create_directories(Root("nbd/nbd-0a1b2c"));
  fs::create_directories(Root("state"));
  ASSERT_EQ(::chmod(Root("state").c_str(), 0700), 0);
  hv_->BeginBackup("web", {Root("nbd/nbd-0a1b2c/nbd.sock"), {{"vda", ""}}, {}, "", ""});
  {
    NbdDisk serving(Root("nbd/nbd-0a1b2c/nbd.sock"), "vda", {});  // the export is up
    ASSERT_EQ(serving.Size(), kDiskSize);
  }
  WriteFile(Root("state/journal"), "{\"op\":\"start\",\"run\":\"r0\"}\n"
                                   "{\"op\":\"backup-job\",\"vm\":\"web\",\"dir\":\"" + Root("nbd/nbd-0a1b2c") +
                                       "\"}\n");
  JobReport r = Run();
  ASSERT_EQ(r.recovered.size(), 1u);
  EXPECT_TRUE(Has(r.recovered[0], "ended the backup job of VM web")) << r.recovered[0];
  EXPECT_FALSE(fs::exists(Root("nbd/nbd-0a1b2c")));
  ExpectNothingLeft("after recovery");
  ExpectRestores(r.point);
}

TEST_F(LibvirtVolumeTest, AJournalNamingAnotherDirectoryIsRefusedAndNothingIsRemoved) {
  fs::create_directories(Root("state"));
  ASSERT_EQ(::chmod(Root("state").c_str(), 0700), 0);
  fs::create_directories(Root("precious"));
  WriteFile(Root("precious/keep"), "mine\n");
  WriteFile(Root("state/journal"), "{\"op\":\"start\",\"run\":\"r0\"}\n"
                                   "{\"op\":\"backup-job\",\"vm\":\"web\",\"dir\":\"" + Root("precious") + "\"}\n");
  try {
    Run();
    ADD_FAILURE() << "a forged journal was acted on";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "refusing backup job record of VM web")) << e.what();
  }
  EXPECT_EQ(ReadFile(Root("precious/keep")), "mine\n");
  EXPECT_TRUE(hv_->begun.empty());
}

TEST_F(LibvirtVolumeTest, BackupDashCIsRefusedNamingTheVolume) {
  try {
    Run({}, false, JobKind::kBackup);
    ADD_FAILURE() << "backup -c read a libvirt volume";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "volume 'images' has snapshot = \"libvirt\"")) << e.what();
    EXPECT_TRUE(Has(e.what(), "vmback run")) << e.what();
  }
  EXPECT_TRUE(hv_->begun.empty());
}

TEST_F(LibvirtVolumeTest, TheSocketParentIsRootsAndOthersMayNotWriteIt) {
  Run();
  struct stat st;
  ASSERT_EQ(::stat(Root("nbd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u) << "QEMU may enter it; nobody else may list or write it";
  // Planted wide open: refused before any job begins.
  ASSERT_EQ(::chmod(Root("nbd").c_str(), 0777), 0);
  const size_t begun = hv_->begun.size();
  try {
    Run();
    ADD_FAILURE() << "a world-writable nbd_dir was used";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "nbd_dir " + Root("nbd") + " may be written by others: refused")) << e.what();
  }
  EXPECT_EQ(hv_->begun.size(), begun);
  ExpectNothingLeft("after the refusal");
}

TEST_F(LibvirtVolumeTest, PlanSaysWhichDisksAreReadAndFromWhichCheckpoint) {
  std::string plan = PlanJob(MakeConfig(), Env::Default(), hv_.get(), &log_).text;
  EXPECT_TRUE(Has(plan, "VM web: libvirt pull-mode backup of vda (" + image_ + "), full: no checkpoint yet")) << plan;
  EXPECT_TRUE(hv_->begun.empty()) << "plan began a backup";
  Run();
  plan = PlanJob(MakeConfig(), Env::Default(), hv_.get(), &log_).text;
  EXPECT_TRUE(Has(plan, "incremental from checkpoint vmback-r1")) << plan;
  EXPECT_EQ(hv_->begun.size(), 1u);
}

TEST_F(LibvirtVolumeTest, ADirTargetTakesTheDirtyExtentsToo) {
  fs::create_directories(Root("mirror"));
  const std::string target = "type = \"dir\"\npath = \"" + Root("mirror") + "\"";
  Run({}, false, JobKind::kRun, target);
  Write(6 << 20, 4096, 9);
  JobReport r = Run({}, false, JobKind::kRun, target);
  EXPECT_EQ(hv_->begun.back().incremental, "vmback-r1");
  EXPECT_EQ(Volume(r).change_method, "dirty-bitmap") << Volume(r).change_why;
  EXPECT_LE(Volume(r).bytes_read, kGranule);
  RunOk({"qemu-img", "convert", "-U", "-O", "raw", image_, Root("expected.raw")});
  EXPECT_TRUE(ReadFile(Root("mirror/images/web.qcow2")) == ReadFile(Root("expected.raw")))
      << "the mirror's disk is not what the guest sees";
  ExpectNothingLeft("dir target");
}

TEST(LibvirtVolumeNames, SocketDirectoriesAreOnlyThoseVmbackMakes) {
  EXPECT_TRUE(IsNbdSocketDir("/var/lib/vmback", "/var/lib/vmback/nbd-0a1b2c"));
  EXPECT_FALSE(IsNbdSocketDir("/var/lib/vmback", "/var/lib/vmback/nbd-"));
  EXPECT_FALSE(IsNbdSocketDir("/var/lib/vmback", "/var/lib/vmback/nbd-../etc"));
  EXPECT_FALSE(IsNbdSocketDir("/var/lib/vmback", "/etc/nbd-00"));
  EXPECT_FALSE(IsNbdSocketDir("/var/lib/vmback", "/var/lib/vmback/mnt-x"));
}

}  // namespace
}  // namespace vmback
