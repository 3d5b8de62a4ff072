// Tests of `vmback run` (RunJob, PlanJob) and its crash journal, end to end:
// libvirt's in-process test driver plays the hypervisor (domains whose disks
// are this test's own files), tests/helpers/fake_lvm plays LVM (this kernel
// has no device-mapper: a regular file stands for /dev/VG/LV and lvcreate -s
// copies it), and a real store takes the points.
//
// The volumes: "disk" (lvm, mode block: a sparse image file), "fs" (lvm,
// mode filesystem: an ext4 image, so the run fscks and mounts its snapshot;
// only as root with mkfs.ext4) and "tree" (a directory, snapshot none).
//
// The core is the fault matrix: a failure injected at every step of the run
// in turn through JobOptions.hook, and a cancel in the middle; after each,
// every domain runs as before, no snapshot, journal or mount is left, the
// store's earlier points are intact, and the next run succeeds.
#include "job/job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"
#include "helpers/test_util.h"
#include "hypervisor/hypervisor.h"
#include "os/env.h"
#include "os/subprocess.h"
#include "job/journal.h"
#include "run/restore.h"
#include "run/verify.h"
#include "source/snapshot.h"
#include "store/store.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::SetMtimeNs;
using test::TempDir;
using test::WriteFile;
using test::WriteFileAt;

constexpr int64_t kT0 = 1700000000;
constexpr uint64_t kDiskSize = 3 << 20;

using test::Exec;
using test::RepoRoot;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

bool AnyHas(const std::vector<std::string>& v, const std::string& part) {
  for (const auto& s : v)
    if (Has(s, part)) return true;
  return false;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "\n  " + s;
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Mount points at or below dir (from /proc/self/mountinfo, octal escapes
// decoded), deepest last.
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point;
    f >> id >> parent >> devno >> root >> point;
    std::string decoded;
    for (size_t i = 0; i < point.size(); i++) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    if (decoded == dir || decoded.rfind(dir + "/", 0) == 0) out.push_back(decoded);
  }
  return out;
}

using test::Eventually;

// ---------------------------------------------------------------------------
// A Hypervisor that forwards to libvirt's and watches what vmback does with
// it: how often it quiesced, which VMs it still holds (quiesced, not yet
// released: for the agent method the test driver shows no state to look at),
// and which it recovered.
class WatchingHypervisor : public Hypervisor {
 public:
  explicit WatchingHypervisor(std::unique_ptr<Hypervisor> inner) : inner_(std::move(inner)) {}

  DomainInfo Domain(const std::string& name) override { return inner_->Domain(name); }
  std::vector<DomainInfo> Domains() override { return inner_->Domains(); }
  std::unique_ptr<QuiescedVm> Quiesce(const std::string& name, QuiesceMethod method,
                                      milliseconds timeout) override {
    quiesce_calls_++;
    std::unique_ptr<QuiescedVm> q = inner_->Quiesce(name, method, timeout);
    if (!q) return q;
    held_->Add(name, +1);
    return std::make_unique<Guard>(std::move(q), held_);
  }
  void Recover(const std::string& name, QuiesceMethod method) override {
    recovered_.push_back(name);
    inner_->Recover(name, method);
  }

  Hypervisor* inner() { return inner_.get(); }
  int quiesce_calls() const { return quiesce_calls_; }
  std::vector<std::string> held() const { return held_->Names(); }
  // Seconds from the quiesce to the release of the VM's latest guard.
  double last_quiet_seconds(const std::string& name) const { return held_->Quiet(name); }
  const std::vector<std::string>& recovered() const { return recovered_; }
  void ResetCounts() {
    quiesce_calls_ = 0;
    recovered_.clear();
  }

 private:
  struct Held {
    std::mutex mu;
    std::map<std::string, int> count;
    std::map<std::string, double> quiet;
    void Add(const std::string& name, int d) {
      std::lock_guard<std::mutex> l(mu);
      if ((count[name] += d) == 0) count.erase(name);
    }
    void SetQuiet(const std::string& name, double seconds) {
      std::lock_guard<std::mutex> l(mu);
      quiet[name] = seconds;
    }
    double Quiet(const std::string& name) {
      std::lock_guard<std::mutex> l(mu);
      return quiet.count(name) ? quiet[name] : -1;
    }
    std::vector<std::string> Names() {
      std::lock_guard<std::mutex> l(mu);
      std::vector<std::string> out;
      for (const auto& [n, c] : count) out.push_back(n + " x" + std::to_string(c));
      return out;
    }
  };
  // Counts as let go once released, or destroyed (whose inner guard then
  // releases).
  class Guard : public QuiescedVm {
   public:
    Guard(std::unique_ptr<QuiescedVm> inner, std::shared_ptr<Held> held)
        : inner_(std::move(inner)), held_(std::move(held)) {}
    ~Guard() override {
      inner_.reset();
      LetGo();
    }
    void Release() override {
      inner_->Release();
      LetGo();
    }
    QuiesceMethod method() const override { return inner_->method(); }
    const std::string& name() const override { return inner_->name(); }

   private:
    void LetGo() {
      if (let_go_) return;
      let_go_ = true;
      held_->Add(name_, -1);
      held_->SetQuiet(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count());
    }
    std::unique_ptr<QuiescedVm> inner_;
    std::shared_ptr<Held> held_;
    std::string name_ = inner_->name();
    std::chrono::steady_clock::time_point since_ = std::chrono::steady_clock::now();
    bool let_go_ = false;
  };

  std::unique_ptr<Hypervisor> inner_;
  std::shared_ptr<Held> held_ = std::make_shared<Held>();
  int quiesce_calls_ = 0;
  std::vector<std::string> recovered_;
};

// ---------------------------------------------------------------------------

// web: its disk is the "disk" LV (found by vms = "auto"); db: its disk is in
// the tree; idle: shut off, disk on the LV (auto must skip it); held: paused
// by somebody else; other: running, nothing to do with the backup.
constexpr char kNodeXml[] = R"(<node>
<domain type='test'>
  <name>web</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='@DIR@/vg/disk'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
<domain type='test'>
  <name>db</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='@DIR@/tree/db.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>idle</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='@DIR@/vg/disk'/><target dev='vda' bus='virtio'/></disk></devices>
  <test:runstate>5</test:runstate>
</domain>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>held</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='@DIR@/elsewhere/held.img'/><target dev='vda' bus='virtio'/></disk></devices>
  <test:runstate>3</test:runstate>
</domain>
<domain type='test'>
  <name>other</name><memory>65536</memory><os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><source file='@DIR@/elsewhere/other.img'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
</node>
)";

