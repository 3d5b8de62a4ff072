// Shared by the libFuzzer targets in tests/fuzz: an in-memory file and Env,
// and the checks that stop a run when a decoder accepted what it should have
// refused (libFuzzer then keeps the input as a crash).
//
// Every target follows one contract: malformed input raises vmback::Error
// (kCorrupt or kConfig, as the decoder documents); any other exception, a
// sanitizer report or a broken invariant of an accepted result is a bug.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "os/env.h"
#include "util/error.h"

namespace vmback::fuzz {

// Reports a broken invariant and aborts, so that libFuzzer saves the input.
[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void Check(bool ok, const char* what) {
  if (!ok) Fail(std::string("accepted input breaks: ") + what);
}

// Runs decode(); an Error of kind `expected` is the refusal the decoder's
// contract promises, anything else thrown is a bug. Returns whether decode()
// accepted the input.
template <typename Fn>
bool Accepts(ErrorKind expected, Fn&& decode) {
  try {
    decode();
    return true;
  } catch (const Error& e) {
    if (e.kind() != expected) Fail(std::string("unexpected kind of vmback::Error: ") + e.what());
    return false;
  } catch (const std::exception& e) {
    Fail(std::string("an exception other than vmback::Error escaped: ") + e.what());
  }
}

// A read-only file over bytes held in memory.
class MemFile : public ReadableFile {
 public:
  MemFile(std::string path, std::string_view data) : path_(std::move(path)), data_(data) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    if (offset >= data_.size()) return 0;
    size_t k = std::min<uint64_t>(n, data_.size() - offset);
    data_.copy(static_cast<char*>(buf), k, offset);
    return k;
  }
  uint64_t Size() override { return data_.size(); }
  uint64_t NextData(uint64_t offset) override { return offset; }
  uint64_t NextHole(uint64_t offset) override { return data_.size(); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::string_view data_;
};

// An Env holding one read-only file at `path`; every other operation fails
// (the readers fuzzed here need no more).
class OneFileEnv : public Env {
 public:
  OneFileEnv(std::string path, std::string_view data) : path_(std::move(path)), data_(data) {}

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override {
    if (path != path_) ThrowNotFound(path);
    return std::make_unique<MemFile>(path, data_);
  }
  bool Exists(const std::string& path) override { return path == path_; }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode, mode_t) override {
    Refuse(path);
  }
  void Rename(const std::string& from, const std::string&) override { Refuse(from); }
  void Remove(const std::string& path) override { Refuse(path); }
  void MakeDir(const std::string& path) override { Refuse(path); }
  void SyncDir(const std::string& path) override { Refuse(path); }
  std::vector<std::string> ListDir(const std::string& path) override { Refuse(path); }
  std::unique_ptr<FileLock> Lock(const std::string& path, LockMode) override { Refuse(path); }
  RunResult Run(const std::vector<std::string>& argv) override { Refuse(argv.empty() ? "" : argv[0]); }
  int64_t NowNanos() override { return 0; }

 private:
  [[noreturn]] static void Refuse(const std::string& what) {
    Fail("the fuzz env has no operation on " + what + " (a reader tried to write or list)");
  }

  std::string path_;
  std::string_view data_;
};

}  // namespace vmback::fuzz
