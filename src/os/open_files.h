// The process's limit on open descriptors.
#pragma once

namespace vmback {

// Raises this process's soft limit on open descriptors (RLIMIT_NOFILE) to
// its hard limit. The walks hold a directory descriptor per level of a tree
// (the source's, the destination's, a read-ahead's), so under the soft
// limit most systems start processes with (1,024) a tree some 200 levels
// deep, which any local user can make, could not be backed up. Descriptors
// are never watched with select(2) beyond FD_SETSIZE: libcurl, behind libs3,
// leaves such sockets out of its sets and is then woken by its timeout.
// Programs vmback runs inherit the raised limit. Does nothing when the
// limit cannot be read or raised.
void RaiseOpenFileLimit();

}  // namespace vmback