// What a point must restore to.
struct Expected {
  std::string disk;  // the image's bytes
  std::string tree;  // DescribeTree of the directory volume
};

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = CanonicalPath(tmp_.path());
    // The stand-in lvm, first on PATH.
    std::string fake = RepoRoot() + "/tests/helpers/fake_lvm";
    ASSERT_TRUE(fs::exists(fake)) << fake;
    WriteFile(bin_ / "lvm", "#!/bin/sh\nexec bash '" + fake + "' \"$@\"\n");
    ASSERT_EQ(::chmod((bin_ / "lvm").c_str(), 0755), 0);
    const char* path = std::getenv("PATH");
    old_path_ = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    ::setenv("PATH", (bin_.path() + ":" + old_path_).c_str(), 1);
    ::setenv("FAKE_LVM_LOG", (Root("lvm.log")).c_str(), 1);
    ::unsetenv("FAKE_LVM_FREE");
    ::unsetenv("FAKE_LVM_BUSY_COUNT");
    SetLvremoveBackoffMs(1);

    for (const char* d : {"vg", "tree", "tree/sub", "elsewhere", "restore"})
      fs::create_directories(Root(d));
    // A sparse image: data, a hole, data.
    WriteFile(Root("vg/disk"), RandomBytes(1 << 20, 1));
    WriteFileAt(Root("vg/disk"), 2 << 20, RandomBytes(1 << 20, 2));
    WriteFile(Root("tree/db.qcow2"), RandomBytes(300000, 3));
    WriteFile(Root("tree/a.txt"), "alpha\n");
    WriteFile(Root("tree/sub/b.bin"), RandomBytes(70000, 4));
    ASSERT_EQ(::symlink("sub/b.bin", Root("tree/link").c_str()), 0);
    SetMtimeNs(Root("tree/a.txt"), kT0, 1);
    SetMtimeNs(Root("tree/sub/b.bin"), kT0, 2);
    SetMtimeNs(Root("tree/db.qcow2"), kT0, 3);
    WriteFile(Root("elsewhere/held.img"), "");
    WriteFile(Root("elsewhere/other.img"), "");

    // An ext4 image for the filesystem-mode volume (mount needs root).
    if (::geteuid() == 0) {
      fs::create_directories(Root("fsrc/etc"));
      WriteFile(Root("fsrc/hello.txt"), "hello from inside the LV\n");
      WriteFile(Root("fsrc/etc/conf"), RandomBytes(20000, 5));
      RunResult r = Exec({"truncate", "-s", "16M", Root("vg/fsimg")});
      if (r.exit_code == 0)
        r = Exec({"mkfs.ext4", "-q", "-F", "-d", Root("fsrc"), Root("vg/fsimg")});
      have_fs_ = r.exit_code == 0;
      if (!have_fs_) std::cerr << "no filesystem-mode volume: " << r.err << "\n";
    }

    std::string xml = kNodeXml;
    for (size_t at; (at = xml.find("@DIR@")) != std::string::npos;) xml.replace(at, 5, root_);
    WriteFile(Root("node.xml"), xml);
    hv_ = std::make_unique<WatchingHypervisor>(ConnectLibvirt("test://" + Root("node.xml"), &hv_log_));

    Store::Init(Env::Default(), Root("store"), 16384);
    initial_states_ = States();
    ASSERT_EQ(initial_states_.size(), 5u);
    ASSERT_EQ(initial_states_["held"], "paused");
    ASSERT_EQ(initial_states_["idle"], "off");
  }

  void TearDown() override {
    // Never leave a mount behind (TempDir would delete through it).
    auto mounts = MountsUnder(root_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) Exec({"umount", "-l", *it});
    EXPECT_TRUE(mounts.empty()) << "mounts left:" << Joined(mounts);
    SetLibvirtCallDelayForTesting("resume", milliseconds(0));
    ::setenv("PATH", old_path_.c_str(), 1);
    ::unsetenv("FAKE_LVM_LOG");
    ::unsetenv("FAKE_LVM_FREE");
    ::unsetenv("FAKE_LVM_BUSY_COUNT");
    SetLvremoveBackoffMs(200);
  }

  std::string Root(const std::string& rel) const { return root_ + "/" + rel; }
  std::string JournalPath() const { return Root("state/journal"); }

  // --- configuration -----------------------------------------------------
  std::string Header(int call_timeout = 5) const {
    return "[target]\npath = \"" + Root("store") + "\"\n\n[retention]\nkeep_last = 1000\n\n" +
           "[libvirt]\nuri = \"test://" + Root("node.xml") + "\"\n\n[run]\nstate_dir = \"" +
           Root("state") + "\"\nmax_freeze = 30\ncall_timeout = " + std::to_string(call_timeout) +
           "\n\n";
  }
  static std::string VmTables() {
    return "[[vm]]\nname = \"web\"\nquiesce = \"suspend\"\n\n"
           "[[vm]]\nname = \"db\"\nquiesce = \"agent\"\n\n";
  }
  std::string DiskVolume(const std::string& size = "64M") const {
    return "[[volume]]\nname = \"disk\"\nsource = \"" + Root("vg/disk") +
           "\"\nsnapshot = \"lvm\"\nsnapshot_size = \"" + size + "\"\nmode = \"block\"\nvms = \"auto\"\n\n";
  }
  std::string FsVolume() const {
    if (!have_fs_) return "";
    return "[[volume]]\nname = \"fs\"\nsource = \"" + Root("vg/fsimg") +
           "\"\nsnapshot = \"lvm\"\nsnapshot_size = \"64M\"\nvms = [\"db\"]\n\n";
  }
  std::string TreeVolume() const {
    return "[[volume]]\nname = \"tree\"\nsource = \"" + Root("tree") +
           "\"\nsnapshot = \"none\"\nvms = [\"db\"]\n\n";
  }
  Config Parse(const std::string& text) const { return ParseConfig(text, Root("vmback.toml")); }
  Config Standard(int call_timeout = 5) const {
    return Parse(Header(call_timeout) + VmTables() + DiskVolume() + FsVolume() + TreeVolume());
  }
  std::vector<std::string> ExpectedSteps() const {
    std::vector<std::string> s = {"quiesce:web", "quiesce:db", "snapshot:disk"};
    if (have_fs_) s.push_back("snapshot:fs");
    s.insert(s.end(), {"snapshot:tree", "release"});
    if (have_fs_) s.push_back("mount:fs");
    s.insert(s.end(), {"sync", "drop:disk"});
    if (have_fs_) s.push_back("drop:fs");
    s.insert(s.end(), {"drop:tree", "prune"});
    return s;
  }

  // --- running -------------------------------------------------------------
  JobReport Run(const Config& c, StepHook hook = {}, const std::atomic<bool>* cancel = nullptr,
                Logger* log = nullptr) {
    JobOptions o;
    o.hook = std::move(hook);
    o.cancel = cancel;
    o.run_id = "r" + std::to_string(++runs_);
    Logger quiet(LogLevel::kError, false);
    return RunJob(c, Env::Default(), hv_.get(), o, log ? log : &quiet);
  }

  // A successful run of the standard config: records what its point must
  // restore to and checks that it does.
  JobReport RunOk(const std::string& what) {
    Expected e = Current();
    auto before = Points();
    JobReport r;
    try {
      r = Run(Standard());
    } catch (const std::exception& ex) {
      ADD_FAILURE() << what << ": the run failed: " << ex.what();
      return r;
    }
    auto after = Points();
    EXPECT_EQ(after.size(), before.size() + 1) << what;
    EXPECT_TRUE(std::find(after.begin(), after.end(), r.point) != after.end()) << what << ": " << r.point;
    expected_[r.point] = e;
    ExpectRestores(r.point, what);
    return r;
  }

  // Seeded random changes to the image (and the tree), as a guest would make.
  void Change(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int k = 0; k < 4; k++) {
      uint64_t off = rng() % (kDiskSize - 9000);
      WriteFileAt(Root("vg/disk"), off, RandomBytes(1 + rng() % 8000, seed * 100 + k));
    }
    WriteFileAt(Root("tree/db.qcow2"), rng() % 290000, RandomBytes(5000, seed * 100 + 50));
    SetMtimeNs(Root("tree/db.qcow2"), kT0 + static_cast<int64_t>(seed), 7);
    WriteFile(Root("tree/sub/n" + std::to_string(seed) + ".txt"), "change " + std::to_string(seed));
  }

  Expected Current() const { return {ReadFile(Root("vg/disk")), DescribeTree(Root("tree"), false)}; }

  std::vector<std::string> Points() {
    Logger log(LogLevel::kError, false);
    return Store::Open(Env::Default(), Root("store"), LockMode::kShared, &log)->ListPoints();
  }

  // The point restores bit-identical: the image, the tree, the fs volume.
  void ExpectRestores(const std::string& point, const std::string& what) {
    auto it = expected_.find(point);
    ASSERT_NE(it, expected_.end()) << what << ": no expectation for " << point;
    Logger log(LogLevel::kError, false);
    auto store = Store::Open(Env::Default(), Root("store"), LockMode::kShared, &log);
    std::string dest = Root("restore/" + std::to_string(++restores_));
    try {
      Restore(store.get(), point, "", dest, Overwrite::kRefuse, &log);
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": restore of " << point << ": " << e.what();
      return;
    }
    EXPECT_TRUE(ReadFile(dest + "/disk") == it->second.disk) << what << ": image of point " << point;
    EXPECT_EQ(DescribeTree(dest + "/tree", false), it->second.tree) << what << ": tree of point " << point;
    if (have_fs_) {
      EXPECT_EQ(ReadFile(dest + "/fs/hello.txt"), "hello from inside the LV\n") << what << ": " << point;
      EXPECT_TRUE(ReadFile(dest + "/fs/etc/conf") == RandomBytes(20000, 5)) << what << ": " << point;
    }
    fs::remove_all(dest);
  }

  // {name: running | paused | off}
  std::map<std::string, std::string> States() {
    std::map<std::string, std::string> out;
    for (const auto& d : hv_->Domains())
      out[d.name] = !d.running ? "off" : d.paused ? "paused" : "running";
    return out;
  }

  std::vector<std::string> SnapshotLeftovers() {
    std::vector<std::string> out;
    for (const char* dir : {"vg", "tree", "", "elsewhere"})
      for (const auto& e : fs::directory_iterator(Root(dir))) {
        std::string n = e.path().filename();
        if (n.rfind("vmback-", 0) == 0 || n.rfind(".vmback-", 0) == 0) out.push_back(e.path());
      }
    return out;
  }

  // The lvm calls that change something: the plan's free-space query
  // (lvm vgs) only reads and is left out.
  std::vector<std::string> LvmCalls() {
    std::vector<std::string> out;
    if (!fs::exists(Root("lvm.log"))) return out;
    for (auto& line : Lines(ReadFile(Root("lvm.log"))))
      if (line.rfind("lvm vgs ", 0) != 0) out.push_back(std::move(line));
    return out;
  }

  // Everything is as it was before the run: VMs in their states, nothing
  // held, no snapshot, journal or mount; the store holds exactly the points
  // expected, verifies clean, and its first and newest points restore.
  void ExpectClean(const std::string& what) {
    EXPECT_EQ(States(), initial_states_) << what;
    EXPECT_TRUE(hv_->held().empty()) << what << ": still quiesced:" << Joined(hv_->held());
    EXPECT_TRUE(SnapshotLeftovers().empty()) << what << ": snapshots left:" << Joined(SnapshotLeftovers());
    EXPECT_FALSE(fs::exists(JournalPath())) << what << ": journal left:\n" << ReadFile(JournalPath());
    EXPECT_TRUE(MountsUnder(Root("state")).empty()) << what << ": mounts left:" << Joined(MountsUnder(Root("state")));
    std::vector<std::string> want;
    for (const auto& [p, e] : expected_) want.push_back(p);
    std::vector<std::string> have = Points();
    std::sort(have.begin(), have.end());
    EXPECT_EQ(have, want) << what;
    {
      Logger log(LogLevel::kError, false);
      auto store = Store::Open(Env::Default(), Root("store"), LockMode::kExclusive, &log);
      VerifyReport v = Verify(store.get(), &log);
      EXPECT_TRUE(v.ok()) << what << ": verify found " << v.problems.size() << " problem(s), first: "
                          << (v.problems.empty() ? "" : v.problems[0].path + ": " + v.problems[0].reason);
    }
    if (!expected_.empty()) {
      ExpectRestores(expected_.begin()->first, what);
      ExpectRestores(expected_.rbegin()->first, what);
    }
  }

  TempDir tmp_, bin_;
  std::string root_, old_path_;
  bool have_fs_ = false;
  Logger hv_log_{LogLevel::kError, false};
  std::unique_ptr<WatchingHypervisor> hv_;
  std::map<std::string, std::string> initial_states_;
  std::map<std::string, Expected> expected_;
  int runs_ = 0, restores_ = 0;
};

