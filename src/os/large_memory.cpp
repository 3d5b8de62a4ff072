#include "os/large_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "util/error.h"

namespace vmback {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

LargeMemory::LargeMemory(size_t bytes, const char* what) : size_(bytes) {
  if (bytes < kHugePage) {
    if (bytes != 0) {
      data_ = static_cast<char*>(::operator new(bytes));
      std::memset(data_, 0, bytes);
    }
    return;
  }
  if (bytes > SIZE_MAX / 2) ThrowIo(std::string("map ") + std::to_string(bytes) + " bytes for " + what, ENOMEM);
  // Room to start on a huge page's boundary: the kernel gives huge pages
  // only for whole aligned 2 MiB ranges. The slack on both sides goes back.
  const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) ThrowIo(std::string("map ") + std::to_string(bytes) + " bytes for " + what, errno);
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) ::munmap(p, aligned - start);
  const uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) ::munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  // Advice only: a kernel without transparent huge pages says EINVAL and
  // gives small pages, as without it.
  AdviseHugePages(reinterpret_cast<void*>(aligned), length);
  data_ = reinterpret_cast<char*>(aligned);
  mapped_ = length;
}

void AdviseHugePages(const void* p, size_t bytes) noexcept {
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  if (bytes < kHugePage || start > UINTPTR_MAX - bytes) return;
  const uintptr_t first = (start + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t last = (start + bytes) / kHugePage * kHugePage;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

void LargeMemory::Release() noexcept {
  if (!data_) return;
  if (mapped_)
    ::munmap(data_, mapped_);
  else
    ::operator delete(data_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
}

}  // namespace vmback
