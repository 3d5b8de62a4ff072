#include "os/large_memory.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "util/error.h"

namespace vmback {
namespace {

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

// The VmFlags line of the mapping that holds addr, from /proc/self/smaps.
std::string FlagsOfMappingAt(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in = false;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      in = lo <= a && a < hi;
      continue;
    }
    if (in && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(LargeMemoryTest, SmallComesFromTheHeapZeroed) {
  LargeMemory m(1000, "a test");
  EXPECT_FALSE(m.mapped());
  EXPECT_EQ(m.size(), 1000u);
  EXPECT_TRUE(AllZero(m.data(), m.size()));
  EXPECT_EQ(LargeMemory(0, "a test").data(), nullptr);
}

TEST(LargeMemoryTest, LargeIsMappedOnAHugePageBoundaryZeroedAndAdvised) {
  const size_t n = (size_t{5} << 20) + 123;
  LargeMemory m(n, "a test");
  ASSERT_TRUE(m.mapped());
  EXPECT_EQ(m.size(), n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % (size_t{2} << 20), 0u);
  EXPECT_TRUE(AllZero(m.data(), n));
  m.data()[n - 1] = 7;  // all of it writable
  std::string flags = FlagsOfMappingAt(m.data());
  ASSERT_FALSE(flags.empty());
  // "hg": the kernel took the advice (MADV_HUGEPAGE); a kernel without
  // transparent huge pages refuses it and the mapping works without.
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  if (thp) {
    EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
  }
}

TEST(LargeMemoryTest, RefusesWhatNoMappingCanHold) {
  EXPECT_THROW(LargeMemory(SIZE_MAX - 1, "a test"), Error);
  EXPECT_THROW(LargeArray<uint64_t>(SIZE_MAX / 4, "a test"), Error);  // bytes overflow
}

TEST(LargeMemoryTest, ShrinkOnlyShrinks) {
  LargeMemory m(100, "a test");
  m.Shrink(40);
  EXPECT_EQ(m.size(), 40u);
  m.Shrink(80);
  EXPECT_EQ(m.size(), 40u);
  EXPECT_EQ(m.view().size(), 40u);
}

TEST(LargeArrayTest, CopiesAndMoves) {
  LargeArray<uint64_t> a(size_t{1} << 19, "a test");  // 4 MiB: mapped
  for (size_t i = 0; i < a.size(); i++) a[i] = i * 3;
  LargeArray<uint64_t> b = a;
  ASSERT_EQ(b.size(), a.size());
  EXPECT_NE(b.data(), a.data());
  for (size_t i = 0; i < b.size(); i++) ASSERT_EQ(b[i], i * 3) << i;
  b[5] = 1;
  EXPECT_EQ(a[5], 15u);
  LargeArray<uint64_t> c = std::move(b);
  EXPECT_EQ(c[5], 1u);
  EXPECT_TRUE(b.empty());
  c = a;
  EXPECT_EQ(c[5], 15u);
}

// The VmFlags line of the mapping of this process that holds addr ("" when
// none does).
std::string VmFlagsAt(uintptr_t addr) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) {
      in = addr >= lo && addr < hi;
      continue;
    }
    if (in && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(AdviseHugePagesTest, AdvisesTheWholeHugePagesOfARangeAndKeepsItsData) {
  std::vector<uint64_t> v;
  v.reserve((size_t{5} << 20) / sizeof(uint64_t));  // 5 MiB: at least one whole 2 MiB page inside
  const uintptr_t start = reinterpret_cast<uintptr_t>(v.data());
  const uintptr_t first = (start + (size_t{2} << 20) - 1) / (size_t{2} << 20) * (size_t{2} << 20);
  AdviseHugePages(v.data(), v.capacity() * sizeof(uint64_t));
  for (size_t i = 0; i < v.capacity(); i++) v.push_back(i * 7);
  for (size_t i = 0; i < v.size(); i++) ASSERT_EQ(v[i], i * 7) << i;
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(thp, mode);
  if (mode.find("[never]") != std::string::npos || mode.empty()) GTEST_SKIP() << "no transparent huge pages here";
  EXPECT_NE(VmFlagsAt(first).find(" hg"), std::string::npos) << VmFlagsAt(first);
}

TEST(AdviseHugePagesTest, NothingForARangeWithoutAWholeHugePageOrPastTheAddressSpace) {
  std::vector<char> small(4096, 'x');
  AdviseHugePages(small.data(), small.size());
  EXPECT_EQ(std::string(small.data(), 3), "xxx");
  // A range that would wrap: refused before any arithmetic overflows.
  AdviseHugePages(reinterpret_cast<const void*>(UINTPTR_MAX - 4096), size_t{4} << 20);
  AdviseHugePages(nullptr, 0);
}

}  // namespace
}  // namespace vmback