// ---------------------------------------------------------------------------

TEST_F(JobTest, RunsEveryStepInOrderAndEveryPointRestoresBitIdentical) {
  std::vector<std::string> steps;
  Expected first = Current();
  JobReport r = Run(Standard(), [&](const std::string& s) { steps.push_back(s); });
  EXPECT_EQ(steps, ExpectedSteps());
  ASSERT_FALSE(r.point.empty());
  expected_[r.point] = first;
  ExpectRestores(r.point, "first run");

  // The report: each VM quiesced by its method, for a while; and JSON.
  ASSERT_EQ(r.vms.size(), 2u);
  std::map<std::string, std::string> methods;
  for (const auto& v : r.vms) {
    methods[v.name] = v.method;
    EXPECT_GE(v.freeze_seconds, 0) << v.name;
    EXPECT_LE(v.freeze_seconds, r.freeze_window_seconds + 1) << v.name;
  }
  EXPECT_EQ(methods, (std::map<std::string, std::string>{{"web", "suspend"}, {"db", "agent"}}));
  nlohmann::json j = JobReportToJson(r);
  EXPECT_EQ(j["point"], r.point);
  ASSERT_EQ(j["vms"].size(), 2u);
  for (const auto& v : j["vms"]) {
    EXPECT_TRUE(v["freeze_ms"].is_number_integer()) << v.dump();
    EXPECT_TRUE(v["method"] == "suspend" || v["method"] == "agent") << v.dump();
  }
  EXPECT_TRUE(r.recovered.empty());
  EXPECT_EQ(hv_->quiesce_calls(), 2);  // not idle (shut off), held or other

  // The lvm calls: a snapshot per lvm volume with its size, and its removal.
  std::vector<std::string> calls = LvmCalls();
  EXPECT_TRUE(std::find(calls.begin(), calls.end(),
                        "lvm lvcreate -s -n vmback-disk-r1 -L 64M -- " + Root("vg/disk")) != calls.end())
      << Joined(calls);
  EXPECT_TRUE(std::find(calls.begin(), calls.end(), "lvm lvremove -f -- " + Root("vg/vmback-disk-r1")) !=
              calls.end())
      << Joined(calls);
  EXPECT_EQ(calls.size(), have_fs_ ? 4u : 2u) << Joined(calls);
  ExpectClean("after the first run");

  // Incremental runs with seeded random changes: each point restores as it was.
  for (uint64_t seed = 1; seed <= 3; seed++) {
    Change(seed);
    RunOk("run " + std::to_string(seed + 1));
  }
  for (const auto& [p, e] : expected_) ExpectRestores(p, "after all runs");
  ExpectClean("after four runs");
}

