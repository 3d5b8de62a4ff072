// Shared test helpers: a private temp directory per test, file makers.
#pragma once

#include <cstdint>
#include <string>

namespace vmback::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);
// Deterministic pseudo-random bytes (seeded; same seed, same bytes).
std::string RandomBytes(size_t n, uint64_t seed);

}  // namespace vmback::test
