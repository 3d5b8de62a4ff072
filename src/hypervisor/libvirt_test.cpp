// Tests for hypervisor/libvirt.cpp, against libvirt's in-process test driver.
//
// Most tests connect to test:///<tmp>/node.xml: every such connection gets a
// private copy of the domains in that file. The agent tests use
// test:///default instead, whose state all connections in the process share,
// so that a second, raw connection can see whether the guest is frozen (the
// test driver's fsfreeze returns how many file systems it newly froze, and
// fsthaw how many it thawed).
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/test_util.h"
#include "hypervisor/hypervisor.h"
#include "util/error.h"

namespace vmback {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kTimeout{5000};

// Sets a libvirt call delay for the lifetime of the object.
class ScopedCallDelay {
 public:
  ScopedCallDelay(std::string call, milliseconds delay) : call_(std::move(call)) {
    SetLibvirtCallDelayForTesting(call_, delay);
  }
  ~ScopedCallDelay() { SetLibvirtCallDelayForTesting(call_, milliseconds(0)); }

 private:
  std::string call_;
};

// Whether any message the logger kept contains text.
bool Logged(const Logger& log, const std::string& text) {
  for (const std::string& m : log.problems()) {
    if (m.find(text) != std::string::npos) return true;
  }
  return false;
}

using test::Eventually;

// ------------------------------------------------------------ names

TEST(QuiesceMethodTest, NamesRoundTrip) {
  for (QuiesceMethod m : {QuiesceMethod::kAuto, QuiesceMethod::kAgent, QuiesceMethod::kSysrq,
                          QuiesceMethod::kSuspend, QuiesceMethod::kNone}) {
    EXPECT_EQ(ParseQuiesceMethod(QuiesceMethodName(m)), m);
  }
  EXPECT_STREQ(QuiesceMethodName(QuiesceMethod::kSysrq), "sysrq");
}

TEST(QuiesceMethodTest, UnknownNameIsAConfigError) {
  try {
    ParseQuiesceMethod("freeze");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("freeze"), std::string::npos);
  }
  EXPECT_THROW(ParseQuiesceMethod(""), Error);
  EXPECT_THROW(ParseQuiesceMethod("Agent"), Error);
}

// ------------------------------------------------------------ disk XML

TEST(DiskSourcesTest, FileAndBlockSourcesInEitherQuoteStyle) {
  const std::string xml = R"(<domain type='kvm'>
  <name>vm</name>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/vm.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='raw'/>
        <source file='/var/lib/libvirt/images/base.img'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type="block" device="disk">
      <source dev = "/dev/vg0/data"/>
      <target dev="vdb" bus="virtio"/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/isos/debian.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sdb' bus='sata'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='pool/image'>
        <host name='mon1' port='6789'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='lun'><source file="/srv/odd 'name' &amp; more&#x21;.img"/></disk>
    <interface type='network'><source network='default'/></interface>
  </devices>
</domain>)";
  std::vector<std::string> expected = {"/var/lib/libvirt/images/vm.qcow2", "/dev/vg0/data",
                                       "/srv/odd 'name' & more!.img"};
  EXPECT_EQ(DiskSourcesFromDomainXml(xml), expected);
}

TEST(DiskSourcesTest, CommentsAndAwkwardAttributeValues) {
  const std::string xml =
      "<?xml version='1.0'?>\n"
      "<domain>\n"
      "<!-- <disk type='file'><source file='/commented/out'/></disk> -->\n"
      "<devices>\n"
      "<disk type='file' device='disk' note='a > b'>\n"
      "  <source\n     file='/a/x&apos;y&lt;z&gt;.img'\n  />\n"
      "</disk>\n"
      "<disk/>\n"  // no body: nothing
      "<disk type='file'><target dev='vdz'/><source file='/after/target.img'></source></disk>\n"
      "<disk type='file'><source file='/last.img'/></disk>\n"
      "</devices></domain>";  // (a document cut off is an error: see Malformed... below)
  std::vector<std::string> expected = {"/a/x'y<z>.img", "/after/target.img", "/last.img"};
  EXPECT_EQ(DiskSourcesFromDomainXml(xml), expected);
}