TEST_F(JobTest, FaultAtEveryStepLeavesNothingBehindAndTheNextRunWorks) {
  std::vector<std::string> steps;
  RunOk("baseline");
  {
    Change(100);
    Expected e = Current();
    JobReport r = Run(Standard(), [&](const std::string& s) { steps.push_back(s); });
    expected_[r.point] = e;
  }
  ASSERT_EQ(steps, ExpectedSteps());
  ExpectClean("before the faults");

  uint64_t seed = 200;
  for (const std::string& at : steps) {
    SCOPED_TRACE("failure injected at " + at);
    Change(++seed);
    Expected e = Current();
    auto before = Points();
    hv_->ResetCounts();
    try {
      Run(Standard(), [&](const std::string& s) {
        if (s == at) throw std::runtime_error("injected failure at " + s);
      });
      ADD_FAILURE() << "the run did not fail";
    } catch (const std::exception& ex) {
      EXPECT_TRUE(Has(ex.what(), "injected failure at " + at)) << ex.what();
    }
    auto after = Points();
    if (at == "prune") {
      // Prune comes after the commit: the point is there, and whole.
      ASSERT_EQ(after.size(), before.size() + 1);
      expected_[after.back()] = e;
    } else {
      EXPECT_EQ(after, before) << "a failed run committed a point";
    }
    ExpectClean("after a failure at " + at);
    Change(++seed);
    RunOk("the run after a failure at " + at);
    ExpectClean("after the run that followed a failure at " + at);
  }

  // A cancel (a signal) in the middle: at the next step, or in the backup.
  for (const std::string& at : std::vector<std::string>{"quiesce:db", "snapshot:tree", "release", "sync",
                                                        "drop:disk"}) {
    SCOPED_TRACE("cancel at " + at);
    Change(++seed);
    auto before = Points();
    std::atomic<bool> cancel{false};
    try {
      Run(Standard(), [&](const std::string& s) {
        if (s == at) cancel = true;
      }, &cancel);
      ADD_FAILURE() << "the run was not interrupted";
    } catch (const Error& ex) {
      EXPECT_TRUE(Has(ex.what(), "interrupted")) << ex.what();
    }
    EXPECT_EQ(Points(), before);
    ExpectClean("after a cancel at " + at);
    RunOk("the run after a cancel at " + at);
  }
  ExpectClean("at the end");
}

// A crashed run leaves a journal: the next run resumes the VMs it had
// quiesced (only those), drops its snapshots, says so, and then runs.
TEST_F(JobTest, RunRecoversWhatAJournalOfACrashedRunRecords) {
  // What the crashed run did: paused web, froze and thawed db, snapshotted
  // the disk; then died (the journal was never closed; its last line torn).
  std::unique_ptr<QuiescedVm> paused = hv_->inner()->Quiesce("web", QuiesceMethod::kSuspend, milliseconds(5000));
  ASSERT_EQ(States()["web"], "paused");
  Logger snap_log(LogLevel::kError, false);
  auto snap = TakeSnapshot(Env::Default(), {"disk", Root("vg/disk"), SnapshotKind::kLvm, "64M", "crashed"},
                           &snap_log);
  ASSERT_TRUE(fs::exists(Root("vg/vmback-disk-crashed")));
  fs::create_directories(Root("state"));
  {
    vmback::Journal j(Env::Default(), JournalPath(), "crashed");
    j.Record({{"op", "quiesce"}, {"vm", "web"}, {"method", "suspend"}});
    j.Record({{"op", "quiesce"}, {"vm", "db"}, {"method", "agent"}});
    j.Record({{"op", "released"}, {"vm", "db"}});
    j.Record({{"op", "snapshot"}, {"volume", "disk"}, {"record", snap->JournalRecord()}});
  }
  {
    std::ofstream torn(JournalPath(), std::ios::app);
    torn << R"({"op":"quiesce","vm":"oth)";
  }

  Expected e = Current();
  Logger log(LogLevel::kError, false);
  JobReport r = Run(Standard(), {}, nullptr, &log);
  expected_[r.point] = e;
  EXPECT_TRUE(AnyHas(r.recovered, "resumed VM web")) << Joined(r.recovered);
  EXPECT_TRUE(AnyHas(r.recovered, "vmback-disk-crashed")) << Joined(r.recovered);
  EXPECT_FALSE(AnyHas(r.recovered, "VM db")) << Joined(r.recovered);
  EXPECT_EQ(r.recovered.size(), 2u) << Joined(r.recovered);
  EXPECT_EQ(hv_->recovered(), std::vector<std::string>{"web"});
  // Said so: as warnings of the run.
  EXPECT_TRUE(AnyHas(log.problems(), "resumed VM web")) << Joined(log.problems());
  EXPECT_TRUE(AnyHas(r.warnings, "resumed VM web")) << Joined(r.warnings);
  ExpectClean("after recovering");
  paused.reset();  // web runs already: the guard only warns
  snap.reset();
  EXPECT_EQ(States(), initial_states_);
}

