#include "os/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
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

namespace {

// A pipe whose ends are closed on exec; throws naming what it is for.
void MakePipe(int fds[2], const std::string& what) {
  if (::pipe2(fds, O_CLOEXEC) != 0) ThrowIo("pipe for " + what, errno);
}

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// Starts argv with stdin from in_fd (or /dev/null when -1), stdout and
// stderr to out_fd and err_fd, in process group pgid (0: its own, led by
// it), default signal dispositions, nothing blocked. Throws naming the
// program when it cannot be started.
pid_t Spawn(const std::vector<std::string>& argv, int in_fd, int out_fd, int err_fd, pid_t pgid) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in_fd < 0) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  else posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group (a signal to ours does not reach it; it is killed
  // as a group), default dispositions and no blocked signals, whatever ours.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, pgid);
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
  if (rc != 0) {
    if (rc == ENOENT && argv[0].find('/') == std::string::npos)
      throw Error(ErrorKind::kNotFound, NotInstalledMessage(argv[0]));
    ThrowIo("run " + argv[0], rc);
  }
  return pid;
}

// Checks what a command is about to be started under.
void CheckStart(const std::vector<std::string>& argv, const std::atomic<bool>* cancel, Steady::time_point start,
                Steady::time_point deadline) {
  if (argv.empty()) throw Error(ErrorKind::kOther, "RunSubprocess: empty argv");
  if (cancel && cancel->load())
    throw Error(ErrorKind::kOther, CommandLine(argv) + " not started: interrupted by a signal");
  if (start >= deadline)
    throw Error(ErrorKind::kOther, CommandLine(argv) + " not started: its deadline has passed");
}

std::string TrimEnd(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

void SetExit(int status, RunResult* r) {
  if (WIFEXITED(status)) r->exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r->signal = WTERMSIG(status);
}

// Why a command was stopped before its end.
enum class Stop { kNone, kDeadline, kCancel, kStall, kConsumerGone, kOverflow };

// kCancel when *cancel is set, kDeadline when it is reached, else kNone.
Stop LimitReached(const std::atomic<bool>* cancel, Steady::time_point now, Steady::time_point deadline) {
  if (cancel && cancel->load()) return Stop::kCancel;
  return now >= deadline ? Stop::kDeadline : Stop::kNone;
}

// Reads what is there on fd into sink; false (fd closed and set to -1) at
// its end or on an error other than EINTR/EAGAIN.
bool Drain(int* fd, std::string* sink) {
  char buf[65536];
  ssize_t got = ::read(*fd, buf, sizeof buf);
  if (got > 0) {
    sink->append(buf, static_cast<size_t>(got));
    return true;
  }
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  CloseFd(fd);
  return false;
}

}  // namespace

RunResult RunSubprocess(const std::vector<std::string>& argv, const RunLimits& limits) {
  const auto start = Steady::now();
  const auto deadline = limits.deadline ? *limits.deadline : start + kDefaultCommandTimeout;
  CheckStart(argv, limits.cancel, start, deadline);
  int out[2], err[2];
  MakePipe(out, argv[0]);
  try {
    MakePipe(err, argv[0]);
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  pid_t pid;
  try {
    pid = Spawn(argv, -1, out[1], err[1], 0);
  } catch (...) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    throw;
  }
  ::close(out[1]);
  ::close(err[1]);

  RunResult result;
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  int status = 0;
  Stop stop = Stop::kNone;
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
    if ((stop = LimitReached(limits.cancel, now, deadline)) != Stop::kNone) break;
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
      if (!Drain(&fds[i].fd, sinks[i])) open_fds--;
    }
    if (result.out.size() > kMaxCommandOutput || result.err.size() > kMaxCommandOutput) {
      stop = Stop::kOverflow;
      break;
    }
  }
  for (auto& f : fds) CloseFd(&f.fd);
  if (stop != Stop::kNone) {
    bool reaped = KillGroupAndReap(pid, &status);
    std::string why = stop == Stop::kDeadline ? "did not finish within " + FormatSeconds(deadline - start) + " s"
                      : stop == Stop::kOverflow
                          ? "printed more than " + std::to_string(kMaxCommandOutput >> 20) + " MiB"
                          : "was interrupted by a signal after " + FormatSeconds(Steady::now() - start) + " s";
    std::string msg = CommandLine(argv) + " " + why + ": killed its process group " + std::to_string(pid);
    if (!reaped) msg += " (it did not exit: stuck in the kernel?)";
    std::string errtext = TrimEnd(result.err.substr(0, 4096));
    if (!errtext.empty()) msg += "; it said: " + errtext;
    throw Error(ErrorKind::kOther, msg);
  }
  SetExit(status, &result);
  return result;
}

