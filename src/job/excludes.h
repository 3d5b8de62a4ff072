// Each volume's excludes as a config and a command line give them: the
// volume's `exclude` patterns and `exclude_caches`, the patterns of
// --exclude and --exclude-file (for every volume), and vmback's own paths
// (the store and its copies, a dir or btrfs target, the state directory)
// that lie below the volume's source, left out always. `vmback plan` lists
// them with DescribeConfigExcludes.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "scan/exclude_filter.h"

namespace vmback {

// A place vmback writes to, and what it is ("the store /srv/backup").
struct OwnLocation {
  std::string path;
  std::string what;
  bool name_prefix = false;  // path's last component is a name prefix (OwnPath::name_prefix)
};

// Where config has vmback write: target.path (the store, a dir or btrfs
// target), a btrfs target's points beside it (PARENT/<snapshot_prefix>*),
// the store's mirrors, run.state_dir. A zfs target's dataset is a
// file system of its own (one_file_system leaves it out of a walk).
std::vector<OwnLocation> OwnLocations(const Config& config);

// The excludes of a volume read from source: patterns (checked; throws
// Error(kConfig) naming the volume and the pattern), exclude_caches, and
// each of own that lies below source (both canonical: symlinks resolved).
// A file or device source has an own list of none.
VolumeExcludes ExcludesFor(const std::string& volume, const std::string& source,
                           const std::vector<std::string>& patterns, bool exclude_caches,
                           const std::vector<OwnLocation>& own);

// Every volume of config's, each with extra (the command line's patterns)
// after its own patterns.
BackupExcludes ExcludesOfConfig(const Config& config, const std::vector<std::string>& extra);

// What `vmback plan` shows of volume i's excludes: one line each
// (DescribeExcludes), none when it has none.
std::vector<std::string> DescribeConfigExcludes(const Config& config, size_t i);

}  // namespace vmback
