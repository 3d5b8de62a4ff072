#include "helpers/fault_env.h"

#include "util/error.h"

namespace vmback {
namespace {

class FaultReadableFile final : public ReadableFileWrapper {
 public:
  FaultReadableFile(FaultEnv* env, std::unique_ptr<ReadableFile> base)
      : ReadableFileWrapper(std::move(base)), env_(env) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    env_->BeforeRead("read " + path());
    return target()->ReadAt(offset, buf, n);
  }

 private:
  FaultEnv* env_;
};

// A source directory whose files read through FaultReadableFile, and so do
// those of the directories opened from it.
class FaultReadableDir final : public ReadableDirWrapper {
 public:
  FaultReadableDir(FaultEnv* env, std::unique_ptr<ReadableDir> base)
      : ReadableDirWrapper(std::move(base)), env_(env) {}
  std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
    return std::make_unique<FaultReadableDir>(env_, target()->OpenDir(name));
  }
  std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override {
    return std::make_unique<FaultReadableFile>(env_, target()->OpenRead(name));
  }

 private:
  FaultEnv* env_;
};

class FaultWritableFile final : public WritableFileWrapper {
 public:
  FaultWritableFile(FaultEnv* env, std::unique_ptr<WritableFile> base)
      : WritableFileWrapper(std::move(base)), env_(env) {}
  void Append(const void* data, size_t n) override {
    // A short write: half the bytes reach the disk, then the error.
    if (env_->ShortWriteDue() && n > 1) target()->Append(data, n / 2);
    env_->BeforeWrite("write " + path());
    target()->Append(data, n);
  }
  void WriteAt(uint64_t offset, const void* data, size_t n) override {
    if (env_->ShortWriteDue() && n > 1) target()->WriteAt(offset, data, n / 2);
    env_->BeforeWrite("write " + path());
    target()->WriteAt(offset, data, n);
  }
  void Truncate(uint64_t size) override {
    env_->BeforeWrite("truncate " + path());
    target()->Truncate(size);
  }
  void Sync() override {
    env_->BeforeWrite("fsync " + path());
    target()->Sync();
  }
  bool PunchHole(uint64_t offset, uint64_t len) override {
    env_->BeforeWrite("punch a hole in " + path());
    return target()->PunchHole(offset, len);
  }
  void Close() override {
    env_->BeforeWrite("close " + path());
    target()->Close();
  }
  // Metadata steps, as FaultEnv's of the same names.
  bool SetOwner(uid_t uid, gid_t gid) override {
    env_->BeforeMetadata("chown " + path());
    return target()->SetOwner(uid, gid);
  }
  void SetMode(mode_t mode) override {
    env_->BeforeMetadata("chmod " + path());
    target()->SetMode(mode);
  }
  void SetXattr(const std::string& name, const std::string& value) override {
    env_->BeforeMetadata("set xattr " + name + " on " + path());
    target()->SetXattr(name, value);
  }
  void RemoveXattr(const std::string& name) override {
    env_->BeforeMetadata("remove xattr " + name + " from " + path());
    target()->RemoveXattr(name);
  }
  void SetMtime(int64_t mtime_ns) override {
    env_->BeforeMetadata("set times of " + path());
    target()->SetMtime(mtime_ns);
  }

 private:
  FaultEnv* env_;
};

}  // namespace

bool FaultEnv::ShortWriteDue() const {
  return !crashed_ && plan_.fail_write_at > 0 && plan_.write_errno != 0 &&
         writes_.load() + 1 == plan_.fail_write_at;
}

void FaultEnv::BeforeWrite(const std::string& what) {
  if (crashed_) throw Error(ErrorKind::kCrash, "simulated crash: " + what + " after the crash");
  int64_t n = ++writes_;
  if (plan_.fail_write_at <= 0) return;
  bool due = n == plan_.fail_write_at || (plan_.fail_every_write_after && n > plan_.fail_write_at);
  if (!due) return;
  if (plan_.write_errno == 0) {
    crashed_ = true;
    throw Error(ErrorKind::kCrash, "simulated crash at write step " + std::to_string(n) + ": " + what);
  }
  ThrowIo(what + " (injected)", plan_.write_errno);
}