TEST_F(JobTest, RecoverFromJournalResumesOnlyTheVmsTheRunQuiesced) {
  std::unique_ptr<QuiescedVm> paused = hv_->inner()->Quiesce("web", QuiesceMethod::kSuspend, milliseconds(5000));
  ASSERT_EQ(States()["web"], "paused");
  fs::create_directories(Root("state"));
  {
    vmback::Journal j(Env::Default(), JournalPath(), "crashed");
    j.Record({{"op", "quiesce"}, {"vm", "web"}, {"method", "suspend"}});
    // held was paused by someone else: the run found it paused (none).
    j.Record({{"op", "quiesce"}, {"vm", "held"}, {"method", "none"}});
    j.Record({{"op", "quiesce"}, {"vm", "other"}, {"method", "suspend"}});
    j.Record({{"op", "released"}, {"vm", "other"}});
  }
  Leftovers left = ReadJournal(Env::Default(), JournalPath());
  EXPECT_EQ(left.vms, (std::vector<std::pair<std::string, std::string>>{{"web", "suspend"}, {"held", "none"}}));

  Logger log(LogLevel::kError, false);
  // No libvirt connection (a config without VMs now): it cannot resume
  // web, says so, and keeps the journal.
  try {
    RecoverFromJournal(Env::Default(), JournalPath(), nullptr, &log);
    ADD_FAILURE() << "no error without a connection";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "web")) << e.what();
  }
  EXPECT_TRUE(fs::exists(JournalPath()));
  EXPECT_EQ(States()["web"], "paused");

  std::vector<std::string> done = RecoverFromJournal(Env::Default(), JournalPath(), hv_.get(), &log);
  EXPECT_TRUE(AnyHas(done, "resumed VM web")) << Joined(done);
  EXPECT_FALSE(fs::exists(JournalPath()));
  EXPECT_EQ(States()["web"], "running");
  EXPECT_EQ(States()["held"], "paused");  // not ours to resume
  EXPECT_EQ(States()["other"], "running");
  EXPECT_EQ(States(), initial_states_);
  paused.reset();
}

// A VM that cannot be resumed stays in the journal (quiesced, not released):
// the run fails, keeps the journal, and the next run recovers the VM.
TEST_F(JobTest, FailedResumeKeepsTheJournalForTheNextRun) {
  RunOk("baseline");
  SetLibvirtCallDelayForTesting("resume", milliseconds(1500));  // call_timeout is 1 s
  try {
    Run(Standard(/*call_timeout=*/1));
    ADD_FAILURE() << "the run did not fail";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "'web'")) << e.what();
    EXPECT_TRUE(Has(e.what(), "resume")) << e.what();
  }
  SetLibvirtCallDelayForTesting("resume", milliseconds(0));
  ASSERT_TRUE(fs::exists(JournalPath())) << "the journal went although web may still be paused";
  Leftovers left = ReadJournal(Env::Default(), JournalPath());
  EXPECT_EQ(left.vms, (std::vector<std::pair<std::string, std::string>>{{"web", "suspend"}}))
      << ReadFile(JournalPath());
  EXPECT_TRUE(left.snapshots.empty()) << ReadFile(JournalPath());
  EXPECT_TRUE(left.mounts.empty()) << ReadFile(JournalPath());
  EXPECT_TRUE(SnapshotLeftovers().empty()) << Joined(SnapshotLeftovers());
  EXPECT_TRUE(hv_->held().empty()) << Joined(hv_->held());
  // The late resume lands.
  EXPECT_TRUE(Eventually([&] { return States()["web"] == "running"; }));

  hv_->ResetCounts();
  JobReport r = RunOk("the run after");
  EXPECT_TRUE(AnyHas(r.recovered, "VM web")) << Joined(r.recovered);
  EXPECT_EQ(hv_->recovered(), std::vector<std::string>{"web"});
  ExpectClean("after the next run");
}

// A snapshot that cannot be dropped stays in the journal: the run fails, and
// the next run drops it.
TEST_F(JobTest, FailedDropKeepsTheJournalAndTheNextRunDropsTheSnapshot) {
  RunOk("baseline");
  ::setenv("FAKE_LVM_BUSY_COUNT", "100000", 1);  // every lvremove: "in use"
  try {
    Run(Standard());
    ADD_FAILURE() << "the run did not fail";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "in use")) << e.what();
  }
  ::unsetenv("FAKE_LVM_BUSY_COUNT");
  EXPECT_EQ(States(), initial_states_);
  EXPECT_TRUE(hv_->held().empty());
  EXPECT_TRUE(MountsUnder(Root("state")).empty()) << Joined(MountsUnder(Root("state")));
  ASSERT_TRUE(fs::exists(JournalPath())) << "the journal went although snapshots are left: "
                                     << Joined(SnapshotLeftovers());
  Leftovers left = ReadJournal(Env::Default(), JournalPath());
  EXPECT_EQ(left.snapshots.size(), have_fs_ ? 2u : 1u) << ReadFile(JournalPath());
  EXPECT_EQ(SnapshotLeftovers().size(), have_fs_ ? 2u : 1u) << Joined(SnapshotLeftovers());

  JobReport r = RunOk("the run after");
  EXPECT_TRUE(AnyHas(r.recovered, "vmback-disk-r")) << Joined(r.recovered);
  ExpectClean("after the next run");
}

// ---------------------------------------------------------------------------
// An external command that hangs while the VMs are quiet (the stand-in's
// lvcreate with FAKE_LVM_HANG: it waits for a child sleep) must not keep
// them quiet: killed with its process group at the end of max_freeze, or at
// once on a signal (the cancel flag); the VMs run again, nothing is left.

// True when no process is left in process group pgid.
bool GroupGone(const std::string& pgid) {
  return !pgid.empty() && test::LiveProcessesInGroup(std::stoi(pgid)).empty();
}

