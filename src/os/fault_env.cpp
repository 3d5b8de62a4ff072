#include "os/fault_env.h"

#include "util/error.h"

namespace vmback {
namespace {

class FaultReadableFile final : public ReadableFile {
 public:
  FaultReadableFile(FaultEnv* env, std::unique_ptr<ReadableFile> base)
      : env_(env), base_(std::move(base)) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    env_->BeforeRead("read " + base_->path());
    return base_->ReadAt(offset, buf, n);
  }
  uint64_t Size() override { return base_->Size(); }
  uint64_t NextData(uint64_t o) override { return base_->NextData(o); }
  uint64_t NextHole(uint64_t o) override { return base_->NextHole(o); }
  void DropCache(uint64_t o, uint64_t l) override { base_->DropCache(o, l); }
  void DisableReadahead() override { base_->DisableReadahead(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<ReadableFile> base_;
};

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultEnv* env, std::unique_ptr<WritableFile> base)
      : env_(env), base_(std::move(base)) {}
  void Append(const void* data, size_t n) override {
    // A short write: half the bytes reach the disk, then the error.
    if (env_->ShortWriteDue() && n > 1) base_->Append(data, n / 2);
    env_->BeforeWrite("write " + path());
    base_->Append(data, n);
  }
  void WriteAt(uint64_t offset, const void* data, size_t n) override {
    if (env_->ShortWriteDue() && n > 1) base_->WriteAt(offset, data, n / 2);
    env_->BeforeWrite("write " + path());
    base_->WriteAt(offset, data, n);
  }
  void Truncate(uint64_t size) override {
    env_->BeforeWrite("truncate " + path());
    base_->Truncate(size);
  }
  void Sync() override {
    env_->BeforeWrite("fsync " + path());
    base_->Sync();
  }
  void Close() override {
    env_->BeforeWrite("close " + path());
    base_->Close();
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<WritableFile> base_;
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
  return std::make_unique<FaultReadableFile>(this, base_->OpenRead(path));
}

std::unique_ptr<WritableFile> FaultEnv::OpenWrite(const std::string& path, CreateMode mode,
                                                  mode_t perm) {
  BeforeWrite("create " + path);
  return std::make_unique<FaultWritableFile>(this, base_->OpenWrite(path, mode, perm));
}

void FaultEnv::Rename(const std::string& from, const std::string& to) {
  BeforeWrite("rename " + from);
  base_->Rename(from, to);
}
void FaultEnv::Remove(const std::string& path) {
  BeforeWrite("remove " + path);
  base_->Remove(path);
}
void FaultEnv::MakeDir(const std::string& path) {
  BeforeWrite("mkdir " + path);
  base_->MakeDir(path);
}
void FaultEnv::SyncDir(const std::string& path) {
  BeforeWrite("fsync " + path);
  base_->SyncDir(path);
}

void FaultEnv::MakeNewDir(const std::string& path) {
  BeforeWrite("mkdir " + path);
  base_->MakeNewDir(path);
}
void FaultEnv::Symlink(const std::string& target, const std::string& path) {
  BeforeWrite("create symlink " + path);
  base_->Symlink(target, path);
}
void FaultEnv::Link(const std::string& existing, const std::string& path) {
  BeforeWrite("link " + path);
  base_->Link(existing, path);
}
int FaultEnv::CloneFile(const std::string& from, const std::string& to,
                        const std::function<void()>& between_ranges) {
  BeforeWrite("clone " + from + " to " + to);
  return base_->CloneFile(from, to, between_ranges);
}
void FaultEnv::SetMode(const std::string& path, mode_t mode) {
  BeforeMetadata("chmod " + path);
  base_->SetMode(path, mode);
}
bool FaultEnv::SetOwner(const std::string& path, uid_t uid, gid_t gid) {
  BeforeMetadata("chown " + path);
  return base_->SetOwner(path, uid, gid);
}
void FaultEnv::SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) {
  BeforeMetadata("set times of " + path);
  base_->SetTimes(path, atime_ns, mtime_ns);
}

}  // namespace vmback
