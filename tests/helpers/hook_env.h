// An Env that forwards every call to another and lets a test act at a known
// moment: before each OpenRead or ListDir, with the path (to fail it, or to
// change the disk under the code being tested, deterministically).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "os/env.h"

namespace vmback::test {

class HookEnv final : public Env {
 public:
  using Hook = std::function<void(const std::string& path)>;
  explicit HookEnv(Env* base = Env::Default()) : base_(base) {}

  Hook before_read;  // before each OpenRead; may throw
  Hook before_list;  // before each ListDir; may throw

  std::unique_ptr<ReadableFile> OpenRead(const std::string& p) override {
    if (before_read) before_read(p);
    return base_->OpenRead(p);
  }
  std::vector<std::string> ListDir(const std::string& p) override {
    if (before_list) before_list(p);
    return base_->ListDir(p);
  }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode m, mode_t perm) override {
    return base_->OpenWrite(p, m, perm);
  }
  void Rename(const std::string& a, const std::string& b) override { base_->Rename(a, b); }
  void Remove(const std::string& p) override { base_->Remove(p); }
  void MakeDir(const std::string& p) override { base_->MakeDir(p); }
  void SyncDir(const std::string& p) override { base_->SyncDir(p); }
  bool Exists(const std::string& p) override { return base_->Exists(p); }
  FileStatus Status(const std::string& p) override { return base_->Status(p); }
  void SetMode(const std::string& p, mode_t mode) override { base_->SetMode(p, mode); }
  std::unique_ptr<FileLock> Lock(const std::string& p, LockMode m) override { return base_->Lock(p, m); }
  std::vector<std::string> TakeStaleLockReports() override { return base_->TakeStaleLockReports(); }
  RunResult Run(const std::vector<std::string>& argv) override { return base_->Run(argv); }
  RunResult RunLimited(const std::vector<std::string>& argv, const RunLimits& limits) override {
    return base_->RunLimited(argv, limits);
  }
  int64_t NowNanos() override { return base_->NowNanos(); }

 private:
  Env* base_;
};

}  // namespace vmback::test