TEST(DiskSourcesTest, NoDisks) {
  // ("" and "not xml at all < disk" are errors: see Malformed... below.)
  EXPECT_TRUE(DiskSourcesFromDomainXml("<domain/>").empty());
  EXPECT_TRUE(DiskSourcesFromDomainXml("<domain><devices/></domain>").empty());
}

// Calls DiskSourcesFromDomainXml(xml, "web") and returns its error message
// ("" and a test failure if there is none).
std::string DiskXmlError(const std::string& xml) {
  try {
    std::vector<std::string> sources = DiskSourcesFromDomainXml(xml, "web");
    ADD_FAILURE() << "no error; sources: " << ::testing::PrintToString(sources);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The classic "billion laughs": ten entities, each ten of the one before, so
// that &lol9; would be 10^9 times "lol".
std::string EntityBomb() {
  std::string xml = "<?xml version='1.0'?>\n<!DOCTYPE domain [\n<!ENTITY lol0 'lol'>\n";
  for (int i = 1; i <= 9; i++) {
    xml += "<!ENTITY lol" + std::to_string(i) + " '";
    for (int j = 0; j < 10; j++) xml += "&lol" + std::to_string(i - 1) + ";";
    xml += "'>\n";
  }
  return xml +
         "]>\n<domain><name>&lol9;</name><devices><disk type='file' device='disk'>"
         "<source file='/img/&lol9;.img'/></disk></devices></domain>";
}

TEST(DiskSourcesTest, EntityBombIsRefusedUnexpanded) {
  const auto start = std::chrono::steady_clock::now();
  std::string what = DiskXmlError(EntityBomb());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_NE(what.find("VM 'web'"), std::string::npos) << what;
  EXPECT_NE(what.find("DOCTYPE"), std::string::npos) << what;
  EXPECT_EQ(what.find("lollol"), std::string::npos) << what;
}

TEST(DiskSourcesTest, ExternalEntitiesAreNeitherReadNorExpanded) {
  test::TempDir dir;
  const std::string secret = dir / "secret";
  test::WriteFile(secret, "not-for-the-backup");
  const std::string body =
      "<domain><name>web</name><devices><disk type='file' device='disk'>"
      "<source file='/img/&x;.img'/><target dev='vda'/></disk></devices></domain>";
  for (const std::string& doctype :
       {"<!DOCTYPE domain [<!ENTITY x SYSTEM 'file://" + secret + "'>]>",
        std::string("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"),
        "<!DOCTYPE domain SYSTEM 'file://" + secret + "'>",
        "<!DOCTYPE domain [<!ENTITY % p SYSTEM 'file://" + secret + "'> %p;]>"}) {
    std::string what = DiskXmlError(doctype + body);
    EXPECT_NE(what.find("VM 'web'"), std::string::npos) << what;
    EXPECT_NE(what.find("DOCTYPE"), std::string::npos) << what;
    EXPECT_EQ(what.find("not-for-the-backup"), std::string::npos) << what;
    EXPECT_EQ(what.find("root:"), std::string::npos) << what;
  }
  // Without a DOCTYPE the reference names no entity: not well-formed.
  std::string what = DiskXmlError(body);
  EXPECT_NE(what.find("VM 'web'"), std::string::npos) << what;
  EXPECT_NE(what.find("'x'"), std::string::npos) << what;
}

TEST(DiskSourcesTest, MalformedXmlIsAnErrorNamingTheVmAndTheLine) {
  const std::string cut_off =
      "<domain>\n<devices>\n<disk type='file'><source file='/first.img'/></disk>\n"
      "<disk type='file'><source file='/last.img'/>";
  for (const std::string& xml :
       {cut_off, std::string(""), std::string("not xml at all < disk"),
        std::string("<domain><devices><disk><source file='/a.img'></disk></devices></domain>"),
        std::string("<domain><devices><disk><source file=/a.img/></disk></devices></domain>"),
        std::string("<domain/><domain/>"), std::string("<domain>\0</domain>", 18)}) {
    std::string what = DiskXmlError(xml);
    EXPECT_NE(what.find("VM 'web'"), std::string::npos) << what;
    EXPECT_NE(what.find("not well-formed"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  std::string what = DiskXmlError(cut_off);
  EXPECT_NE(what.find("line 4"), std::string::npos) << what;
  // Without a name the message still says what it was reading.
  try {
    DiskSourcesFromDomainXml(cut_off);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("domain XML", 0), 0u) << e.what();
  }
}

TEST(DiskSourcesTest, OversizedXmlIsRefusedBeforeParsing) {
  std::string xml = "<domain><devices><disk><source file='/a.img'/></disk></devices><!-- ";
  xml.append(10 << 20, 'x');
  xml += " --></domain>";
  std::string what = DiskXmlError(xml);
  EXPECT_NE(what.find("VM 'web'"), std::string::npos) << what;
  EXPECT_NE(what.find("10 MiB"), std::string::npos) << what;
}

TEST(DiskSourcesTest, OnlyTheDomainsOwnDevicesCount) {
  // Elements named disk elsewhere (an application's metadata, a nested
  // devices) are not the domain's disks.
  const std::string xml = R"(<domain type='kvm'>
  <name>web</name>
  <metadata>
    <app:info xmlns:app='urn:example'>
      <devices><disk type='file'><source file='/metadata/fake.img'/></disk></devices>
    </app:info>
  </metadata>
  <disk type='file'><source file='/top/level.img'/></disk>
  <devices>
    <disk type='file' device='disk'><source file='/real.img'/></disk>
    <hostdev><devices><disk><source file='/nested.img'/></disk></devices></hostdev>
  </devices>
</domain>)";
  EXPECT_EQ(DiskSourcesFromDomainXml(xml), std::vector<std::string>{"/real.img"});
}

// ------------------------------------------------------------ connecting

TEST(ConnectLibvirtTest, BadUriNamesItAndCarriesLibvirtsMessage) {
  test::TempDir dir;
  test::WriteFile(dir / "bad.xml", "<node><domain type='test'><name>x</name></node>");
  const std::string uri = "test://" + (dir / "bad.xml");
  Logger log(LogLevel::kError, false);
  try {
    ConnectLibvirt(uri, &log);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(uri), std::string::npos) << what;
    EXPECT_GT(what.size(), uri.size() + 30) << what;  // libvirt's reason is there too
  }
}

// ------------------------------------------------------------ own domains

// alpha: running, a qcow2 image with a backing file, a block device and a
//   cdrom. beta: running, an awkward file name. off: shut off. held: paused.
constexpr char kNodeXml[] = R"(<node>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>alpha</name>
  <memory>65536</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='@DIR@/alpha.qcow2'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='@DIR@/base.img'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev="/dev/vmback-test-vg/alpha"/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/isos/installer.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
  </devices>
</domain>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>beta</name>
  <memory>65536</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file="@DIR@/beta's &amp; disk.img"/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>off</name>
  <memory>65536</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='@DIR@/off.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
  <test:runstate>5</test:runstate>
</domain>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>held</name>
  <memory>65536</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='@DIR@/held.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
  <test:runstate>3</test:runstate>
</domain>
</node>
)";

class LibvirtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::WriteFile(dir_ / "alpha.qcow2", "");
    test::WriteFile(dir_ / "base.img", "");
    test::WriteFile(dir_ / "beta's & disk.img", "");
    test::WriteFile(dir_ / "off.img", "");
    test::WriteFile(dir_ / "held.img", "");
    test::WriteFile(dir_ / "node.xml", NodeXml());
    hv_ = ConnectLibvirt("test://" + (dir_ / "node.xml"), &log_);
  }

  // kNodeXml with @DIR@ replaced by the test's directory.
  std::string NodeXml() {
    std::string xml = kNodeXml;
    for (size_t at; (at = xml.find("@DIR@")) != std::string::npos;) {
      xml.replace(at, 5, dir_.path());
    }
    return xml;
  }

  bool Paused(const std::string& name) { return hv_->Domain(name).paused; }
  bool Running(const std::string& name) {
    DomainInfo info = hv_->Domain(name);
    return info.running && !info.paused;
  }

  test::TempDir dir_;
  Logger log_{LogLevel::kError, false};
  std::unique_ptr<Hypervisor> hv_;
};