TEST_F(JobTest, HangingSnapshotCommandIsKilledAtMaxFreeze) {
  RunOk("baseline");
  std::string text = Header() + VmTables() + DiskVolume() + TreeVolume();
  text.replace(text.find("max_freeze = 30"), 15, "max_freeze = 1");
  ::setenv("FAKE_LVM_HANG", "lvcreate", 1);
  auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    Run(Parse(text));
    ADD_FAILURE() << "the run did not fail";
  } catch (const Error& e) {
    message = e.what();
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::unsetenv("FAKE_LVM_HANG");
  // Released within max_freeze + 1 s of being quiesced (web: suspend, then
  // resumed; db: agent freeze, then thawed); the whole run ends soon after.
  for (const char* vm : {"web", "db"}) {
    EXPECT_GE(hv_->last_quiet_seconds(vm), 0.9) << vm;
    EXPECT_LE(hv_->last_quiet_seconds(vm), 2.0) << vm;
  }
  EXPECT_LE(took, 5.0) << "with max_freeze = 1";
  EXPECT_TRUE(Has(message, "lvm lvcreate")) << message;
  EXPECT_TRUE(Has(message, "max_freeze")) << message;
  EXPECT_TRUE(Has(message, "killed its process group")) << message;
  EXPECT_TRUE(GroupGone(ReadFile(Root("lvm.log.hang")))) << ReadFile(Root("lvm.log.hang"));
  ExpectClean("after the hung lvcreate");  // web and db run again, nothing held or left
  RunOk("the run after");
}

TEST_F(JobTest, SignalDuringAHangingSnapshotCommandIsActedOnAtOnce) {
  ::setenv("FAKE_LVM_HANG", "lvcreate", 1);
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point signalled;
  std::thread signaller([&] {
    // Once lvcreate hangs (it has written its process group), a little later.
    Eventually([&] { return fs::exists(Root("lvm.log.hang")) && !ReadFile(Root("lvm.log.hang")).empty(); });
    std::this_thread::sleep_for(milliseconds(300));
    signalled = std::chrono::steady_clock::now();
    cancel = true;
  });
  std::string message;
  try {
    Run(Standard(), {}, &cancel);
    ADD_FAILURE() << "the run did not fail";
  } catch (const Error& e) {
    message = e.what();
  }
  auto ended = std::chrono::steady_clock::now();
  signaller.join();
  ::unsetenv("FAKE_LVM_HANG");
  EXPECT_LE(std::chrono::duration<double>(ended - signalled).count(), 1.0);
  EXPECT_TRUE(Has(message, "lvm lvcreate")) << message;
  EXPECT_TRUE(Has(message, "interrupted")) << message;
  EXPECT_TRUE(GroupGone(ReadFile(Root("lvm.log.hang")))) << ReadFile(Root("lvm.log.hang"));
  ExpectClean("after a signal during the hung lvcreate");
  RunOk("the run after");
}

// ---------------------------------------------------------------------------
// Bad input is refused by the plan step, before any VM is touched.

class JobBadInputTest : public JobTest {
 protected:
  // Runs (and plans) c; both must fail with kind, naming `names`; nothing
  // may have happened.
  void ExpectRefused(const Config& c, ErrorKind kind, const std::string& names) {
    for (bool plan : {true, false}) {
      SCOPED_TRACE(plan ? "plan" : "run");
      hv_->ResetCounts();
      fs::remove(Root("lvm.log"));
      Logger log(LogLevel::kError, false);
      if (plan) {
        // The plan lists the problem among all it finds, instead of failing.
        const PlanResult r = PlanJob(c, Env::Default(), hv_.get(), &log);
        bool found = false;
        for (const auto& p : r.problems) found = found || (p.kind == kind && Has(p.text, names));
        std::string all;
        for (const auto& p : r.problems) all += p.text + "\n";
        EXPECT_TRUE(found) << "no problem of that kind naming " << names << " in:\n" << all;
      } else {
        try {
          Run(c);
          ADD_FAILURE() << "not refused";
        } catch (const Error& e) {
          EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
          EXPECT_TRUE(Has(e.what(), names)) << e.what();
        }
      }
      EXPECT_EQ(hv_->quiesce_calls(), 0) << "a VM was quiesced before the input was refused";
      EXPECT_EQ(States(), initial_states_);
      EXPECT_FALSE(AnyHas(LvmCalls(), "lvcreate")) << "a snapshot was attempted:" << Joined(LvmCalls());
      ExpectClean("after refusing");
    }
  }
  // ParseConfig refuses the text; a config that does not load touches nothing.
  void ExpectConfigError(const std::string& text, const std::string& names) {
    try {
      Parse(text);
      ADD_FAILURE() << "config accepted";
    } catch (const Error& e) {
      EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(ErrorKind::kConfig)) << e.what();
      EXPECT_TRUE(Has(e.what(), names)) << e.what();
    }
    EXPECT_EQ(hv_->quiesce_calls(), 0);
    EXPECT_EQ(States(), initial_states_);
    EXPECT_TRUE(LvmCalls().empty()) << Joined(LvmCalls());
    EXPECT_FALSE(fs::exists(Root("state")));
  }
};

TEST_F(JobBadInputTest, UnknownVm) {
  RunOk("baseline");
  ExpectRefused(Parse(Header() + VmTables() + "[[vm]]\nname = \"ghost\"\n\n" + DiskVolume() +
                      "[[volume]]\nname = \"tree\"\nsource = \"" + Root("tree") +
                      "\"\nvms = [\"db\", \"ghost\"]\n"),
                ErrorKind::kNotFound, "'ghost'");
}

TEST_F(JobBadInputTest, MissingSource) {
  RunOk("baseline");
  ExpectRefused(Parse(Header() + VmTables() + DiskVolume() +
                      "[[volume]]\nname = \"gone\"\nsource = \"" + Root("vg/gone") +
                      "\"\nsnapshot = \"lvm\"\nmode = \"block\"\nvms = [\"web\"]\n"),
                ErrorKind::kNotFound, Root("vg/gone"));
}

// The plan asks the volume group for its free space (lvm vgs) before any VM
// is touched.
TEST_F(JobBadInputTest, SnapshotLargerThanTheFreeSpace) {
  RunOk("baseline");
  ::setenv("FAKE_LVM_FREE", std::to_string(32 << 20).c_str(), 1);
  ExpectRefused(Parse(Header() + VmTables() + DiskVolume("1G") + TreeVolume()), ErrorKind::kNoSpace,
                "disk");
}

// A volume to be mounted whose source holds no file system: refused by the
// plan (blkid), not found by mount after the VMs were quiesced.
TEST_F(JobBadInputTest, UnmountableSnapshot) {
  RunOk("baseline");
  WriteFile(Root("vg/raw"), RandomBytes(1 << 20, 77));
  ExpectRefused(Parse(Header() + VmTables() + DiskVolume() +
                      "[[volume]]\nname = \"raw\"\nsource = \"" + Root("vg/raw") +
                      "\"\nsnapshot = \"lvm\"\nsnapshot_size = \"64M\"\nmode = \"filesystem\"\nvms = [\"web\"]\n"),
                ErrorKind::kConfig, "no file system");
}

