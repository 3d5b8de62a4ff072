#include "reliability/sweep_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>

#include "helpers/test_util.h"
#include "util/error.h"
#include "util/sha256.h"

namespace vmback::reliability {

namespace fs = std::filesystem;

bool LongRun() {
  const char* v = std::getenv("VMBACK_LONG_TESTS");
  return v && std::string(v) == "1";
}

namespace {

std::mutex g_rows_mu;
std::vector<SweepRow>& Rows() {
  static std::vector<SweepRow> rows;
  return rows;
}

class SummaryPrinter : public ::testing::Environment {
 public:
  explicit SummaryPrinter(std::string title) : title_(std::move(title)) {}
  void TearDown() override {
    std::vector<SweepRow> rows;
    {
      std::lock_guard<std::mutex> l(g_rows_mu);
      rows = Rows();
    }
    std::cout << FormatSummary(title_, rows) << std::flush;
  }

 private:
  std::string title_;
};

// fsync is a no-op; everything else goes to the real Env.
class SkipFsyncEnv final : public EnvWrapper {
 public:
  explicit SkipFsyncEnv(Env* base) : EnvWrapper(base) {}
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode m, mode_t perm) override {
    return std::make_unique<NoSyncFile>(target()->OpenWrite(p, m, perm));
  }
  void SyncDir(const std::string&) override {}

 private:
  class NoSyncFile final : public WritableFileWrapper {
   public:
    explicit NoSyncFile(std::unique_ptr<WritableFile> f) : WritableFileWrapper(std::move(f)) {}
    void Sync() override {}
  };
};

void SetMtime(const std::string& path, int64_t secs) { test::SetMtimeNs(path, secs, 0); }

}  // namespace

void RecordRow(const SweepRow& row) {
  std::lock_guard<std::mutex> l(g_rows_mu);
  Rows().push_back(row);
}

std::string FormatSummary(const std::string& title, const std::vector<SweepRow>& rows) {
  size_t w = 4;
  for (const auto& r : rows) w = std::max(w, r.test.size());
  auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%-*s  %8s  %15s  %8s\n", static_cast<int>(w), a.c_str(), b.c_str(),
                  c.c_str(), d.c_str());
    return std::string(buf);
  };
  std::string out = "\n=== reliability summary: " + title + (LongRun() ? " (long run)" : " (short run)") + " ===\n";
  out += line("test", "runs", "faults injected", "failures");
  uint64_t runs = 0, faults = 0, failures = 0;
  for (const auto& r : rows) {
    out += line(r.test, std::to_string(r.runs), std::to_string(r.faults), std::to_string(r.failures));
    runs += r.runs;
    faults += r.faults;
    failures += r.failures;
  }
  out += line("TOTAL", std::to_string(runs), std::to_string(faults), std::to_string(failures));
  return out;
}

void InstallSummaryPrinter(const std::string& title) {
  ::testing::AddGlobalTestEnvironment(new SummaryPrinter(title));
}

Env* NoFsyncEnv() {
  static SkipFsyncEnv env(Env::Default());
  return &env;
}

std::vector<std::string> ListFaultEnv::ListDir(const std::string& p) {
  bool counts = under_.empty();
  for (const auto& u : under_) counts = counts || p == u || p.rfind(u + "/", 0) == 0;
  if (!counts) return target()->ListDir(p);
  int64_t n = ++listings_;
  if (fail_at_ > 0 && n == fail_at_) {
    injected_ = true;
    ThrowIo("list " + p + " (injected)", EIO);
  }
  return target()->ListDir(p);
}

