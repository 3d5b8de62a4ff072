#include "os/open_files.h"

#include <sys/resource.h>

#include <algorithm>

namespace vmback {

void RaiseOpenFileLimit() {
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = lim.rlim_max == RLIM_INFINITY ? kOpenFileLimit : std::min<rlim_t>(lim.rlim_max, kOpenFileLimit);
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = want;
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

unsigned long OpenFileLimit() {
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  return lim.rlim_cur == RLIM_INFINITY ? kOpenFileLimit : static_cast<unsigned long>(lim.rlim_cur);
}

}  // namespace vmback
