// Reading VM disks from their pull-mode backup exports in place of their
// files. A volume with snapshot = "libvirt" is read where it is, but the
// disk of each running VM on it is read over NBD (NbdDisk): the guest-
// visible bytes as they were when the backup began, not the image file that
// the guest goes on writing. DiskExportEnv is the Env the volume's reader is
// given: it serves the paths of those disks from their exports and passes
// everything else on.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "os/env.h"
#include "source/nbd_disk.h"

namespace vmback {

class DiskExportEnv : public EnvWrapper {
 public:
  explicit DiskExportEnv(Env* target) : EnvWrapper(target) {}

  // From now on path (as the volume's reader names it: the volume's source,
  // or a file below it) is read from disk. Replaces an earlier export of it.
  void Add(const std::string& path, std::shared_ptr<NbdDisk> disk);
  // path is read from its file again. (Not Remove: that name is Env's,
  // and this Env passes file removals on to its target.)
  void DropExport(const std::string& path);
  // The export serving path, or null.
  std::shared_ptr<NbdDisk> Find(const std::string& path) const;

  // The file's status, with the export's size (the disk as the guest sees
  // it, not the size of its qcow2 file) for an exported regular file.
  FileStatus Status(const std::string& path) override;
  FileStatus StatusFollowingLinks(const std::string& path) override;
  // The export for an exported path; its file otherwise.
  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override;
  // A walk of the volume sees the exports as Status and OpenRead do.
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override;
  // An export has no extents to map: Error(kOther) naming it.
  std::vector<FileExtent> Extents(const std::string& path, size_t max_extents) override;

 private:
  FileStatus WithExportSize(const std::string& path, FileStatus st) const;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<NbdDisk>> exports_;
};

}  // namespace vmback
