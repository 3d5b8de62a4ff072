// An Env that forwards every call to another and lets a test act at a known
// moment: before each OpenRead, ListDir or Status (lstat), with the path (to fail it, or to
// change the disk under the code being tested, deterministically). A
// directory it opens (OpenDirectory, and OpenDir below it) calls
// before_status and before_read too, with the child's path, before each
// lstat and open of a child.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "os/env.h"

namespace vmback::test {

class HookEnv final : public EnvWrapper {
 public:
  class Dir final : public ReadableDirWrapper {
   public:
    Dir(HookEnv* env, std::unique_ptr<ReadableDir> base) : ReadableDirWrapper(std::move(base)), env_(env) {}
    FileStatus Status(const std::string& name) override {
      if (env_->before_status) env_->before_status(ChildPath(name));
      return target()->Status(name);
    }
    std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
      return std::make_unique<Dir>(env_, target()->OpenDir(name));
    }
    std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override {
      if (env_->before_read) env_->before_read(ChildPath(name));
      return target()->OpenRead(name);
    }

   private:
    HookEnv* env_;
  };

  using Hook = std::function<void(const std::string& path)>;
  explicit HookEnv(Env* base = Env::Default()) : EnvWrapper(base) {}

  Hook before_read;  // before each OpenRead; may throw
  Hook before_list;  // before each ListDir; may throw
  Hook before_status;  // before each Status; may throw

  std::unique_ptr<ReadableFile> OpenRead(const std::string& p) override {
    if (before_read) before_read(p);
    return EnvWrapper::OpenRead(p);
  }
  std::vector<std::string> ListDir(const std::string& p) override {
    if (before_list) before_list(p);
    return EnvWrapper::ListDir(p);
  }
  FileStatus Status(const std::string& p) override {
    if (before_status) before_status(p);
    return EnvWrapper::Status(p);
  }
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& p) override {
    return std::make_unique<Dir>(this, EnvWrapper::OpenDirectory(p));
  }
};

}  // namespace vmback::test
