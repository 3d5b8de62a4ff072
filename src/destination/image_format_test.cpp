// restore --format qcow2 (destination/image_format.h) over both kinds of
// destination, with the real qemu-img: the qcow2 holds what the raw restore
// holds, gets its metadata, and takes its name only when the conversion
// succeeded; the temporaries go on every path; qemu-img gets a deadline.
#include "destination/image_format.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "run/store_destination.h"
#include "store/store.h"
#include "util/error.h"

namespace vmback {
namespace {

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Records the commands run and their limits; qemu-img fails when told to.
class RecordingEnv : public EnvWrapper {
 public:
  RecordingEnv() : EnvWrapper(Env::Default()) {}
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) override {
    argvs.push_back(argv);
    deadlines.push_back(limits.deadline);
    if (!plant.empty() && !argv.empty() && argv[0] == "qemu-img") test::WriteFile(plant, "theirs");
    if (fail_convert && !argv.empty() && argv[0] == "qemu-img") {
      RunResult r;
      r.exit_code = 1;
      r.err = "qemu-img: Could not open: boom\n";
      return r;
    }
    return EnvWrapper::RunLimited(argv, limits);
  }
  bool fail_convert = false;
  std::string plant;  // a file someone makes there while qemu-img runs
  std::vector<std::vector<std::string>> argvs;
  std::vector<std::optional<std::chrono::steady_clock::time_point>> deadlines;
};

class ImageFormatTest : public ::testing::TestWithParam<TargetType> {
 protected:
  ImageFormatTest() : log_(LogLevel::kWarning) {
    ::mkdir((dir_ / "src").c_str(), 0755);
    ::mkdir((dir_ / "src/vms").c_str(), 0755);
    ::mkdir((dir_ / "out").c_str(), 0755);
    // Data, a hole and data again, whole sectors: as a guest's disk.
    test::WriteFile(dir_ / "src/vms/web.img", test::RandomBytes(300000, 1));
    test::WriteFileAt(dir_ / "src/vms/web.img", 3 << 20, test::RandomBytes(69632, 2));
    ::chmod((dir_ / "src/vms/web.img").c_str(), 0640);
    test::SetMtimeNs(dir_ / "src/vms/web.img", 1700000000, 0);
    TargetConfig t;
    t.type = GetParam();
    t.path = dir_ / "T";
    t.block_size = 4096;
    if (t.type == TargetType::kStore)
      Store::Init(Env::Default(), t.path, 4096);
    else
      ::mkdir(t.path.c_str(), 0755);
    auto backup = OpenDestination(Env::Default(), t, DestinationAccess::kBackup, 0, &log_);
    VolumeSpec vms;
    vms.name = "vms";
    vms.source = dir_ / "src/vms";
    backup->Backup({vms}, BackupOptions{}, &log_);
    backup.reset();
    dest_ = OpenDestination(Env::Default(), t, DestinationAccess::kRead, 0, &log_);
  }

  RestoreStats Restore(Env* env, ImageFormat format, const std::string& path, const std::string& to,
                       Overwrite overwrite = Overwrite::kRefuse, const std::atomic<bool>* cancel = nullptr) {
    RestoreOptions o;
    o.overwrite = overwrite;
    return RestoreInFormat(dest_.get(), env, format, "latest", path, to, o, cancel, &log_);
  }

  std::vector<std::string> OutNames() { return Env::Default()->ListDir(dir_ / "out"); }