TEST_F(LibvirtTest, DomainsListsEveryDomainWithStateAndDisks) {
  std::vector<DomainInfo> all = hv_->Domains();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].name, "alpha");
  EXPECT_EQ(all[1].name, "beta");
  EXPECT_EQ(all[2].name, "held");
  EXPECT_EQ(all[3].name, "off");

  EXPECT_TRUE(all[0].running);
  EXPECT_FALSE(all[0].paused);
  EXPECT_EQ(all[0].disk_sources,
            (std::vector<std::string>{dir_ / "alpha.qcow2", "/dev/vmback-test-vg/alpha"}));
  EXPECT_EQ(all[1].disk_sources, std::vector<std::string>{dir_ / "beta's & disk.img"});
  EXPECT_TRUE(all[2].running);
  EXPECT_TRUE(all[2].paused);
  EXPECT_EQ(all[2].disk_sources, std::vector<std::string>{dir_ / "held.img"});
  EXPECT_FALSE(all[3].running);
  EXPECT_FALSE(all[3].paused);
  EXPECT_EQ(all[3].disk_sources, std::vector<std::string>{dir_ / "off.img"});
}

TEST_F(LibvirtTest, DomainDescribesOne) {
  DomainInfo beta = hv_->Domain("beta");
  EXPECT_EQ(beta.name, "beta");
  EXPECT_TRUE(beta.running);
  EXPECT_FALSE(beta.paused);
  EXPECT_EQ(beta.disk_sources, std::vector<std::string>{dir_ / "beta's & disk.img"});
}

