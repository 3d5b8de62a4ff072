// A real file system on a loop device for tests (XFS with reflink, btrfs,
// ext4, tmpfs), always detached and unmounted again.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "os/subprocess.h"

namespace vmback::test {

// A fresh file system of 512 MiB on a loop device, mounted in a temp dir.
// Unmount() is safe to call in any state and is called from TearDown, so a
// failing test never leaves a mount or a loop device behind.
class LoopFs {
 public:
  // Returns why it could not be made ("" when mounted).
  std::string Mount(const std::string& type) {
    if (::geteuid() != 0) return "needs root";
    std::string img = tmp_ / "fs.img";
    mnt_ = tmp_ / "mnt";
    if (::mkdir(mnt_.c_str(), 0755) != 0) return "mkdir " + mnt_;
    std::vector<std::string> argv = {"truncate", "-s", "512M", img};
    RunResult r = Exec(argv);
    if (r.exit_code != 0) return DescribeFailure(argv, r);
    if (type == "xfs")
      argv = {"mkfs.xfs", "-q", "-m", "reflink=1", img};
    else
      argv = {"mkfs." + type, "-q", img};
    r = Exec(argv);
    if (r.exit_code != 0) return DescribeFailure(argv, r);
    argv = {"losetup", "-f", "--show", img};
    r = Exec(argv);
    if (r.exit_code != 0) return DescribeFailure(argv, r);
    loop_ = r.out;
    while (!loop_.empty() && (loop_.back() == '\n' || loop_.back() == ' ')) loop_.pop_back();
    argv = {"mount", "-t", type, loop_, mnt_};
    r = Exec(argv);
    if (r.exit_code != 0) return DescribeFailure(argv, r);
    mounted_ = true;
    return "";
  }
  std::string MountTmpfs() {
    if (::geteuid() != 0) return "needs root";
    mnt_ = tmp_ / "mnt";
    if (::mkdir(mnt_.c_str(), 0755) != 0) return "mkdir " + mnt_;
    std::vector<std::string> argv = {"mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", mnt_};
    RunResult r = Exec(argv);
    if (r.exit_code != 0) return DescribeFailure(argv, r);
    mounted_ = true;
    return "";
  }
  void Unmount() {
    if (mounted_) {
      if (Exec({"umount", mnt_}).exit_code != 0) {
        RunResult r = Exec({"umount", "-l", mnt_});
        EXPECT_EQ(r.exit_code, 0) << DescribeFailure({"umount", "-l", mnt_}, r);
      }
      mounted_ = false;
    }
    if (!loop_.empty()) {
      RunResult r = Exec({"losetup", "-d", loop_});
      EXPECT_EQ(r.exit_code, 0) << DescribeFailure({"losetup", "-d", loop_}, r);
      loop_.clear();
    }
  }
  std::string operator/(const std::string& name) const { return mnt_ + "/" + name; }
  const std::string& mnt() const { return mnt_; }

 private:
  TempDir tmp_;
  std::string mnt_, loop_;
  bool mounted_ = false;
};

}  // namespace vmback::test
