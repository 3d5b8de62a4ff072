// Waiting on descriptors a library owns (libs3's curl sockets): select(2)
// behind the OS seam.
#pragma once

#include <sys/select.h>

#include <chrono>

namespace vmback {

// Waits until a descriptor in the sets is ready or timeout passes (the sets
// are left as select(2) leaves them). With nfds 0 it only waits. EINTR
// returns early (callers loop); any other failure throws (kIo, naming what).
void WaitForDescriptors(int nfds, fd_set* read, fd_set* write, fd_set* except, std::chrono::milliseconds timeout,
                        const char* what);

}  // namespace vmback