TEST_F(LibvirtTest, UnknownDomainIsNotFoundNamingIt) {
  auto expect_not_found = [](auto&& call) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
      EXPECT_NE(std::string(e.what()).find("'gamma'"), std::string::npos) << e.what();
    }
  };
  expect_not_found([&] { hv_->Domain("gamma"); });
  expect_not_found([&] { hv_->Quiesce("gamma", QuiesceMethod::kAuto, kTimeout); });
  expect_not_found([&] { hv_->Quiesce("gamma", QuiesceMethod::kNone, kTimeout); });
  expect_not_found([&] { hv_->Recover("gamma", QuiesceMethod::kSuspend); });
}

TEST_F(LibvirtTest, SuspendPausesWhileHeld) {
  {
    std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kSuspend, kTimeout);
    EXPECT_EQ(vm->method(), QuiesceMethod::kSuspend);
    EXPECT_EQ(vm->name(), "alpha");
    EXPECT_TRUE(Paused("alpha"));
    EXPECT_TRUE(Running("beta"));  // only the one asked for
  }
  EXPECT_TRUE(Running("alpha"));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, SysrqSyncsThenPausesWhileHeld) {
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kSysrq, kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(400));  // the sync wait
  EXPECT_EQ(vm->method(), QuiesceMethod::kSysrq);
  EXPECT_TRUE(Paused("alpha"));
  vm->Release();
  EXPECT_TRUE(Running("alpha"));
  vm->Release();  // a second time does nothing
  vm.reset();     // nor does the destructor after Release
  EXPECT_TRUE(Running("alpha"));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, AgentFreezesWithoutPausing) {
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kAgent, kTimeout);
  EXPECT_EQ(vm->method(), QuiesceMethod::kAgent);
  EXPECT_TRUE(Running("alpha"));
  vm->Release();
  EXPECT_TRUE(Running("alpha"));
}