  test::TempDir dir_;
  Logger log_;
  std::unique_ptr<Destination> dest_;
};

TEST_P(ImageFormatTest, Qcow2HoldsWhatTheRawRestoreHoldsWithItsMetadata) {
  RecordingEnv env;
  Restore(&env, ImageFormat::kRaw, "vms/web.img", dir_ / "out/web.raw");
  Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2");

  RunResult info = test::Exec({"qemu-img", "info", "--output=json", dir_ / "out/web.qcow2"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(Has(info.out, "\"format\": \"qcow2\"")) << info.out;
  EXPECT_TRUE(Has(info.out, "\"virtual-size\": " + std::to_string((3 << 20) + 69632))) << info.out;
  RunResult cmp = test::Exec({"qemu-img", "compare", "-f", "raw", "-F", "qcow2", dir_ / "out/web.raw",
                              dir_ / "out/web.qcow2"});
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out << cmp.err;

  struct stat st;
  ASSERT_EQ(::stat((dir_ / "out/web.qcow2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  // Nothing else left beside it: the private directory and the raw image went.
  EXPECT_EQ(OutNames().size(), 2u);

  // One qemu-img convert, from and to absolute paths, with a deadline of
  // at least the base (the data is small).
  ASSERT_EQ(env.argvs.size(), 1u);
  EXPECT_EQ(std::vector<std::string>(env.argvs[0].begin(), env.argvs[0].begin() + 7),
            (std::vector<std::string>{"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "--"}));
  ASSERT_TRUE(env.deadlines[0].has_value());
  auto left = *env.deadlines[0] - std::chrono::steady_clock::now();
  EXPECT_GT(left, kConvertBaseTimeout - std::chrono::minutes(1));
  EXPECT_LE(left, kConvertBaseTimeout + std::chrono::seconds(1));
}

TEST_P(ImageFormatTest, AFailedConversionLeavesNothingAndNamesQemuImg) {
  RecordingEnv env;
  env.fail_convert = true;
  try {
    Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "converting the restored image to qcow2: qemu-img convert -f raw -O qcow2 -- "))
        << e.what();
    EXPECT_TRUE(Has(e.what(), "failed (exit 1): qemu-img: Could not open: boom")) << e.what();
  }
  EXPECT_TRUE(OutNames().empty());
}

// A signal while the raw image is restored stops it there (the store reads
// and the dir target copies check the flag), and the temporaries go.
TEST_P(ImageFormatTest, ASignalStopsTheRawRestoreAndLeavesNothing) {
  RecordingEnv env;
  std::atomic<bool> cancel{true};
  try {
    Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2", Overwrite::kRefuse, &cancel);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "restore interrupted by a signal (writing ")) << e.what();
  }
  EXPECT_TRUE(env.argvs.empty());
  EXPECT_TRUE(OutNames().empty());
}

TEST_P(ImageFormatTest, ADirectoryOrAWholePointIsRefusedBeforeAnythingIsWritten) {
  RecordingEnv env;
  for (const std::string path : {"vms", ""}) {
    try {
      Restore(&env, ImageFormat::kQcow2, path, dir_ / "out/x.qcow2");
      ADD_FAILURE() << "no error for '" << path << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig);
      EXPECT_TRUE(Has(e.what(), path.empty() ? "--format qcow2 converts one image file, not the whole point "
                                             : "--format qcow2 converts one image file, and 'vms' in point "))
          << e.what();
      EXPECT_TRUE(Has(e.what(), "or restore with --format raw")) << e.what();
    }
  }
  EXPECT_TRUE(OutNames().empty());
  EXPECT_TRUE(env.argvs.empty());
}

TEST_P(ImageFormatTest, AnExistingFileIsReplacedOnlyWithForce) {
  RecordingEnv env;
  test::WriteFile(dir_ / "out/web.qcow2", "old");
  EXPECT_THROW(Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2"), Error);
  EXPECT_EQ(test::ReadFile(dir_ / "out/web.qcow2"), "old");
  Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2", Overwrite::kAllow);
  EXPECT_EQ(test::ReadFile(dir_ / "out/web.qcow2").substr(0, 4), "QFI\xfb");
  EXPECT_EQ(OutNames().size(), 1u);
}

// Without --force, a file that appears at --to while qemu-img runs is left
// alone: the image takes the name only if it is still free.
TEST_P(ImageFormatTest, AFileMadeMeanwhileIsNotReplacedWithoutForce) {
  RecordingEnv env;
  env.plant = dir_ / "out/web.qcow2";
  try {
    Restore(&env, ImageFormat::kQcow2, "vms/web.img", dir_ / "out/web.qcow2");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "web.qcow2 exists; restore refuses to overwrite it without --force")) << e.what();
  }
  EXPECT_TRUE(test::ReadFile(dir_ / "out/web.qcow2") == "theirs") << "the file made meanwhile was replaced";
  EXPECT_EQ(OutNames().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Destinations, ImageFormatTest, ::testing::Values(TargetType::kStore, TargetType::kDir),
                         [](const ::testing::TestParamInfo<TargetType>& info) {
                           return std::string(info.param == TargetType::kStore ? "Store" : "Dir");
                         });

}  // namespace
}  // namespace vmback
