// The process's limit on open descriptors.
#pragma once

namespace vmback {

// At most this soft limit is asked for: a tree about 12,000 levels deep
// (three descriptors a level; the in-place sink keeps up to a quarter of
// the limit for maps awaiting completion).
// Programs vmback runs inherit it, and some close every descriptor up to
// the limit when they start (a hard limit of a million or more is common).
inline constexpr unsigned long kOpenFileLimit = 65536;

// Raises this process's soft limit on open descriptors (RLIMIT_NOFILE)
// towards its hard limit, to kOpenFileLimit at most. The walks hold a
// directory descriptor per level of a tree (the source's, the
// destination's, a read-ahead's), so under the soft limit most systems
// start processes with (1,024) a tree some 200 levels deep, which any
// local user can make, could not be backed up. Descriptors are never
// watched with select(2) beyond FD_SETSIZE: libcurl, behind libs3, leaves
// such sockets out of its sets and is then woken by its timeout. Does
// nothing when the limit cannot be read or raised, or is that high
// already.
void RaiseOpenFileLimit();

// The soft limit on open descriptors now (0 when it cannot be read;
// kOpenFileLimit when there is none).
unsigned long OpenFileLimit();

}  // namespace vmback