// A [[vm]] that no volume names and that "auto" finds on no volume would
// never be quiesced: a config error naming it, in plan and run alike.
TEST_F(JobBadInputTest, VmOnNoVolume) {
  RunOk("baseline");
  // The disk volume finds web (and idle, shut off); db's disk is in the tree.
  ExpectRefused(Parse(Header() + VmTables() + DiskVolume()), ErrorKind::kConfig, "[[vm]] 'db'");
  ExpectRefused(Parse(Header() + VmTables() + DiskVolume() + "[[volume]]\nname = \"tree\"\nsource = \"" +
                      Root("tree") + "\"\nvms = []\n"),
                ErrorKind::kConfig, "[[vm]] 'db'");
}

TEST_F(JobBadInputTest, TwoVolumesWithTheSameName) {
  ExpectConfigError(Header() + VmTables() + DiskVolume() + TreeVolume() +
                        "[[volume]]\nname = \"disk\"\nsource = \"" + Root("tree/sub") + "\"\n",
                    "duplicate volume name 'disk'");
}

TEST_F(JobBadInputTest, UnknownQuiesceMethod) {
  ExpectConfigError(Header() + "[[vm]]\nname = \"web\"\nquiesce = \"hibernate\"\n\n" + DiskVolume(),
                    "hibernate");
}

// ---------------------------------------------------------------------------
// Issue 12: what a volume's defaults mean.

// Without 'vms', a volume quiesces the running VMs with a disk on it (as
// vms = "auto"); vms = [] means none; a [[vm]] shut off is no error.
TEST_F(JobTest, VolumeWithoutVmsQuiescesTheVmsWithADiskOnIt) {
  const std::string tree = "[[volume]]\nname = \"tree\"\nsource = \"" + Root("tree") + "\"\nsnapshot = \"none\"\n";
  JobReport r = Run(Parse(Header() + "[[vm]]\nname = \"db\"\nquiesce = \"agent\"\n\n" + tree));
  ASSERT_EQ(r.vms.size(), 1u);
  EXPECT_EQ(r.vms[0].name, "db");
  EXPECT_EQ(r.vms[0].method, "agent");
  EXPECT_EQ(hv_->quiesce_calls(), 1);
  nlohmann::json j = JobReportToJson(r);
  ASSERT_EQ(j["vms"].size(), 1u) << j.dump();

  hv_->ResetCounts();
  r = Run(Parse(Header() + tree + "vms = []\n"));
  EXPECT_TRUE(r.vms.empty());
  EXPECT_EQ(hv_->quiesce_calls(), 0);

  hv_->ResetCounts();
  r = Run(Parse(Header() + "[[vm]]\nname = \"idle\"\n\n" + DiskVolume() + tree + "vms = []\n"));
  std::vector<std::string> names;
  for (const auto& v : r.vms) names.push_back(v.name);
  EXPECT_EQ(names, std::vector<std::string>{"web"});  // idle is shut off
  EXPECT_EQ(States(), initial_states_);
  EXPECT_TRUE(hv_->held().empty()) << Joined(hv_->held());
}

// snapshot = "none" is a choice: no warning, said in the report and the
// plan. Unset, with a running VM on the volume, it warns.
TEST_F(JobTest, ExplicitSnapshotNoneIsReportedNotWarned) {
  JobReport r = Run(Standard());
  EXPECT_FALSE(AnyHas(r.warnings, "tree")) << Joined(r.warnings);
  nlohmann::json j = JobReportToJson(r);
  ASSERT_TRUE(j.contains("sources")) << j.dump();
  std::map<std::string, nlohmann::json> sources;
  for (const auto& s : j["sources"]) sources[s["volume"]] = s;
  EXPECT_EQ(sources["tree"]["snapshot"], "none");
  EXPECT_EQ(sources["tree"]["read_live"], true);
  EXPECT_EQ(sources["tree"]["by_choice"], true);
  EXPECT_EQ(sources["tree"]["vms"], nlohmann::json::array({"db"}));
  EXPECT_EQ(sources["disk"]["snapshot"], "lvm");
  EXPECT_EQ(sources["disk"]["read_live"], false);

  Logger log(LogLevel::kError, false);
  PlanResult r0 = PlanJob(Standard(), Env::Default(), hv_.get(), &log);
  EXPECT_TRUE(r0.problems.empty());
  std::string plan = r0.text;
  EXPECT_TRUE(Has(plan, "tree: no snapshot (snapshot = \"none\"): " + Root("tree") + " is read live, by choice"))
      << plan;
  EXPECT_TRUE(log.problems().empty()) << Joined(log.problems());

  // Unset, with db running and its disk in the tree: a warning.
  const std::string unset = Header() + "[[vm]]\nname = \"db\"\nquiesce = \"agent\"\n\n" +
                            "[[volume]]\nname = \"tree\"\nsource = \"" + Root("tree") + "\"\n";
  r = Run(Parse(unset));
  EXPECT_TRUE(AnyHas(r.warnings, "volume 'tree': no snapshot is set")) << Joined(r.warnings);
  EXPECT_TRUE(AnyHas(r.warnings, "VM db")) << Joined(r.warnings);
  j = JobReportToJson(r);
  ASSERT_EQ(j["sources"].size(), 1u) << j.dump();
  EXPECT_EQ(j["sources"][0]["read_live"], true);
  EXPECT_EQ(j["sources"][0]["by_choice"], false);
  Logger plan_log(LogLevel::kError, false);
  plan = PlanJob(Parse(unset), Env::Default(), hv_.get(), &plan_log).text;
  EXPECT_TRUE(AnyHas(plan_log.problems(), "volume 'tree': no snapshot is set")) << plan;

  // Unset, with vms = [] and db running with its disk on it: still a
  // warning (its disk is read while it writes).
  r = Run(Parse(Header() + "[[volume]]\nname = \"tree\"\nsource = \"" + Root("tree") + "\"\nvms = []\n"));
  EXPECT_TRUE(AnyHas(r.warnings, "volume 'tree': no snapshot is set")) << Joined(r.warnings);
  EXPECT_TRUE(r.vms.empty());

  // Unset, with no VM's disk on it: read live without a word.
  r = Run(Parse(Header() + "[[volume]]\nname = \"sub\"\nsource = \"" + Root("tree/sub") + "\"\n"));
  EXPECT_TRUE(r.warnings.empty()) << Joined(r.warnings);
  EXPECT_TRUE(r.vms.empty());
}

