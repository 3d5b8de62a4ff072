#include "job/mount.h"

#include <chrono>
#include <vector>

#include "os/subprocess.h"
#include "util/error.h"

namespace vmback {

namespace {
// fsck of a large file system may take a while; only a hang reaches this.
constexpr std::chrono::hours kFsckTimeout{2};
}  // namespace

RunLimits Cancellable(const std::atomic<bool>* cancel) {
  RunLimits l;
  l.cancel = cancel;
  return l;
}

std::string ProbeFsType(Env* env, const std::string& device, const std::atomic<bool>* cancel) {
  std::vector<std::string> argv = {"blkid", "-p", "-o", "value", "-s", "TYPE", "--", device};
  RunResult r = env->RunLimited(argv, Cancellable(cancel));
  std::string type = r.out;
  while (!type.empty() && (type.back() == '\n' || type.back() == ' ')) type.pop_back();
  if (r.exit_code != 0) return "";
  for (char c : type)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
      throw Error(ErrorKind::kIo, "blkid names a file system type '" + type + "' on " + device +
                                      " that vmback does not mount");
  return type;
}

Mount::~Mount() {
  try {
    Unmount();
  } catch (const std::exception& e) {
    log_->Error(e.what());
  }
}

void Mount::Record(const char* op) {
  if (journal_) journal_->Record({{"op", op}, {"dir", dir_}});
}

void Mount::Make(const std::string& device, const std::atomic<bool>* cancel) {
  // fsck takes no "--" (to it, that means "options for the checker").
  if (device.empty() || device[0] != '/')
    throw Error(ErrorKind::kOther, "refusing to check and mount '" + device + "': not an absolute path");
  std::string type = ProbeFsType(env_, device, cancel);
  if (type.empty())
    throw Error(ErrorKind::kIo, "blkid finds no file system on the snapshot " + device +
                                    " (mode = \"filesystem\")");
  RunLimits fsck_limits = Cancellable(cancel);
  fsck_limits.deadline = std::chrono::steady_clock::now() + kFsckTimeout;
  std::vector<std::string> fsck = {"fsck", "-p", "-t", type, device};
  RunResult r = env_->RunLimited(fsck, fsck_limits);
  if (r.exit_code != 0 && r.exit_code != 1) throw Error(ErrorKind::kIo, DescribeFailure(fsck, r));
  env_->MakeDir(dir_);
  Record("mount");
  std::string options = "ro,nosuid,nodev,noexec";
  if (type == "xfs") options += ",nouuid";
  std::vector<std::string> mount = {"mount", "-t", type, "-o", options, "--", device, dir_};
  mounted_ = true;  // until known otherwise: killed, it may have mounted
  r = env_->RunLimited(mount, Cancellable(cancel));
  if (r.exit_code != 0) {
    mounted_ = false;
    Record("unmounted");
    throw Error(ErrorKind::kIo, DescribeFailure(mount, r));
  }
}

void Mount::Unmount() {
  if (!mounted_) return;
  std::vector<std::string> argv = {"umount", "--", dir_};
  RunResult r;
  for (int i = 0; i < 5; i++) {
    r = env_->Run(argv);
    if (r.exit_code == 0 || r.err.find("not mounted") != std::string::npos) break;
    env_->clock()->SleepFor(std::chrono::milliseconds(200));
  }
  if (r.exit_code != 0 && r.err.find("not mounted") == std::string::npos)
    throw Error(ErrorKind::kIo, DescribeFailure(argv, r));
  mounted_ = false;
  Record("unmounted");
}

}  // namespace vmback
