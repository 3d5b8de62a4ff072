// Tests of NbdDisk against a real NBD server: a qcow2 image made with
// qemu-img, written with qemu-io (first writes, then a persistent dirty
// bitmap, then second writes that mark it), exported by qemu-nbd with that
// bitmap (-B), as libvirt's pull-mode backup exports a disk. Skipped when
// qemu-nbd is not installed (Debian: qemu-utils).
#include "source/nbd_disk.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "helpers/nbd_server.h"
#include "helpers/test_util.h"
#include "os/subprocess.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::Exec;
using test::ReadFile;
using test::TempDir;

constexpr uint64_t kDiskSize = 8u << 20;
constexpr char kBitmap[] = "b0";
constexpr char kExport[] = "vda";

struct Write {
  uint64_t offset;
  uint64_t length;
  int pattern;
};
// Before the bitmap is added: not dirty.
const Write kFirstWrites[] = {{0, 1u << 20, 0x11}, {4u << 20, 64u << 10, 0x22}};
// After: exactly what the bitmap must hold (rounded to its granularity).
const Write kSecondWrites[] = {{1u << 20, 4u << 10, 0x33}, {6u << 20, 100u << 10, 0x44}};

void RunOk(const std::vector<std::string>& argv) {
  RunResult r = Exec(argv);
  ASSERT_EQ(r.exit_code, 0) << DescribeFailure(argv, r);
}

void QemuIoWrites(const std::string& image, const std::vector<Write>& writes) {
  std::vector<std::string> argv = {"qemu-io", "-f", "qcow2"};
  for (const Write& w : writes) {
    argv.push_back("-c");
    argv.push_back("write -P " + std::to_string(w.pattern) + " " + std::to_string(w.offset) + " " +
                   std::to_string(w.length));
  }
  argv.push_back(image);
  RunOk(argv);
}

bool HaveQemuNbd() { return Exec({"qemu-nbd", "--version"}).exit_code == 0; }

// A unix socket that accepts connections (the kernel's backlog) but never
// answers: a hung NBD server.
class SilentSocket {
 public:
  explicit SilentSocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
    EXPECT_EQ(::listen(fd_, 4), 0) << strerror(errno);
  }
  ~SilentSocket() { ::close(fd_); }

 private:
  int fd_ = -1;
};

class NbdDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveQemuNbd()) GTEST_SKIP() << "qemu-nbd is not installed (Debian: apt install qemu-utils)";
    image_ = dir_ / "disk.qcow2";
    socket_ = dir_ / "nbd.sock";
    RunOk({"qemu-img", "create", "-q", "-f", "qcow2", image_, std::to_string(kDiskSize)});
    QemuIoWrites(image_, {std::begin(kFirstWrites), std::end(kFirstWrites)});
    RunOk({"qemu-img", "bitmap", "--add", "--enable", image_, kBitmap});
    QemuIoWrites(image_, {std::begin(kSecondWrites), std::end(kSecondWrites)});
    RunOk({"qemu-img", "convert", "-O", "raw", image_, dir_ / "disk.raw"});
    server_ = std::make_unique<test::NbdServer>(
        std::vector<std::string>{"qemu-nbd", "--socket=" + socket_, "--format=qcow2",
                                 "--persistent", "--shared=2", "--read-only",
                                 "--export-name=" + std::string(kExport),
                                 "--bitmap=" + std::string(kBitmap), image_},
        socket_, dir_ / "qemu-nbd.log");
    ASSERT_TRUE(server_->started());
  }
  void TearDown() override { server_.reset(); }

  std::unique_ptr<NbdDisk> Open(std::vector<std::string> contexts = {}) {
    NbdOptions options;
    options.connect_timeout = std::chrono::milliseconds(5000);
    options.contexts = std::move(contexts);
    return std::make_unique<NbdDisk>(socket_, kExport, options);
  }

  // From `qemu-img info`: the granularity of the bitmap in the image.
  uint64_t BitmapGranularity() {
    RunResult r = Exec({"qemu-img", "info", "-U", "--output=json", image_});
    auto info = nlohmann::json::parse(r.out);
    for (const auto& b : info["format-specific"]["data"]["bitmaps"]) {
      if (b["name"] == kBitmap) return b["granularity"].get<uint64_t>();
    }
    ADD_FAILURE() << "no bitmap " << kBitmap << " in " << r.out;
    return 1;
  }

  TempDir dir_;
  std::string image_, socket_;
  std::unique_ptr<test::NbdServer> server_;
};

TEST_F(NbdDiskTest, ReadsExactlyTheGuestVisibleBytes) {
  auto disk = Open();
  EXPECT_EQ(disk->path(), "nbd:" + socket_ + "/vda");
  ASSERT_EQ(disk->Size(), kDiskSize);
  const std::string raw = ReadFile(dir_ / "disk.raw");
  ASSERT_EQ(raw.size(), kDiskSize);
  // One call larger than a request (kNbdMaxRead), and one past the end.
  std::string got(kDiskSize + 4096, '\xff');
  ASSERT_EQ(disk->ReadAt(0, got.data(), got.size()), kDiskSize);
  got.resize(kDiskSize);
  EXPECT_TRUE(got == raw) << "the bytes read over NBD differ from qemu-img convert's";
  char tail[100];
  EXPECT_EQ(disk->ReadAt(kDiskSize - 10, tail, sizeof tail), 10u);
  EXPECT_EQ(std::string(tail, 10), raw.substr(kDiskSize - 10));
  EXPECT_EQ(disk->ReadAt(kDiskSize, tail, sizeof tail), 0u);
}

