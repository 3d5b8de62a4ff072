// A heap buffer at an aligned address, for writes that bypass the page
// cache (WritableFile::EnableDirectWrites needs the buffer's address
// aligned). Not zero-filled. Move-only.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace vmback {

class AlignedBuffer {
 public:
  // A multiple of every alignment EnableDirectWrites asks for.
  static constexpr size_t kAlignment = 4096;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size)
      : data_(static_cast<char*>(::operator new(size ? size : 1, std::align_val_t{kAlignment}))), size_(size) {}

  char* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete(p, std::align_val_t{kAlignment}); }
  };
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
};

}  // namespace vmback
