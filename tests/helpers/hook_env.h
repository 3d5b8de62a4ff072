// An Env that forwards every call to another and lets a test act at a known
// moment: before each OpenRead, ListDir or Status (lstat), with the path (to fail it, or to
// change the disk under the code being tested, deterministically). A
// directory it opens (OpenDirectory, and OpenDir below it) calls
// before_status and before_read too, with the child's path, before each
// lstat and open of a child; a file it opens calls before_read_at, with the
// file's path, before each read.
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
  class File final : public ReadableFileWrapper {
   public:
    File(HookEnv* env, std::unique_ptr<ReadableFile> base) : ReadableFileWrapper(std::move(base)), env_(env) {}
    size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
      if (env_->before_read_at) env_->before_read_at(path());
      return target()->ReadAt(offset, buf, n);
    }

   private:
    HookEnv* env_;
  };

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
      return std::make_unique<File>(env_, target()->OpenRead(name));
    }

   private:
    HookEnv* env_;
  };

  using Hook = std::function<void(const std::string& path)>;
  explicit HookEnv(Env* base = Env::Default()) : EnvWrapper(base) {}

  Hook before_read;  // before each OpenRead; may throw
  Hook before_read_at;  // before each ReadAt of a file opened here; may throw
  Hook before_list;  // before each ListDir; may throw
  Hook before_status;  // before each Status; may throw

  std::unique_ptr<ReadableFile> OpenRead(const std::string& p) override {
    if (before_read) before_read(p);
    return std::make_unique<File>(this, EnvWrapper::OpenRead(p));
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