TEST_F(LibvirtTest, AutoUsesTheAgentWhenItAnswers) {
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kAuto, kTimeout);
  EXPECT_EQ(vm->method(), QuiesceMethod::kAgent);
  EXPECT_TRUE(Running("alpha"));
}

TEST_F(LibvirtTest, AutoFallsBackToSysrqWhenTheAgentTimesOut) {
  ScopedCallDelay hang("fsfreeze", milliseconds(300));
  {
    std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kAuto, milliseconds(50));
    EXPECT_EQ(vm->method(), QuiesceMethod::kSysrq);
    EXPECT_TRUE(Paused("alpha"));
  }
  EXPECT_TRUE(Running("alpha"));
}

TEST_F(LibvirtTest, NoneDoesNothing) {
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kNone, kTimeout);
  EXPECT_EQ(vm->method(), QuiesceMethod::kNone);
  EXPECT_TRUE(Running("alpha"));
  vm->Release();
  EXPECT_TRUE(Running("alpha"));
}

TEST_F(LibvirtTest, GuardResumesWhenTheScopeThrows) {
  for (QuiesceMethod method : {QuiesceMethod::kSuspend, QuiesceMethod::kSysrq}) {
    EXPECT_THROW(
        {
          std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", method, kTimeout);
          EXPECT_TRUE(Paused("alpha"));
          throw std::runtime_error("copying the disk failed");
        },
        std::runtime_error);
    EXPECT_TRUE(Running("alpha")) << QuiesceMethodName(method);
  }
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, AlreadyPausedDomainIsLeftPaused) {
  for (QuiesceMethod method : {QuiesceMethod::kAuto, QuiesceMethod::kAgent, QuiesceMethod::kSysrq,
                               QuiesceMethod::kSuspend}) {
    {
      std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("held", method, kTimeout);
      EXPECT_EQ(vm->method(), QuiesceMethod::kNone) << QuiesceMethodName(method);
      EXPECT_TRUE(Paused("held"));
    }
    EXPECT_TRUE(Paused("held")) << QuiesceMethodName(method);
  }
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, ShutOffDomainGetsNone) {
  for (QuiesceMethod method : {QuiesceMethod::kAuto, QuiesceMethod::kAgent, QuiesceMethod::kSysrq,
                               QuiesceMethod::kSuspend}) {
    std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("off", method, kTimeout);
    EXPECT_EQ(vm->method(), QuiesceMethod::kNone) << QuiesceMethodName(method);
    EXPECT_NO_THROW(vm->Release());
    EXPECT_FALSE(hv_->Domain("off").running);
  }
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, SuspendTimeoutFailsNamingTheVmAndLeavesItRunning) {
  {
    ScopedCallDelay hang("suspend", milliseconds(200));
    try {
      hv_->Quiesce("alpha", QuiesceMethod::kSuspend, milliseconds(50));
      FAIL() << "no error";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("'alpha'"), std::string::npos) << what;
      EXPECT_NE(what.find("timed out"), std::string::npos) << what;
    }
    EXPECT_TRUE(Running("alpha"));
  }
  // The suspend goes through late, and is undone at once.
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_TRUE(Eventually([&] { return Running("alpha"); }));
}

TEST_F(LibvirtTest, ReleaseThrowsWhenResumeTimesOutAndTheDestructorLogs) {
  {
    std::unique_ptr<QuiescedVm> vm =
        hv_->Quiesce("alpha", QuiesceMethod::kSuspend, milliseconds(100));
    ScopedCallDelay hang("resume", milliseconds(300));
    try {
      vm->Release();
      FAIL() << "no error";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("'alpha'"), std::string::npos) << what;
      EXPECT_NE(what.find("resume"), std::string::npos) << what;
    }
  }
  EXPECT_TRUE(Eventually([&] { return Running("alpha"); }));  // the late resume

  {
    std::unique_ptr<QuiescedVm> vm =
        hv_->Quiesce("alpha", QuiesceMethod::kSuspend, milliseconds(100));
    ScopedCallDelay hang("resume", milliseconds(300));
    EXPECT_NO_THROW(vm.reset());
  }
  EXPECT_TRUE(Logged(log_, "'alpha'"));
  EXPECT_TRUE(Eventually([&] { return Running("alpha"); }));
}