PipeResult RunPipeSubprocesses(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                               const PipeLimits& limits) {
  const auto start = Steady::now();
  const auto deadline = limits.deadline ? *limits.deadline : Steady::time_point::max();
  CheckStart(producer, limits.cancel, start, deadline);
  CheckStart(consumer, limits.cancel, start, deadline);
  // from: the producer's stdout; to: the consumer's stdin; the rest each
  // one's stdout/stderr. The parent's ends are non-blocking.
  int from[2] = {-1, -1}, to[2] = {-1, -1}, perr[2] = {-1, -1}, cout[2] = {-1, -1}, cerr[2] = {-1, -1};
  pid_t pids[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {from, to, perr, cout, cerr}) {
      CloseFd(&p[0]);
      CloseFd(&p[1]);
    }
  };
  int status[2] = {0, 0};
  try {
    MakePipe(from, producer[0]);
    // A socket, not a pipe: written with MSG_NOSIGNAL, a consumer gone
    // early is an EPIPE here, never a SIGPIPE that would end vmback.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, to) != 0) ThrowIo("socketpair for " + consumer[0], errno);
    MakePipe(perr, producer[0]);
    MakePipe(cout, consumer[0]);
    MakePipe(cerr, consumer[0]);
    for (int fd : {from[0], to[1], perr[0], cout[0], cerr[0]}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
    pids[0] = Spawn(producer, -1, from[1], perr[1], 0);
    pids[1] = Spawn(consumer, to[0], cout[1], cerr[1], 0);
  } catch (...) {
    close_all();
    if (pids[0] > 0) KillGroupAndReap(pids[0], &status[0]);
    throw;
  }
  for (int* fd : {&from[1], &to[0], &perr[1], &cout[1], &cerr[1]}) CloseFd(fd);

  PipeResult result;
  std::string buffer;  // read from the producer, not yet written to the consumer
  size_t written = 0;  // of buffer
  constexpr size_t kBuffer = 1 << 20;
  bool exited[2] = {false, false};
  auto last_move = start;
  Stop stop = Stop::kNone;
  for (;;) {
    for (int i = 0; i < 2; i++)
      if (!exited[i] && ::waitpid(pids[i], &status[i], WNOHANG) == pids[i]) exited[i] = true;
    // The consumer gone before taking everything: the producer can never
    // finish (it would block, or die of SIGPIPE): end it.
    if (exited[1] && to[1] >= 0) {
      CloseFd(&to[1]);
      if (from[0] >= 0 || written < buffer.size()) stop = Stop::kConsumerGone;
    }
    if (stop == Stop::kConsumerGone) break;
    if (exited[0] && exited[1] && from[0] < 0 && perr[0] < 0 && cout[0] < 0 && cerr[0] < 0) break;
    const auto now = Steady::now();
    if ((stop = LimitReached(limits.cancel, now, deadline)) != Stop::kNone) break;
    if (now - last_move >= limits.stall && !(exited[0] && exited[1])) {
      stop = Stop::kStall;
      break;
    }
    // The producer at its end and everything written: the consumer's
    // input ends.
    if (from[0] < 0 && written == buffer.size()) CloseFd(&to[1]);
    struct pollfd fds[5] = {{from[0], static_cast<short>(buffer.size() - written < kBuffer ? POLLIN : 0), 0},
                            {to[1], static_cast<short>(written < buffer.size() ? POLLOUT : 0), 0},
                            {perr[0], POLLIN, 0},
                            {cout[0], POLLIN, 0},
                            {cerr[0], POLLIN, 0}};
    int n = ::poll(fds, 5, static_cast<int>(kCancelPoll.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowIo("poll the pipe " + producer[0] + " | " + consumer[0], errno);
    }
    if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (written == buffer.size()) {
        buffer.clear();
        written = 0;
      }
      const size_t before = buffer.size();
      Drain(&from[0], &buffer);  // closes from[0] at the producer's end
      if (buffer.size() > before) last_move = Steady::now();
    }
    if (fds[1].fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::send(to[1], buffer.data() + written, buffer.size() - written, MSG_NOSIGNAL);
      if (put > 0) {
        written += static_cast<size_t>(put);
        result.bytes += static_cast<uint64_t>(put);
        last_move = Steady::now();
      } else if (put < 0 && errno != EINTR && errno != EAGAIN) {
        CloseFd(&to[1]);  // EPIPE: the consumer closed its input
        if (from[0] >= 0 || written < buffer.size()) stop = Stop::kConsumerGone;
      }
    }
    if (stop == Stop::kConsumerGone) break;
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) Drain(&perr[0], &result.producer.err);
    if (fds[3].fd >= 0 && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) Drain(&cout[0], &result.consumer.out);
    if (fds[4].fd >= 0 && (fds[4].revents & (POLLIN | POLLHUP | POLLERR))) Drain(&cerr[0], &result.consumer.err);
    if (std::max({result.producer.err.size(), result.consumer.out.size(), result.consumer.err.size()}) >
        kMaxCommandOutput) {
      stop = Stop::kOverflow;
      break;
    }
    if (written > kBuffer && written == buffer.size()) {
      buffer.clear();
      written = 0;
    }
  }
  if (stop == Stop::kConsumerGone) {
    // Its last words may still be in the pipes: read them, for a bounded
    // while (a child of it may hold them open).
    const auto until = Steady::now() + kKillGrace;
    while ((cout[0] >= 0 || cerr[0] >= 0) && Steady::now() < until) {
      struct pollfd fds[2] = {{cout[0], POLLIN, 0}, {cerr[0], POLLIN, 0}};
      if (::poll(fds, 2, 20) <= 0) continue;
      if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) Drain(&cout[0], &result.consumer.out);
      if (fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) Drain(&cerr[0], &result.consumer.err);
      if (std::max(result.consumer.out.size(), result.consumer.err.size()) > kMaxCommandOutput) break;
    }
  }
  close_all();
  if (stop == Stop::kNone) {
    SetExit(status[0], &result.producer);
    SetExit(status[1], &result.consumer);
    return result;
  }
  for (int i = 0; i < 2; i++)
    if (!exited[i]) KillGroupAndReap(pids[i], &status[i]);
  const std::string pipe = CommandLine(producer) + " | " + CommandLine(consumer);
  if (stop == Stop::kConsumerGone) {
    // Not a limit: the consumer ended early (it refused the stream); its
    // exit and words are the result, the producer's end is moot.
    SetExit(status[1], &result.consumer);
    result.producer.exit_code = -1;
    return result;
  }
  std::string why = stop == Stop::kStall      ? "moved no byte for " + FormatSeconds(limits.stall) + " s"
                    : stop == Stop::kOverflow ? "printed more than " + std::to_string(kMaxCommandOutput >> 20) + " MiB"
                    : stop == Stop::kDeadline ? "did not finish within " + FormatSeconds(deadline - start) + " s"
                                              : "was interrupted by a signal after " +
                                                    FormatSeconds(Steady::now() - start) + " s";
  std::string msg = pipe + " " + why + " (" + std::to_string(result.bytes) + " bytes relayed): killed both";
  std::string said = TrimEnd(result.producer.err.substr(0, 4096) + result.consumer.err.substr(0, 4096));
  if (!said.empty()) msg += "; they said: " + said;
  throw Error(ErrorKind::kOther, msg);
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
