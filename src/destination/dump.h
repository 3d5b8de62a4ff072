// `vmback dump`: a file of a point streamed, in order, to a pipe.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "os/env.h"

namespace vmback {

// A WritableFile over a std::ostream (standard output), for the content
// writers of restore, which write a file's blocks in order of offset and
// leave holes and zero blocks unwritten: a gap before a write, and up to
// the size given to Truncate, is written as zeros. Writing back before the
// end of what was written is an internal error (a stream cannot seek). A
// failed write to the stream throws Error(kIo) naming path.
// Not thread-safe.
class StreamFile : public WritableFile {
 public:
  // path: what out is, for messages ("standard output").
  StreamFile(std::ostream& out, std::string path) : out_(out), path_(std::move(path)) {}

  void Append(const void* data, size_t n) override { WriteAt(written_, data, n); }
  void WriteAt(uint64_t offset, const void* data, size_t n) override;
  // Pads with zeros up to size; a size below what was written is refused.
  void Truncate(uint64_t size) override;
  void Sync() override;  // flushes the stream
  void Close() override { Sync(); }
  const std::string& path() const override { return path_; }

  uint64_t written() const { return written_; }

 private:
  void Put(const char* data, size_t n);
  void Zeros(uint64_t n);

  std::ostream& out_;
  const std::string path_;
  uint64_t written_ = 0;
};

// Throws Error(kConfig): `path` of `point` is `what` ("a directory", "a
// symlink", "a device node"), not a regular file whose content dump can
// write; such entries are for restore.
[[noreturn]] void ThrowNotDumpable(const std::string& path, const std::string& point, const std::string& what);

// path ("VOLUME/dir/file", as the user gave it) without leading, trailing
// or repeated slashes; an empty result is refused (Error kConfig): dump
// takes one file.
std::string DumpPath(const std::string& path);

}  // namespace vmback