TEST_F(LibvirtTest, RecoverResumesAPausedDomain) {
  hv_->Recover("held", QuiesceMethod::kSuspend);
  EXPECT_TRUE(Running("held"));
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, RecoverAfterSysrqOrAutoResumesToo) {
  for (QuiesceMethod method : {QuiesceMethod::kSysrq, QuiesceMethod::kAuto}) {
    std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("alpha", QuiesceMethod::kSuspend, kTimeout);
    ASSERT_TRUE(Paused("alpha"));
    hv_->Recover("alpha", method);  // as if the run that paused it had crashed
    EXPECT_TRUE(Running("alpha")) << QuiesceMethodName(method);
    vm.reset();  // nothing to resume any more: a warning, no error
    EXPECT_TRUE(Running("alpha"));
  }
}

TEST_F(LibvirtTest, RecoverOfARunningDomainDoesNothing) {
  for (QuiesceMethod method : {QuiesceMethod::kAuto, QuiesceMethod::kAgent, QuiesceMethod::kSysrq,
                               QuiesceMethod::kSuspend, QuiesceMethod::kNone}) {
    EXPECT_NO_THROW(hv_->Recover("alpha", method)) << QuiesceMethodName(method);
    EXPECT_TRUE(Running("alpha"));
  }
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(LibvirtTest, RecoverLeavesOthersPausesAndShutOffDomainsAlone) {
  hv_->Recover("held", QuiesceMethod::kAgent);  // we only froze it: not ours to resume
  EXPECT_TRUE(Paused("held"));
  hv_->Recover("held", QuiesceMethod::kNone);
  EXPECT_TRUE(Paused("held"));
  for (QuiesceMethod method : {QuiesceMethod::kAuto, QuiesceMethod::kSuspend}) {
    EXPECT_NO_THROW(hv_->Recover("off", method));
    EXPECT_FALSE(hv_->Domain("off").running);
  }
}

// ------------------------------------------------------------ test:///default

// A raw second connection to test:///default, to watch the guest's file
// systems from outside.
class DefaultDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hv_ = ConnectLibvirt("test:///default", &log_);  // sets up libvirt's error handling
    conn_ = virConnectOpen("test:///default");
    ASSERT_NE(conn_, nullptr);
    dom_ = virDomainLookupByName(conn_, "test");
    ASSERT_NE(dom_, nullptr);
  }
  void TearDown() override {
    if (dom_ != nullptr) {
      // Leave the shared domain running and thawed for the next test.
      virDomainFSThaw(dom_, nullptr, 0, 0);
      int state = 0, reason = 0;
      if (virDomainGetState(dom_, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED) {
        virDomainResume(dom_);
      }
      virDomainFree(dom_);
    }
    if (conn_ != nullptr) virConnectClose(conn_);
  }

  // Whether all the guest's file systems are frozen: then a freeze freezes
  // none. (Freezes them all otherwise, so call only where that is harmless.)
  bool AllFrozen() { return virDomainFSFreeze(dom_, nullptr, 0, 0) == 0; }
  // Whether none is frozen: then a thaw thaws none. (Thaws them otherwise.)
  bool NoneFrozen() { return virDomainFSThaw(dom_, nullptr, 0, 0) == 0; }

  Logger log_{LogLevel::kError, false};
  std::unique_ptr<Hypervisor> hv_;
  virConnectPtr conn_ = nullptr;
  virDomainPtr dom_ = nullptr;
};

