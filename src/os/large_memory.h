// Memory for one large array (a store's blob table, a whole index file) that
// is filled at once and then read at random. At 2 MiB and more it is mapped
// on its own and the kernel is asked for huge pages (MADV_HUGEPAGE): one page
// fault and one TLB entry per 2 MiB instead of per 4 KiB. Where the kernel
// gives no huge pages the advice changes nothing. Below 2 MiB: the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <utility>

namespace vmback {

class LargeMemory {
 public:
  LargeMemory() = default;
  // `bytes` of zeroed memory. Throws kIo (naming what it was for) when the
  // kernel refuses the mapping.
  LargeMemory(size_t bytes, const char* what);
  ~LargeMemory() { Release(); }
  LargeMemory(LargeMemory&& o) noexcept { *this = std::move(o); }
  LargeMemory& operator=(LargeMemory&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      mapped_ = std::exchange(o.mapped_, 0);
    }
    return *this;
  }
  LargeMemory(const LargeMemory&) = delete;
  LargeMemory& operator=(const LargeMemory&) = delete;

  char* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }
  // Fewer bytes count (the memory stays until released).
  void Shrink(size_t n) {
    if (n < size_) size_ = n;
  }
  // Whether it was mapped apart (2 MiB and more); for tests.
  bool mapped() const { return mapped_ != 0; }

 private:
  void Release() noexcept;
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // the length of the mapping; 0: on the heap
};

// Asks the kernel for huge pages for the whole 2 MiB pages within
// [p, p + bytes) (memory the caller allocated elsewhere, not touched yet:
// a vector reserved for a large load). Advice only; nothing when the range
// holds no whole huge page.
void AdviseHugePages(const void* p, size_t bytes) noexcept;

// A fixed number of zeroed elements of a trivially copyable type in
// LargeMemory.
template <class T>
class LargeArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "LargeArray holds plain data: its memory is zeroed, never constructed");

 public:
  LargeArray() = default;
  // (A count whose bytes overflow asks for SIZE_MAX bytes: refused.)
  LargeArray(size_t n, const char* what)
      : memory_(n > SIZE_MAX / sizeof(T) ? SIZE_MAX : n * sizeof(T), what), size_(n), what_(what) {}
  LargeArray(const LargeArray& o) : LargeArray(o.size_, o.what_) {
    if (size_ != 0) std::memcpy(memory_.data(), o.memory_.data(), size_ * sizeof(T));
  }
  LargeArray& operator=(const LargeArray& o) {
    LargeArray copy(o);
    swap(copy);
    return *this;
  }
  LargeArray(LargeArray&& o) noexcept { swap(o); }
  LargeArray& operator=(LargeArray&& o) noexcept {
    swap(o);
    return *this;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return reinterpret_cast<T*>(memory_.data()); }
  const T* data() const { return reinterpret_cast<const T*>(memory_.data()); }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  void swap(LargeArray& o) noexcept {
    std::swap(memory_, o.memory_);
    std::swap(size_, o.size_);
    std::swap(what_, o.what_);
  }

 private:
  LargeMemory memory_;
  size_t size_ = 0;
  const char* what_ = "an array";
};

}  // namespace vmback
