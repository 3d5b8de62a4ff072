// The built-in store as a Destination (its operations are those of
// run/backup.h, restore.h, verify.h and prune.h), and OpenDestination, which
// opens whichever destination a config's [target] names.
#pragma once

#include <memory>

#include "config/config.h"
#include "destination/destination.h"
#include "os/env.h"
#include "scan/exclude_filter.h"
#include "util/log.h"

namespace vmback {

// Opens the destination target names: the store (type "store"; target.path
// with target.mirrors, locked as access says, waiting up to
// lock_wait_seconds for the lock) or an in-place target (zfs, btrfs, dir;
// opened and checked). Opened for kBackup, a store with several copies has
// them brought in line before anything else is done. Throws as Store::Open
// and OpenInplaceTarget do (kNotFound, kLocked, kConfig, ...), before any
// VM is touched when called first. excludes: what each volume's tree
// leaves out in Backup (by volume name; scan/exclude_filter.h), kept by the
// destination: the Destination interface's Backup takes no excludes.
std::unique_ptr<Destination> OpenDestination(Env* env, const TargetConfig& target, DestinationAccess access,
                                             double lock_wait_seconds, Logger* log, BackupExcludes excludes = {});

}  // namespace vmback