TEST_F(DefaultDriverTest, DescribesTheTestDomain) {
  DomainInfo info = hv_->Domain("test");
  EXPECT_TRUE(info.running);
  EXPECT_FALSE(info.paused);
  EXPECT_EQ(info.disk_sources, std::vector<std::string>{"/guest/diskimage1"});
  ASSERT_EQ(hv_->Domains().size(), 1u);
  EXPECT_EQ(hv_->Domains()[0].name, "test");
}

TEST_F(DefaultDriverTest, AgentFreezesWhileHeldAndThawsAfter) {
  {
    std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("test", QuiesceMethod::kAgent, kTimeout);
    EXPECT_EQ(vm->method(), QuiesceMethod::kAgent);
    EXPECT_TRUE(AllFrozen());
    EXPECT_FALSE(hv_->Domain("test").paused);
  }
  EXPECT_TRUE(NoneFrozen());
  EXPECT_TRUE(log_.problems().empty());
}

TEST_F(DefaultDriverTest, AutoFreezesThroughTheAgent) {
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("test", QuiesceMethod::kAuto, kTimeout);
  EXPECT_EQ(vm->method(), QuiesceMethod::kAgent);
  EXPECT_TRUE(AllFrozen());
  vm->Release();
  EXPECT_TRUE(NoneFrozen());
}

TEST_F(DefaultDriverTest, GuardThawsWhenTheScopeThrows) {
  EXPECT_THROW(
      {
        std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("test", QuiesceMethod::kAgent, kTimeout);
        throw std::runtime_error("copying the disk failed");
      },
      std::runtime_error);
  EXPECT_TRUE(NoneFrozen());
}

TEST_F(DefaultDriverTest, TimedOutFreezeFailsAndIsThawedWhenItLands) {
  {
    ScopedCallDelay hang("fsfreeze", milliseconds(200));
    try {
      hv_->Quiesce("test", QuiesceMethod::kAgent, milliseconds(50));
      FAIL() << "no error";
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("'test'"), std::string::npos) << what;
      EXPECT_NE(what.find("timed out"), std::string::npos) << what;
    }
  }
  // The freeze lands after 200 ms and is thawed right after.
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_TRUE(NoneFrozen());
}

TEST_F(DefaultDriverTest, ThawFailureOnReleaseThrowsNamingTheVm) {
  std::unique_ptr<QuiescedVm> vm = hv_->Quiesce("test", QuiesceMethod::kAgent, milliseconds(50));
  ScopedCallDelay hang("fsthaw", milliseconds(200));
  try {
    vm->Release();
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("'test'"), std::string::npos) << what;
    EXPECT_NE(what.find("thaw"), std::string::npos) << what;
  }
  std::this_thread::sleep_for(milliseconds(400));  // the late thaw, before TearDown's
  EXPECT_TRUE(NoneFrozen());
}

TEST_F(DefaultDriverTest, RecoverThawsAFrozenGuest) {
  ASSERT_EQ(virDomainFSFreeze(dom_, nullptr, 0, 0), 2);  // left frozen by a "crashed run"
  hv_->Recover("test", QuiesceMethod::kAgent);
  EXPECT_TRUE(NoneFrozen());
  EXPECT_TRUE(log_.problems().empty());
}

}  // namespace
}  // namespace vmback