void BuildGeneration(const std::string& dir, int gen) {
  constexpr size_t kB = 4096;
  const int64_t t = 1600000000 + 1000 * gen;
  using test::RandomBytes;
  using test::ReadFile;
  using test::WriteFile;
  uint64_t seed = 1000 * static_cast<uint64_t>(gen);
  if (gen == 1) {
    fs::create_directories(dir + "/sub/deep");
    fs::create_directories(dir + "/keep");
    WriteFile(dir + "/a.bin", RandomBytes(6 * kB + 100, 1));
    WriteFile(dir + "/big.bin", RandomBytes(40 * kB, 2));
    WriteFile(dir + "/keep/stable.bin", RandomBytes(12 * kB + 7, 3));
    WriteFile(dir + "/zeros.bin", RandomBytes(kB, 4) + std::string(2 * kB, '\0') + RandomBytes(kB / 3, 5));
    WriteFile(dir + "/empty", "");
    std::string text;
    for (int i = 0; i < 400; i++) text += "line " + std::to_string(i) + " of a compressible text file\n";
    WriteFile(dir + "/text.txt", text);
    fs::create_symlink("a.bin", dir + "/link");
    ::chmod((dir + "/keep/stable.bin").c_str(), 0600);
    for (const char* p : {"a.bin", "big.bin", "keep/stable.bin", "zeros.bin", "empty", "text.txt", "link"})
      SetMtime(dir + "/" + p, t);
  } else if (gen == 2) {
    // Only a scratch file, gone in the next generation: the pack of this
    // generation holds nothing later generations still name.
    WriteFile(dir + "/scratch.bin", RandomBytes(24 * kB + 5, seed + 5));
    SetMtime(dir + "/scratch.bin", t);
  } else {
    if (gen == 3) fs::remove(dir + "/scratch.bin");
    // a.bin: one block rewritten in place (same size).
    std::string a = ReadFile(dir + "/a.bin");
    a.replace((gen % 6) * kB, kB, RandomBytes(kB, seed + 1));
    WriteFile(dir + "/a.bin", a);
    SetMtime(dir + "/a.bin", t);
    // big.bin: a run of blocks replaced, and it grows.
    std::string big = ReadFile(dir + "/big.bin");
    size_t at = (static_cast<size_t>(gen) * 7 % 30) * kB;
    big.replace(at, 8 * kB, RandomBytes(8 * kB, seed + 2));
    big += RandomBytes(3 * kB + static_cast<size_t>(gen), seed + 3);
    WriteFile(dir + "/big.bin", big);
    SetMtime(dir + "/big.bin", t);
    // A file that comes and goes.
    fs::remove(dir + "/sub/g" + std::to_string(gen - 2) + ".bin");
    // The symlink's target moves.
    fs::remove(dir + "/link");
    fs::create_symlink(gen % 2 ? "a.bin" : "sub/deep/t.txt", dir + "/link");
    SetMtime(dir + "/link", t);
  }
  if (gen != 2) {
    WriteFile(dir + "/sub/g" + std::to_string(gen) + ".bin", RandomBytes((10 + 3 * gen) * kB + 11, seed + 4));
    SetMtime(dir + "/sub/g" + std::to_string(gen) + ".bin", t);
  }
  WriteFile(dir + "/sub/deep/t.txt", "generation " + std::to_string(gen) + "\n");
  SetMtime(dir + "/sub/deep/t.txt", t);
  for (const char* p : {"sub/deep", "sub", "keep", ""}) SetMtime(dir + "/" + p, t);
}

std::map<std::string, std::string> FileDigests(const std::string& dir, bool (*keep)(const std::string& rel)) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file() || it->is_symlink()) continue;
    std::string rel = fs::relative(it->path(), dir).string();
    if (keep && !keep(rel)) continue;
    out[rel] = Sha256(test::ReadFile(it->path().string())).Hex();
  }
  return out;
}

bool IsStoreContent(const std::string& rel) {
  if (rel.find(".bad-") != std::string::npos || rel.find(".tmp-") != std::string::npos) return false;
  if (rel == "damaged") return true;
  for (const char* sub : {"packs/", "index/", "points/"})
    if (rel.rfind(sub, 0) == 0) return true;
  return false;
}

std::string CopiesDiffer(const std::string& a, const std::string& b) {
  auto da = FileDigests(a, IsStoreContent);
  auto db = FileDigests(b, IsStoreContent);
  std::vector<std::string> diff;
  for (const auto& [rel, h] : da) {
    auto it = db.find(rel);
    if (it == db.end()) diff.push_back("only in " + BaseName(a) + ": " + rel);
    else if (it->second != h) diff.push_back("differs: " + rel);
  }
  for (const auto& [rel, h] : db)
    if (!da.count(rel)) diff.push_back("only in " + BaseName(b) + ": " + rel);
  return JoinSome(diff, "; ");
}

std::vector<std::string> KeptAside(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    if (it->path().filename().string().find(".bad-") != std::string::npos)
      out.push_back(fs::relative(it->path(), dir).string());
  return out;
}

std::string JoinSome(const std::vector<std::string>& v, const std::string& sep, size_t max) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; i++) out += (i ? sep : "") + v[i];
  if (v.size() > max) out += sep + "... (" + std::to_string(v.size() - max) + " more)";
  return out;
}

}  // namespace vmback::reliability