TEST_F(NbdDiskTest, HolesAreSkippedAndHoldOnlyZeros) {
  auto disk = Open();
  const std::string raw = ReadFile(dir_ / "disk.raw");
  // Nothing was written between the 64 KiB cluster at 1 MiB and 4 MiB.
  uint64_t hole = disk->NextHole(0);
  EXPECT_GE(hole, (1u << 20) + (4u << 10));
  EXPECT_LE(hole, (1u << 20) + (64u << 10));
  EXPECT_EQ(disk->NextData(hole), 4u << 20);
  EXPECT_EQ(disk->NextHole(4u << 20), (4u << 20) + (64u << 10));
  EXPECT_EQ(disk->NextData((4u << 20) + (64u << 10)), 6u << 20);
  EXPECT_EQ(disk->NextData((6u << 20) + (128u << 10)), kDiskSize);
  EXPECT_EQ(disk->NextHole(kDiskSize), kDiskSize);
  // Over the whole disk: every byte outside the data regions reads as zero,
  // and every data region is non-empty.
  uint64_t data_bytes = 0;
  for (uint64_t at = 0; at < kDiskSize;) {
    uint64_t data = disk->NextData(at);
    ASSERT_GE(data, at);
    EXPECT_EQ(raw.substr(at, data - at), std::string(data - at, '\0')) << "a hole at " << at;
    if (data >= kDiskSize) break;
    uint64_t end = disk->NextHole(data);
    ASSERT_GT(end, data);
    data_bytes += end - data;
    at = end;
  }
  EXPECT_LT(data_bytes, kDiskSize / 2) << "the holes were not skipped";
}

TEST_F(NbdDiskTest, DirtyExtentsAreTheSecondWritesAtTheBitmapGranularity) {
  const std::string context = std::string("qemu:dirty-bitmap:") + kBitmap;
  auto disk = Open({context});
  const uint64_t g = BitmapGranularity();
  EXPECT_EQ(g, 64u << 10);
  std::vector<ByteRange> want;
  for (const Write& w : kSecondWrites) {
    uint64_t start = w.offset / g * g;
    uint64_t end = (w.offset + w.length + g - 1) / g * g;
    want.push_back(ByteRange{start, end - start});
  }
  ChangeSet changes = disk->DirtyExtents(context);
  EXPECT_EQ(changes.method, ChangeMethod::kDirtyBitmap);
  EXPECT_EQ(changes.why, "");
  ASSERT_EQ(changes.changed.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    EXPECT_EQ(changes.changed[i].offset, want[i].offset) << i;
    EXPECT_EQ(changes.changed[i].length, want[i].length) << i;
  }
  // The same connection still reads.
  char byte = 0;
  ASSERT_EQ(disk->ReadAt(6u << 20, &byte, 1), 1u);
  EXPECT_EQ(byte, 0x44);
}

TEST_F(NbdDiskTest, AMissingContextIsAClearError) {
  const std::string missing = BackupDirtyBitmapContext("vdz");
  EXPECT_EQ(missing, "qemu:dirty-bitmap:backup-vdz");
  auto disk = Open({missing});
  try {
    disk->DirtyExtents(missing);
    FAIL() << "no error for a context the server does not offer";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(socket_ + "/vda"), std::string::npos) << e.what();
  }
  // A context never asked for is refused the same way.
  EXPECT_THROW(disk->DirtyExtents(std::string("qemu:dirty-bitmap:") + kBitmap), Error);
}

TEST_F(NbdDiskTest, AnUnknownExportIsAnErrorNamingIt) {
  NbdOptions options;
  try {
    NbdDisk disk(socket_, "vdq", options);
    FAIL() << "connected to an export that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("nbd:" + socket_ + "/vdq"), std::string::npos) << e.what();
  }
}

TEST(NbdDiskConnect, ASilentServerTimesOutNamingTheSocket) {
  TempDir dir;
  const std::string socket = dir / "hung.sock";
  SilentSocket server(socket);
  NbdOptions options;
  options.connect_timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  try {
    NbdDisk disk(socket, "vda", options);
    FAIL() << "connected to a server that never answers";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    std::string m = e.what();
    EXPECT_NE(m.find("nbd:" + socket + "/vda"), std::string::npos) << m;
    EXPECT_NE(m.find("timed out after 300 ms"), std::string::npos) << m;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(NbdDiskConnect, NoServerIsAnErrorNamingTheSocket) {
  TempDir dir;
  const std::string socket = dir / "none.sock";
  try {
    NbdDisk disk(socket, "vda", NbdOptions{});
    FAIL() << "connected to nothing";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("nbd:" + socket + "/vda"), std::string::npos) << e.what();
  }
}

// A server whose block-status replies hold a zero-length extent (nbdinfo
// --map loops forever on it), or none: an error naming the socket, at once.
class HostileServerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HostileServerTest, BadExtentsAreAnErrorNotALoop) {
  TempDir dir;
  const std::string socket = dir / "hostile.sock";
  test::NbdServer server({"/usr/bin/python3", test::RepoRoot() + "/tests/helpers/hostile_nbd_server.py",
                 socket, GetParam()},
                socket, dir / "server.log");
  ASSERT_TRUE(server.started());
  NbdOptions options;
  options.connect_timeout = std::chrono::milliseconds(5000);
  options.io_timeout = std::chrono::milliseconds(5000);
  NbdDisk disk(socket, "", options);
  ASSERT_EQ(disk.Size(), 1u << 20);
  auto start = std::chrono::steady_clock::now();
  try {
    disk.NextData(0);
    FAIL() << "no error for block status the server answered with bad extents";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("nbd:" + socket + "/: block status of base:allocation"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

INSTANTIATE_TEST_SUITE_P(Modes, HostileServerTest, ::testing::Values("empty", "none"));

}  // namespace
}  // namespace vmback