void FaultEnv::BeforeRead(const std::string& what) {
  int64_t n = ++reads_;
  if (plan_.fail_read_at > 0 && n == plan_.fail_read_at) ThrowIo(what + " (injected)", plan_.read_errno);
}

void FaultEnv::BeforeMetadata(const std::string& what) {
  int64_t n = ++metadata_;
  if (plan_.fail_metadata_at > 0 && n == plan_.fail_metadata_at)
    ThrowIo(what + " (injected)", plan_.metadata_errno);
}

std::unique_ptr<ReadableFile> FaultEnv::OpenRead(const std::string& path) {
  return std::make_unique<FaultReadableFile>(this, target()->OpenRead(path));
}

std::unique_ptr<ReadableDir> FaultEnv::OpenDirectory(const std::string& path) {
  return std::make_unique<FaultReadableDir>(this, target()->OpenDirectory(path));
}

std::unique_ptr<WritableFile> FaultEnv::OpenWrite(const std::string& path, CreateMode mode,
                                                  mode_t perm) {
  BeforeWrite("create " + path);
  return std::make_unique<FaultWritableFile>(this, target()->OpenWrite(path, mode, perm));
}

void FaultEnv::Rename(const std::string& from, const std::string& to) {
  BeforeWrite("rename " + from);
  target()->Rename(from, to);
}
void FaultEnv::Remove(const std::string& path) {
  BeforeWrite("remove " + path);
  target()->Remove(path);
}
void FaultEnv::MakeDir(const std::string& path) {
  BeforeWrite("mkdir " + path);
  target()->MakeDir(path);
}
void FaultEnv::SyncDir(const std::string& path) {
  BeforeWrite("fsync " + path);
  target()->SyncDir(path);
}

void FaultEnv::MakeNewDir(const std::string& path) {
  BeforeWrite("mkdir " + path);
  target()->MakeNewDir(path);
}
void FaultEnv::Symlink(const std::string& target, const std::string& path) {
  BeforeWrite("create symlink " + path);
  EnvWrapper::Symlink(target, path);
}
void FaultEnv::Link(const std::string& existing, const std::string& path) {
  BeforeWrite("link " + path);
  target()->Link(existing, path);
}
void FaultEnv::MakeNode(const std::string& path, mode_t type, dev_t rdev) {
  BeforeWrite("mknod " + path);
  target()->MakeNode(path, type, rdev);
}
void FaultEnv::RemoveDir(const std::string& path) {
  BeforeWrite("remove directory " + path);
  target()->RemoveDir(path);
}
void FaultEnv::SyncFileSystem(const std::string& path) {
  BeforeWrite("syncfs " + path);
  target()->SyncFileSystem(path);
}
int FaultEnv::CloneFile(const std::string& from, const std::string& to,
                        const std::function<void()>& between_ranges) {
  BeforeWrite("clone " + from + " to " + to);
  return target()->CloneFile(from, to, between_ranges);
}
void FaultEnv::SetMode(const std::string& path, mode_t mode) {
  BeforeMetadata("chmod " + path);
  target()->SetMode(path, mode);
}
void FaultEnv::SetModeNoFollow(const std::string& path, mode_t mode) {
  BeforeMetadata("chmod " + path);
  target()->SetModeNoFollow(path, mode);
}
void FaultEnv::SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  BeforeMetadata("set xattr " + name + " on " + path);
  target()->SetXattr(path, name, value);
}
void FaultEnv::RemoveXattr(const std::string& path, const std::string& name) {
  BeforeMetadata("remove xattr " + name + " from " + path);
  target()->RemoveXattr(path, name);
}
bool FaultEnv::SetOwner(const std::string& path, uid_t uid, gid_t gid) {
  BeforeMetadata("chown " + path);
  return target()->SetOwner(path, uid, gid);
}
void FaultEnv::SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) {
  BeforeMetadata("set times of " + path);
  target()->SetTimes(path, atime_ns, mtime_ns);
}

}  // namespace vmback