namespace vmback {
namespace {

TEST_F(LibvirtTest, ConfigXmlIsTheDefinition) {
  DomainInfo alpha = hv_->Domain("alpha");
  EXPECT_EQ(DomainNameOf(alpha.config_xml, "x"), "alpha");
  std::vector<DomainDisk> disks = DisksFromDomainXml(alpha.config_xml);
  ASSERT_EQ(disks.size(), 2u);
  EXPECT_EQ(disks[0].source, dir_ / "alpha.qcow2");
}

TEST_F(LibvirtTest, RewriteForRestoreAndDefineBesideTheOriginal) {
  const std::string xml = hv_->Domain("alpha").config_xml;
  const std::vector<RestoredDisk> restored = {{"vda", dir_ / "r/alpha-vda.img", "raw"},
                                              {"vdb", dir_ / "r/alpha-vdb.qcow2", "qcow2"}};
  const std::string out = RewriteDomainXml(xml, restored, "alpha-restored", "VM alpha");
  EXPECT_EQ(DomainNameOf(out, "x"), "alpha-restored");
  std::vector<DomainDisk> disks = DisksFromDomainXml(out);
  ASSERT_EQ(disks.size(), 2u);  // the cdrom is left as it was, and not listed
  EXPECT_EQ(disks[0].source, restored[0].path);
  EXPECT_EQ(disks[0].format, "raw");
  EXPECT_EQ(disks[1].source, restored[1].path);
  EXPECT_EQ(disks[1].format, "qcow2");
  EXPECT_EQ(out.find("backingStore"), std::string::npos) << out;
  EXPECT_EQ(out.find("/dev/vmback-test-vg"), std::string::npos) << out;
  EXPECT_EQ(out.find("<uuid>"), std::string::npos) << out;
  EXPECT_NE(out.find("installer.iso"), std::string::npos) << out;

  // The original's name is refused, never redefined; the copy is defined.
  try {
    hv_->DefineDomain(RewriteDomainXml(xml, restored, "", "VM alpha"));
    ADD_FAILURE() << "alpha redefined";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("exists already"), std::string::npos) << e.what();
  }
  EXPECT_EQ(hv_->DefineDomain(out), "alpha-restored");
  DomainInfo copy = hv_->Domain("alpha-restored");
  EXPECT_FALSE(copy.running);
  EXPECT_EQ(copy.disk_sources, (std::vector<std::string>{restored[0].path, restored[1].path}));
  EXPECT_EQ(hv_->Domain("alpha").disk_sources[0], dir_ / "alpha.qcow2");  // the original untouched
}

TEST(RewriteDomainXmlTest, ADiskNotRestoredOrHostileXmlIsRefused) {
  const std::string xml =
      "<domain><name>web</name><devices>"
      "<disk type='file' device='disk'><source file='/a.img'/><target dev='vda'/></disk>"
      "<disk type='file' device='disk'><source file='/b.img'/><target dev='vdb'/></disk>"
      "</devices></domain>";
  try {
    RewriteDomainXml(xml, {{"vda", "/r/web-vda.img", "raw"}}, "", "VM web");
    ADD_FAILURE() << "vdb would stay on the original";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    EXPECT_NE(std::string(e.what()).find("disk vdb is not restored"), std::string::npos) << e.what();
  }
  // A path with quotes and markup stays one attribute value.
  const std::string odd = "/r/we'b\"<x>&.img";
  const std::string out = RewriteDomainXml(xml, {{"vda", odd, "raw"}, {"vdb", "/r/b", "raw"}}, "", "VM web");
  EXPECT_EQ(DisksFromDomainXml(out)[0].source, odd);
  EXPECT_THROW(RewriteDomainXml("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/shadow'>]><domain>&e;</domain>", {},
                                "", "VM x"),
               Error);
  EXPECT_THROW(RewriteDomainXml("<network/>", {}, "", "VM x"), Error);
  for (const char* reach :
       {"<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-x'/>"
        "</qemu:commandline>",
        "<devices><hostdev mode='subsystem' type='pci'/></devices>",
        "<devices><filesystem type='mount'><source dir='/'/><target dir='host'/></filesystem></devices>",
        "<devices><interface type='ethernet'><script path='/tmp/x'/></interface></devices>"}) {
    try {
      RewriteDomainXml(std::string("<domain><name>web</name>") + reach + "</domain>", {}, "", "VM web");
      ADD_FAILURE() << reach;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig);
      EXPECT_NE(std::string(e.what()).find("reaches into this host"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(DomainNameOf("<domain><name>a/b</name></domain>", "x"), Error);
  EXPECT_THROW(DomainNameOf("<domain/>", "x"), Error);
}

}  // namespace
}  // namespace vmback
