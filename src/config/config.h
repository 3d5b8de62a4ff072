// The TOML configuration: which sources to back up, into which target.
//
//   [target]
//   type = "store"            # the built-in store (zfs, btrfs: later)
//   path = "/mnt/backup/vmback"
//
//   [[volume]]
//   name = "images"           # unique; names the volume inside each point
//   source = "/var/lib/libvirt/images"   # a directory, image file or block device
//   one_file_system = true    # trees: do not cross mount points (rsync -x)
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vmback {

struct VolumeConfig {
  std::string name;
  std::string source;
  bool one_file_system = true;
  int line = 0;  // where it was declared, for error messages
};

struct TargetConfig {
  std::string type = "store";
  std::string path;
};

struct Config {
  std::string file;  // the file it was read from
  TargetConfig target;
  std::vector<VolumeConfig> volumes;
};

// Throws Error(kConfig) with "FILE:LINE: message" for malformed TOML, unknown
// keys or tables, wrong value types, missing or duplicate names. Relative
// paths are taken relative to the config file's directory.
Config LoadConfig(const std::string& path);
Config ParseConfig(std::string_view text, const std::string& file_name);

// A volume name must be usable as one path component: non-empty, no '/',
// not "." or "..", no control characters, valid UTF-8.
bool IsValidVolumeName(std::string_view name);

}  // namespace vmback
