// A backup: sync a set of sources (directory trees, image files, block
// devices) into the store and commit them as one point.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "destination/backup_types.h"
#include "scan/exclude_filter.h"
#include "store/store.h"
#include "util/log.h"

namespace vmback {

// Reads every source, writes new blocks, flushes, then commits the manifest.
// A source root that cannot be read fails the whole backup before anything
// is committed; an unreadable entry inside a tree is logged, counted in
// errors and left out of the point.
// excludes: what each volume's tree leaves out, by volume name
// (scan/exclude_filter.h); a volume not in it has nothing left out.
// REQUIRES: store opened with LockMode::kExclusive.
BackupResult RunBackup(Store* store, const std::vector<VolumeSpec>& volumes,
                       const BackupOptions& options, Logger* log, const BackupExcludes& excludes = {});

// The newest point whose manifest holds a volume named `volume`: what
// `latest` means in a command that names a volume. Throws kNotFound when no
// point holds it. A damaged manifest is passed over.
std::string NewestPointWithVolume(Store* store, const std::string& volume);

}  // namespace vmback
