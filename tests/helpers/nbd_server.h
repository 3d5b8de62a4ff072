// An NBD server for tests (qemu-nbd, or a hostile one): started with its
// output to a log file, ready once its unix socket listens, and stopped by
// its pid (SIGTERM, then SIGKILL). A socket file is there from bind(), before
// listen(): a client that connects then is refused, so readiness is the
// socket's listening flag in /proc/net/unix, which needs no probe connection
// (qemu-nbd without --persistent would take a probe as its one client).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vmback {
namespace test {

class NbdServer {
 public:
  NbdServer(std::vector<std::string> argv, const std::string& socket, const std::string& log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = -1;
    for (int i = 0; i < 1000 && pid_ > 0; i++) {
      if (Listening(socket)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~NbdServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; i++) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool started() const { return pid_ > 0; }

  // Whether a socket bound to PATH is listening: /proc/net/unix lines are
  // "Num RefCount Protocol Flags Type St Inode Path", Flags 00010000 being
  // __SO_ACCEPTCON (listen() was called).
  static bool Listening(const std::string& path) {
    std::ifstream in("/proc/net/unix");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string num, refs, protocol, flags, type, state, inode, bound;
      if (!(fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> bound)) continue;
      if (bound == path && flags == "00010000") return true;
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace test
}  // namespace vmback
