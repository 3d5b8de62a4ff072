#include "os/fd_wait.h"

#include <cerrno>
#include <string>

#include "util/error.h"

namespace vmback {

void WaitForDescriptors(int nfds, fd_set* read, fd_set* write, fd_set* except, std::chrono::milliseconds timeout,
                        const char* what) {
  if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
  struct timeval tv;
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  if (::select(nfds, read, write, except, &tv) < 0 && errno != EINTR) {
    ThrowIo(std::string("select (") + what + ")", errno);
  }
}

}  // namespace vmback