// A run's prune waits for readers of the store (a restore, list or verify
// beside the backup); when one stays, the point is kept, the run warns, and
// the next run prunes.
TEST_F(JobTest, PruneAfterTheBackupIsSkippedWhileAReaderHoldsTheStore) {
  std::string text = Header() + VmTables() + DiskVolume() + TreeVolume();
  text.replace(text.find("keep_last = 1000"), 16, "keep_last = 1");
  const Config c = Parse(text);
  JobOptions o;
  o.prune_lock_wait = 0;
  auto run = [&](const std::string& id) {
    o.run_id = id;
    Logger log(LogLevel::kError, false);
    return RunJob(c, Env::Default(), hv_.get(), o, &log);
  };
  auto points = [&] {
    Logger quiet(LogLevel::kError, false);
    return Store::Open(Env::Default(), Root("store"), LockMode::kShared, &quiet)->ListPoints().size();
  };
  EXPECT_TRUE(run("p1").warnings.empty());
  ASSERT_EQ(points(), 1u);
  {
    auto reader = Env::Default()->Lock(Root("store") + "/lock", LockMode::kShared);  // a restore, say
    JobReport r = run("p2");
    EXPECT_FALSE(r.point.empty());
    EXPECT_TRUE(AnyHas(r.warnings, "not pruned this time")) << Joined(r.warnings);
    EXPECT_TRUE(r.pruned.empty());
    EXPECT_EQ(points(), 2u);
  }
  JobReport r = run("p3");
  EXPECT_TRUE(r.warnings.empty()) << Joined(r.warnings);
  EXPECT_EQ(r.pruned.size(), 2u);
  EXPECT_EQ(points(), 1u);
}

// backup -c (JobKind::kBackup): the snapshots and mounts of the config, the
// run's journal, no VM touched (no hypervisor at all), nothing pruned.
TEST_F(JobTest, BackupKindTakesTheSnapshotsAndLeavesTheVmsAlone) {
  RunOk("baseline");
  Change(7);
  Expected e = Current();
  fs::remove(Root("lvm.log"));
  hv_->ResetCounts();
  std::vector<std::string> steps;
  JobOptions o;
  o.kind = JobKind::kBackup;
  o.run_id = "b1";
  o.hook = [&](const std::string& step) { steps.push_back(step); };
  o.connect = [&]() -> Hypervisor* {
    ADD_FAILURE() << "libvirt asked for with no journal to recover";
    return nullptr;
  };
  Logger log(LogLevel::kError, false);
  JobReport r = RunJob(Standard(), Env::Default(), nullptr, o, &log);
  EXPECT_TRUE(r.vms.empty());
  EXPECT_EQ(hv_->quiesce_calls(), 0);
  for (const auto& step : steps) EXPECT_TRUE(step.rfind("quiesce:", 0) != 0 && step != "prune") << step;
  std::vector<std::string> calls = LvmCalls();
  EXPECT_TRUE(std::find(calls.begin(), calls.end(),
                        "lvm lvcreate -s -n vmback-disk-b1 -L 64M -- " + Root("vg/disk")) != calls.end())
      << Joined(calls);
  EXPECT_EQ(calls.size(), have_fs_ ? 4u : 2u) << Joined(calls);
  expected_[r.point] = e;
  ExpectRestores(r.point, "backup");  // fs: the mounted tree, not the image
  ExpectClean("after the backup");

  // Killed half-way by a failure: nothing left, the journal gone.
  o.run_id = "b2";
  o.hook = [](const std::string& step) {
    if (step == "sync") throw std::runtime_error("injected at sync");
  };
  EXPECT_THROW(RunJob(Standard(), Env::Default(), nullptr, o, &log), std::runtime_error);
  ExpectClean("after a failed backup");

  // Live volumes alone: nothing to journal, no state dir.
  Config live = Parse(Header() + VmTables() + TreeVolume());
  live.run.state_dir = Root("state-live");
  o.run_id = "b3";
  o.hook = {};
  r = RunJob(live, Env::Default(), nullptr, o, &log);
  EXPECT_FALSE(r.point.empty());
  EXPECT_FALSE(fs::exists(Root("state-live")));
  expected_.clear();  // the tree-only point holds no disk
}

// ---------------------------------------------------------------------------

TEST_F(JobTest, PlanShowsEveryCommandAndChangesNothing) {
  RunOk("baseline");
  std::string store_before = DescribeTree(Root("store"));
  fs::remove(Root("lvm.log"));
  hv_->ResetCounts();
  Logger log(LogLevel::kError, false);
  const PlanResult result = PlanJob(Standard(), Env::Default(), hv_.get(), &log);
  EXPECT_TRUE(result.problems.empty()) << result.problems.front().text;
  const std::string& plan = result.text;
  for (const std::string& line :
       {"lvm lvcreate -s -n vmback-disk-<run id> -L 64M -- " + Root("vg/disk"),
        "lvm lvremove -f -- " + Root("vg/vmback-disk-<run id>"), std::string("web: suspend"),
        std::string("(checked: lvm vgs --noheadings --units b --nosuffix -o vg_free -- vg)"),
        std::string("db: agent"),
        "tree: no snapshot (snapshot = \"none\"): " + Root("tree") + " is read live, by choice"}) {
    EXPECT_TRUE(Has(plan, line)) << "missing: " << line << "\n" << plan;
  }
  if (have_fs_) {
    for (const std::string& line :
         {"lvm lvcreate -s -n vmback-fs-<run id> -L 64M -- " + Root("vg/fsimg"),
          "(checked: blkid -p -o value -s TYPE -- " + Root("vg/vmback-fs-<run id>") + ")",
          "fsck -p -t ext4 " + Root("vg/vmback-fs-<run id>"),
          "mount -t ext4 -o ro,nosuid,nodev,noexec -- " + Root("vg/vmback-fs-<run id>") + " " + Root("state/mnt-fs"),
          "umount -- " + Root("state/mnt-fs"), "lvm lvremove -f -- " + Root("vg/vmback-fs-<run id>")}) {
      EXPECT_TRUE(Has(plan, line)) << "missing: " << line << "\n" << plan;
    }
  }
  EXPECT_FALSE(Has(plan, "idle")) << plan;  // shut off: not quiesced
  EXPECT_FALSE(Has(plan, "other")) << plan;
  EXPECT_TRUE(LvmCalls().empty()) << Joined(LvmCalls());
  EXPECT_EQ(hv_->quiesce_calls(), 0);
  EXPECT_EQ(DescribeTree(Root("store")), store_before);
  ExpectClean("after the plan");

  // A store that is not there is a problem, named with how to make one.
  Config c = Standard();
  c.target.path = Root("nostore");
  const PlanResult missing = PlanJob(c, Env::Default(), hv_.get(), &log);
  ASSERT_EQ(missing.problems.size(), 1u);
  EXPECT_TRUE(Has(missing.problems[0].text, "vmback store init " + Root("nostore"))) << missing.problems[0].text;
  EXPECT_TRUE(Has(missing.text, "4. snapshot each volume:")) << "the steps are described all the same";
}

}  // namespace
}  // namespace vmback
