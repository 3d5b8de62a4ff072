#include "os/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <thread>
#include <utility>

#include "util/error.h"

extern char** environ;

namespace vmback {

namespace {

using Steady = std::chrono::steady_clock;

// After SIGKILL the leader normally goes at once; one stuck in the kernel
// (uninterruptible sleep on a hung device) is not waited for longer.
constexpr std::chrono::milliseconds kReapWait{500};

std::string FormatSeconds(Steady::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::chrono::duration<double>(d).count());
  return buf;
}

// True when pid has exited (left a zombie, not reaped: while it is one, its
// process group id cannot be reused, so signalling the group stays safe).
bool HasExited(pid_t pid) {
  siginfo_t info = {};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

// Kills the process group that pid leads (SIGTERM, kKillGrace, SIGKILL) and
// reaps pid. Returns false when pid would not die within kReapWait: then a
// detached thread reaps it whenever it does.
bool KillGroupAndReap(pid_t pid, int* status) {
  ::kill(-pid, SIGTERM);
  const auto grace_end = Steady::now() + kKillGrace;
  while (!HasExited(pid) && Steady::now() < grace_end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The leader may be gone while others of its group (a child it waited
  // for) are not: the group gets SIGKILL in any case.
  ::kill(-pid, SIGKILL);
  const auto reap_end = Steady::now() + kReapWait;
  for (;;) {
    pid_t w = ::waitpid(pid, status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) return true;
    if (Steady::now() >= reap_end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::thread([pid] {
    int s;
    while (::waitpid(pid, &s, 0) < 0 && errno == EINTR) {
    }
  }).detach();
  return false;
}

}  // namespace

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return cmd;
}

RunResult RunSubprocess(const std::vector<std::string>& argv, const RunLimits& limits) {
  if (argv.empty()) throw Error(ErrorKind::kOther, "RunSubprocess: empty argv");
  const auto start = Steady::now();
  const auto deadline = limits.deadline ? *limits.deadline : start + kDefaultCommandTimeout;
  if (limits.cancel && limits.cancel->load())
    throw Error(ErrorKind::kOther, CommandLine(argv) + " not started: interrupted by a signal");
  if (start >= deadline)
    throw Error(ErrorKind::kOther, CommandLine(argv) + " not started: its deadline has passed");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) ThrowIo("pipe", errno);
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    ThrowIo("pipe", e);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group (a signal to ours does not reach it; it is killed
  // as a group), default dispositions and no blocked signals, whatever ours.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    if (rc == ENOENT && argv[0].find('/') == std::string::npos)
      throw Error(ErrorKind::kNotFound, NotInstalledMessage(argv[0]));
    ThrowIo("run " + argv[0], rc);
  }

  RunResult result;
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  int status = 0;
  enum class Stop { kNone, kDeadline, kCancel } stop = Stop::kNone;
  // While the pipes are open, poll wakes on output; once both are closed,
  // the exit is looked for with a growing pause (the usual case: at once).
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (open_fds == 0) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) ThrowIo("wait for " + argv[0], errno);
    }
    const auto now = Steady::now();
    if (limits.cancel && limits.cancel->load()) {
      stop = Stop::kCancel;
      break;
    }
    if (now >= deadline) {
      stop = Stop::kDeadline;
      break;
    }
    auto wait = std::min<Steady::duration>(deadline - now, open_fds > 0 ? kCancelPoll : pause);
    int wait_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
    if (open_fds == 0) {
      std::this_thread::sleep_for(wait);
      pause = std::min(pause * 2, kCancelPoll);
      continue;
    }
    int n = ::poll(fds, 2, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;  // a signal: the cancel flag is looked at first
      ThrowIo("poll the output of " + argv[0], errno);
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  if (stop != Stop::kNone) {
    bool reaped = KillGroupAndReap(pid, &status);
    std::string why = stop == Stop::kDeadline
                          ? "did not finish within " + FormatSeconds(deadline - start) + " s"
                          : "was interrupted by a signal after " + FormatSeconds(Steady::now() - start) + " s";
    std::string msg = CommandLine(argv) + " " + why + ": killed its process group " + std::to_string(pid);
    if (!reaped) msg += " (it did not exit: stuck in the kernel?)";
    std::string errtext = result.err;
    while (!errtext.empty() && (errtext.back() == '\n' || errtext.back() == ' ')) errtext.pop_back();
    if (!errtext.empty()) msg += "; it said: " + errtext;
    throw Error(ErrorKind::kOther, msg);
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

bool OnPath(const std::string& program) {
  if (program.empty() || program.find('/') != std::string::npos) return false;
  const std::string path = EnvironmentValue("PATH");
  for (size_t at = 0; at <= path.size();) {
    size_t end = path.find(':', at);
    if (end == std::string::npos) end = path.size();
    const std::string dir = end == at ? "." : path.substr(at, end - at);
    const std::string file = dir + "/" + program;
    struct stat st;
    if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(file.c_str(), X_OK) == 0) return true;
    at = end + 1;
  }
  return false;
}

std::string NotInstalledMessage(const std::string& program) {
  // The Debian packages of the programs vmback runs.
  static const std::pair<const char*, const char*> kPackages[] = {
      {"lvm", "lvm2"},          {"blkid", "util-linux"},     {"fsck", "util-linux"},
      {"mount", "mount"},       {"umount", "mount"},         {"btrfs", "btrfs-progs"},
      {"zfs", "zfsutils-linux (or zfs-fuse)"}, {"zpool", "zfsutils-linux (or zfs-fuse)"},
      {"qemu-img", "qemu-utils"}, {"cp", "coreutils"},
  };
  std::string out = program + " is not installed (no " + program + " on PATH)";
  for (const auto& [name, package] : kPackages)
    if (program == name) return out + ": install " + package;
  return out;
}

std::string DescribeFailure(const std::vector<std::string>& argv, const RunResult& r) {
  std::string why = r.signal ? "killed by signal " + std::to_string(r.signal)
                             : "exit " + std::to_string(r.exit_code);
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  return CommandLine(argv) + " failed (" + why + ")" + (err.empty() ? "" : ": " + err);
}

}  // namespace vmback
