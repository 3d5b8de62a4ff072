#include "source/disk_exports.h"

#include <sys/stat.h>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// A reader of a shared export (several files may be open on one disk; the
// NbdDisk serves them in turn).
class ExportFile : public ReadableFile {
 public:
  explicit ExportFile(std::shared_ptr<NbdDisk> disk) : disk_(std::move(disk)) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override { return disk_->ReadAt(offset, buf, n); }
  uint64_t Size() override { return disk_->Size(); }
  uint64_t NextData(uint64_t offset) override { return disk_->NextData(offset); }
  uint64_t NextHole(uint64_t offset) override { return disk_->NextHole(offset); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return disk_->path(); }

 private:
  std::shared_ptr<NbdDisk> disk_;
};

// Paths compared as the reader builds them (JoinPath of the source and the
// names below it): without trailing slashes.
std::string Key(const std::string& path) {
  std::string k = path;
  while (k.size() > 1 && k.back() == '/') k.pop_back();
  return k;
}

}  // namespace

void DiskExportEnv::Add(const std::string& path, std::shared_ptr<NbdDisk> disk) {
  std::lock_guard<std::mutex> lock(mu_);
  exports_[Key(path)] = std::move(disk);
}

void DiskExportEnv::DropExport(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  exports_.erase(Key(path));
}

std::shared_ptr<NbdDisk> DiskExportEnv::Find(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = exports_.find(Key(path));
  return it == exports_.end() ? nullptr : it->second;
}

FileStatus DiskExportEnv::WithExportSize(const std::string& path, FileStatus st) const {
  if (st.kind != FileKind::kFile) return st;
  if (std::shared_ptr<NbdDisk> disk = Find(path)) st.size = disk->Size();
  return st;
}

FileStatus DiskExportEnv::Status(const std::string& path) {
  return WithExportSize(path, EnvWrapper::Status(path));
}

FileStatus DiskExportEnv::StatusFollowingLinks(const std::string& path) {
  return WithExportSize(path, EnvWrapper::StatusFollowingLinks(path));
}

std::unique_ptr<ReadableFile> DiskExportEnv::OpenRead(const std::string& path) {
  if (std::shared_ptr<NbdDisk> disk = Find(path)) return std::make_unique<ExportFile>(std::move(disk));
  return EnvWrapper::OpenRead(path);
}

namespace {

// A directory of the volume opened for the walk: its exported children are
// stat'ed with the export's size and read from the export, as through
// DiskExportEnv's own Status and OpenRead; the directories below likewise.
class ExportingDir final : public ReadableDirWrapper {
 public:
  ExportingDir(DiskExportEnv* env, std::unique_ptr<ReadableDir> target)
      : ReadableDirWrapper(std::move(target)), env_(env) {}

  FileStatus Status(const std::string& name) override {
    const std::string path = ChildPath(name);
    FileStatus st = target()->Status(name);
    if (st.kind == FileKind::kFile)
      if (std::shared_ptr<NbdDisk> disk = env_->Find(path)) st.size = disk->Size();
    return st;
  }
  std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override {
    if (std::shared_ptr<NbdDisk> disk = env_->Find(ChildPath(name))) return std::make_unique<ExportFile>(std::move(disk));
    return target()->OpenRead(name);
  }
  std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
    return std::make_unique<ExportingDir>(env_, target()->OpenDir(name));
  }

 private:
  DiskExportEnv* env_;
};

}  // namespace

std::unique_ptr<ReadableDir> DiskExportEnv::OpenDirectory(const std::string& path) {
  return std::make_unique<ExportingDir>(this, EnvWrapper::OpenDirectory(path));
}

std::vector<FileExtent> DiskExportEnv::Extents(const std::string& path, size_t max_extents) {
  if (std::shared_ptr<NbdDisk> disk = Find(path))
    throw Error(ErrorKind::kOther, path + " is read from " + disk->path() + ", which has no extent map");
  return EnvWrapper::Extents(path, max_extents);
}

}  // namespace vmback
