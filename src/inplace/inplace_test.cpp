// Tests of the in-place sink: byte-exact round trips (random, sparse, zero,
// empty, grow, shrink), writes limited to the changed blocks and made in
// place (same inode), all-zero blocks as holes, blockmaps missing, corrupt or
// stale (target edited) found and rebuilt by a compare, trees with every kind
// of entry and their deletions, and fault sweeps: after an injected ENOSPC
// or crash at any write step no map claims blocks the target lacks, and the
// next sync repairs everything.
#include "inplace/inplace.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "helpers/hook_env.h"
#include "helpers/test_util.h"
#include "os/dir.h"
#include "helpers/fault_env.h"
#include "inplace/mirror_scan.h"
#include "inplace/source_prefetch.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using test::AllocatedBytes;
using test::DescribeTree;
using test::RandomBytes;
using test::ReadFile;
using test::SetMtimeNs;
using test::TempDir;
using test::WriteFile;
using test::WriteFileAt;
using test::XorFileByte;

constexpr uint32_t kBs = 4096;
constexpr int64_t kT0 = 1700000000;

struct stat Stat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error("lstat " + path);
  return st;
}

// The whole content of a file, in one read (fast also for large holes).
std::string Content(const std::string& path) { return ReadFileToString(Env::Default(), path); }

// DescribeTree without the blockmaps.
std::string Describe(const std::string& path) {
  std::istringstream in(DescribeTree(path));
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind(kBlockmapDir, 0) != 0) out += line + "\n";
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& needle) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

// The map of a single-file mirror.
std::string MapOf(const std::string& dest) { return BlockmapPath(DirName(dest), BaseName(dest)); }

size_t CountMaps(const std::string& map_root) {
  size_t n = 0;
  std::string dir = JoinPath(map_root, kBlockmapDir);
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".map") n++;
  return n;
}

// Whether the map of dest (at map_path) looks complete for it, and if so,
// whether every hash it claims is the target's actual content. Returns ""
// when nothing is wrong. Stricter than the sync: the target's timestamps are
// ignored, as after a power cut that lost their update but not the data, so
// that only the map's own state protects it.
std::string StaleClaims(const std::string& dest, const std::string& map_path) {
  Blockmap m;
  try {
    m = ReadBlockmap(Env::Default(), map_path);
  } catch (const Error&) {
    return "";  // not trusted: the next sync compares
  }
  struct stat st;
  if (::lstat(dest.c_str(), &st) != 0) return "";
  if (m.target_ino != st.st_ino || m.file_size != static_cast<uint64_t>(st.st_size))
    return "";  // not trusted either
  // Block by block: the test images are sparse and large.
  auto file = Env::Default()->OpenRead(dest);
  std::string block;
  for (size_t i = 0; i < m.blocks.size(); i++) {
    const uint64_t off = uint64_t{i} * m.block_size;
    block.resize(std::min<uint64_t>(m.block_size, m.file_size - off));
    block.resize(file->ReadAt(off, block.data(), block.size()));
    bool zero = block.find_first_not_of('\0') == std::string::npos;
    Hash want = zero ? Hash{} : Sha256(block);
    if (want != m.blocks[i]) return "map claims block " + std::to_string(i) + " that the target does not hold";
  }
  return "";
}

// The map index of the tree mirror dest.
std::string IndexOf(const std::string& dest) { return JoinPath(JoinPath(dest, kBlockmapDir), kMapIndexName); }

// Whether the index of the tree mirror dest, when it is sound, claims a
// file whose data is not the data of the source state it records (size and
// mtime: that of one of sources, the trees the mirror was synced from).
// Returns "" when nothing is wrong. Like StaleClaims, the target's
// timestamps are ignored, as after a power cut that lost their update but
// not the data: only the index's own removal protects it.
std::string IndexStaleClaims(const std::string& dest, const std::vector<std::string>& sources, uint32_t bs) {
  MapIndex index;
  if (!ReadMapIndex(Env::Default(), IndexOf(dest), bs, &index).empty()) return "";  // not used
  for (const Blockmap& m : index.records()) {
    const std::string& rel = m.path;
    const std::string file = dest + "/" + rel;
    const FileStatus st = Env::Default()->Status(file);
    if (st.kind == FileKind::kMissing || st.ino != m.target_ino || st.size != m.file_size) continue;  // not trusted
    bool named = false;
    for (const auto& src : sources) {
      const FileStatus ss = Env::Default()->Status(src + "/" + rel);
      if (ss.kind == FileKind::kMissing || ss.size != m.file_size || ss.mtime_ns != m.source_mtime_ns) continue;
      named = true;
      if (ReadFile(file) != ReadFile(src + "/" + rel)) return "the index claims " + rel + ", which the target lacks";
    }
    if (!named) return "the index records a state of " + rel + " that no source had";
  }
  return "";
}

class InplaceTest : public ::testing::Test {
 protected:
  InplaceStats Sync(const std::string& src, const std::string& dst, uint32_t bs = kBs,
                    InplaceOptions opts = {}, Env* env = Env::Default()) {
    return SyncInPlace(env, src, dst, bs, opts, &log_);
  }
  // Syncs with a fresh logger, so that each run's messages can be looked at.
  InplaceStats SyncLogged(const std::string& src, const std::string& dst, std::vector<std::string>* problems,
                          uint32_t bs = kBs, InplaceOptions opts = {}, Env* env = Env::Default()) {
    Logger log(LogLevel::kError, false);
    InplaceStats s = SyncInPlace(env, src, dst, bs, opts, &log);
    *problems = log.problems();
    return s;
  }

  TempDir tmp_;
  Logger log_{LogLevel::kError, false};
};

// --- Round trips -------------------------------------------------------------

TEST_F(InplaceTest, RoundTripsOfEveryShape) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  struct Case {
    std::string name;
    std::function<void()> make;
  };
  std::vector<Case> cases = {
      {"random", [&] { WriteFile(src, RandomBytes(1000 * 1000 + 123, 1)); }},
      {"empty", [&] { WriteFile(src, ""); }},
      {"zero", [&] { WriteFile(src, std::string(300 * 1000, '\0')); }},
      {"sparse", [&] {  // 64 MiB, a few data blocks, a tail that is a hole
         WriteFile(src, "");
         WriteFileAt(src, 5 * kBs + 17, RandomBytes(3 * kBs, 2));
         WriteFileAt(src, 40u << 20, RandomBytes(1000, 3));
         ASSERT_EQ(::truncate(src.c_str(), 64 << 20), 0);
       }},
      {"grow", [&] { WriteFile(src, RandomBytes(3 * 1000 * 1000 + 7, 4)); }},
      {"shrink", [&] { WriteFile(src, RandomBytes(12345, 5)); }},
      {"grow with a hole", [&] { ASSERT_EQ(::truncate(src.c_str(), 20 << 20), 0); }},
      {"partial last block", [&] { WriteFile(src, RandomBytes(kBs * 10 + 1, 6)); }},
      {"empty again", [&] { WriteFile(src, ""); }},
  };
  const ino_t ino = [&] {
    WriteFile(src, "x");
    Sync(src, dst);
    return Stat(dst).st_ino;
  }();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    c.make();
    InplaceStats s = Sync(src, dst);
    ASSERT_EQ(Content(dst), Content(src));
    EXPECT_EQ(Stat(dst).st_ino, ino) << "the mirror file is never replaced";
    EXPECT_EQ(Stat(dst).st_mtim.tv_nsec, Stat(src).st_mtim.tv_nsec);
    EXPECT_EQ(Stat(dst).st_mode, Stat(src).st_mode);
    EXPECT_EQ(s.blockmaps_rebuilt, 0u);
    Blockmap m = ReadBlockmap(Env::Default(), MapOf(dst));
    EXPECT_EQ(m.file_size, fs::file_size(src));
    EXPECT_EQ(m.block_size, kBs);
    EXPECT_EQ(m.path, "dst");
    // A second sync finds nothing to do.
    InplaceStats again = Sync(src, dst, kBs, {.full_read = true});
    EXPECT_EQ(again.blocks_written, 0u);
    EXPECT_EQ(again.holes_punched, 0u);
    EXPECT_EQ(again.bytes_written, 0u);
  }
  EXPECT_TRUE(log_.problems().empty());
}

// The mode of a mirror file is set without following a symlink (one
// fchmodat2 call where the kernel has it): a file's mode changes, setuid
// bits and all; a symlink is refused and its target left alone; a missing
// path is an error naming it.
TEST_F(InplaceTest, SetModeNoFollowChangesAFileAndRefusesASymlink) {
  const std::string f = tmp_ / "f", l = tmp_ / "l", missing = tmp_ / "missing";
  WriteFile(f, "x");
  fs::permissions(f, fs::perms::owner_read | fs::perms::owner_write);
  Env::Default()->SetModeNoFollow(f, 04751);
  EXPECT_EQ(Stat(f).st_mode & 07777, 04751u);
  fs::create_symlink("f", l);
  EXPECT_THROW(Env::Default()->SetModeNoFollow(l, 0777), Error);
  EXPECT_EQ(Stat(f).st_mode & 07777, 04751u) << "nothing changed through the symlink";
  try {
    Env::Default()->SetModeNoFollow(missing, 0644);
    ADD_FAILURE() << "no error for a missing path";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chmod " + missing), std::string::npos) << e.what();
  }
}

TEST_F(InplaceTest, SparseSourceIsReadSparselyAndStaysSparse) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, "");
  WriteFileAt(src, 1 << 20, RandomBytes(8 * kBs, 7));
  ASSERT_EQ(::truncate(src.c_str(), 64 << 20), 0);
  InplaceStats s = Sync(src, dst);
  EXPECT_EQ(Content(dst), Content(src));
  EXPECT_EQ(s.blocks, (64u << 20) / kBs);
  EXPECT_EQ(s.blocks_written, 8u);
  EXPECT_LE(s.bytes_read, 1u << 20) << "holes are skipped, not read";
  EXPECT_LE(AllocatedBytes(dst), 1u << 20);
}

// --- Incremental ---------------------------------------------------------------

TEST_F(InplaceTest, WritesExactlyTheChangedBlocksInPlace) {
  std::string src = tmp_ / "disk.img", dst = tmp_ / "mirror.img";
  const size_t size = 16u << 20, nblocks = size / kBs;
  WriteFile(src, RandomBytes(size, 10));
  SetMtimeNs(src, kT0, 1);
  InplaceStats first = Sync(src, dst);
  EXPECT_EQ(first.blocks_written, nblocks);
  EXPECT_EQ(first.bytes_written, size);
  const ino_t ino = Stat(dst).st_ino;

  // Change 1% of the blocks.
  std::mt19937_64 rng(11);
  std::set<size_t> changed;
  while (changed.size() < nblocks / 100) changed.insert(rng() % nblocks);
  for (size_t b : changed) WriteFileAt(src, b * kBs, RandomBytes(kBs, 1000 + b));
  SetMtimeNs(src, kT0 + 1, 2);

  InplaceStats s = Sync(src, dst);
  EXPECT_EQ(s.blocks_written, changed.size());
  EXPECT_EQ(s.bytes_written, changed.size() * kBs);
  EXPECT_EQ(s.blocks, nblocks);
  EXPECT_EQ(s.holes_punched, 0u);
  EXPECT_EQ(s.blockmaps_rebuilt, 0u);
  EXPECT_EQ(s.target_bytes_read, 0u) << "the target is not read to find changes";
  // The map: only the changed entries, the state word, header and trailer.
  EXPECT_EQ(s.map_bytes_written, changed.size() * 32 + 4 + 64 + 10 + 32);  // path "mirror.img"
  EXPECT_EQ(Stat(dst).st_ino, ino);
  EXPECT_EQ(ReadFile(dst), ReadFile(src));

  // Unchanged: the quick check does not even read it.
  InplaceStats q = Sync(src, dst);
  EXPECT_EQ(q.files_skipped, 1u);
  EXPECT_EQ(q.bytes_read, 0u);
  EXPECT_EQ(q.bytes_written + q.map_bytes_written, 0u);
}

TEST_F(InplaceTest, QuickCheckTrustsSizeAndMtimeUnlessFullRead) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(10 * kBs, 20));
  SetMtimeNs(src, kT0, 5);
  Sync(src, dst);
  XorFileByte(src, 3 * kBs + 9, 0x40);  // same size, mtime put back
  SetMtimeNs(src, kT0, 5);
  InplaceStats q = Sync(src, dst);
  EXPECT_EQ(q.files_skipped, 1u);
  EXPECT_EQ(q.blocks_written, 0u);
  InplaceStats f = Sync(src, dst, kBs, {.full_read = true});
  EXPECT_EQ(f.files_skipped, 0u);
  EXPECT_EQ(f.blocks_written, 1u);
  EXPECT_EQ(ReadFile(dst), ReadFile(src));
}

// --- Change lists (changed-block tracking) -------------------------------------

// A change function that answers with list and records what it was asked.
struct ChangeLog {
  std::vector<std::pair<std::string, std::string>> asked;  // rel, path
};
std::function<ChangeSet(const std::string&, const std::string&)> Changes(ChangeLog* log,
                                                                         std::vector<ByteRange> list) {
  return [log, list](const std::string& rel, const std::string& path) {
    log->asked.emplace_back(rel, path);
    ChangeSet cs;
    cs.method = ChangeMethod::kDirtyBitmap;
    cs.changed = list;
    return cs;
  };
}

TEST_F(InplaceTest, AChangeListReadsOnlyTheBlocksItTouchesAndMakesTheSameMirror) {
  fs::create_directories(tmp_ / "a");
  fs::create_directories(tmp_ / "b");
  std::string src = tmp_ / "disk.img", dst = tmp_ / "a/m.img", full = tmp_ / "b/m.img";
  const uint64_t size = 1024 * kBs + 1000, n = 1025;  // a partial last block
  WriteFile(src, RandomBytes(size, 60));
  SetMtimeNs(src, kT0, 1);
  Sync(src, dst);

  // Blocks 3, 100 (5 bytes of it), 500 and 501 (a range across them), 700
  // (now all zeros) and the partial last block change.
  WriteFileAt(src, 3 * kBs, RandomBytes(kBs, 61));
  WriteFileAt(src, 100 * kBs + 10, RandomBytes(5, 62));
  WriteFileAt(src, 500 * kBs + 4000, RandomBytes(200, 63));
  WriteFileAt(src, 700 * kBs, std::string(kBs, '\0'));
  WriteFileAt(src, size - 10, RandomBytes(5, 64));
  SetMtimeNs(src, kT0 + 1, 2);
  const std::vector<ByteRange> list = {{3 * kBs, kBs}, {100 * kBs + 10, 5}, {500 * kBs + 4000, 200},
                                       {700 * kBs, kBs}, {size - 10, 5}};
  ChangeLog asked;
  InplaceOptions opts;
  opts.changes = Changes(&asked, list);
  InplaceStats s = Sync(src, dst, kBs, opts);
  ASSERT_EQ(asked.asked.size(), 1u);
  EXPECT_EQ(asked.asked[0], std::make_pair(std::string(), src)) << "rel is empty for a file source";
  EXPECT_EQ(s.files_by_change_list, 1u);
  EXPECT_EQ(s.change_method, "dirty-bitmap");
  EXPECT_EQ(s.change_why, "");
  EXPECT_EQ(s.bytes_read, 5 * kBs + 1000) << "only the touched blocks are read";
  EXPECT_EQ(s.blocks, n);
  EXPECT_EQ(s.blocks_written, 5u);
  EXPECT_EQ(s.holes_punched, 1u);
  EXPECT_EQ(s.target_bytes_read, 0u);
  ASSERT_EQ(Content(dst), Content(src));

  // The map is the one a full read makes: of a fresh mirror, and on a
  // full re-read, which finds nothing to write.
  Sync(src, full);
  EXPECT_EQ(ReadBlockmap(Env::Default(), MapOf(dst)).blocks, ReadBlockmap(Env::Default(), MapOf(full)).blocks);
  InplaceStats again = Sync(src, dst, kBs, {.full_read = true});
  EXPECT_EQ(again.bytes_read, size);
  EXPECT_EQ(again.blocks_written + again.holes_punched + again.map_bytes_written, 0u);
  EXPECT_EQ(again.blockmaps_rebuilt, 0u);
}

TEST_F(InplaceTest, AnEmptyChangeListReadsNothingAndWritesNothing) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(300 * kBs + 7, 65));
  SetMtimeNs(src, kT0, 1);
  Sync(src, dst);
  SetMtimeNs(src, kT0 + 1, 2);  // past the quick check
  ChangeLog asked;
  InplaceOptions opts;
  opts.changes = Changes(&asked, {});
  InplaceStats s = Sync(src, dst, kBs, opts);
  EXPECT_EQ(asked.asked.size(), 1u);
  EXPECT_EQ(s.files_by_change_list, 1u);
  EXPECT_EQ(s.bytes_read, 0u);
  EXPECT_EQ(s.bytes_written + s.blocks_written + s.holes_punched, 0u);
  EXPECT_EQ(Content(dst), Content(src));
  EXPECT_EQ(ReadBlockmap(Env::Default(), MapOf(dst)).source_mtime_ns, (kT0 + 1) * 1000000000 + 2);
  EXPECT_EQ(Sync(src, dst).files_skipped, 1u) << "the map was committed for the new mtime";
}

// First run, full read, a grown file, a missing or corrupt map: the change
// list is not asked for (a lying one would leave the mirror wrong), the
// file is read in full and the first reason given.
TEST_F(InplaceTest, AChangeListIsUsedOnlyWithATrustedMapOfTheSameSize) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(64 * kBs, 66));
  int64_t t = kT0;
  struct Case {
    std::string name, why;
    std::function<void()> before;
    bool full_read = false;
  };
  std::vector<Case> cases = {
      {"first run", "not in the mirror yet", [] {}},
      {"full read", "a full read (--full-read, or full_read_every)", [] {}, true},
      {"grown", "its size changed", [&] { WriteFileAt(src, 64 * kBs, RandomBytes(3, 67)); }},
      {"map missing", "its blockmap is missing", [&] { ASSERT_EQ(::unlink(MapOf(dst).c_str()), 0); }},
      {"map corrupt", "its blockmap ", [&] { XorFileByte(MapOf(dst), 64 + 3 + 32 * 9 + 1, 0x01); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    c.before();
    WriteFileAt(src, 9 * kBs, RandomBytes(kBs, ++t));  // a change the lying list leaves out
    SetMtimeNs(src, t, 0);
    ChangeLog asked;
    InplaceOptions opts;
    opts.full_read = c.full_read;
    opts.changes = Changes(&asked, {});
    InplaceStats s = Sync(src, dst, kBs, opts);
    EXPECT_TRUE(asked.asked.empty());
    EXPECT_EQ(s.files_by_change_list, 0u);
    EXPECT_EQ(s.change_method, "full-read");
    EXPECT_EQ(s.change_why.rfind(src + ": " + c.why, 0), 0u) << s.change_why;
    EXPECT_EQ(s.bytes_read, fs::file_size(src));
    ASSERT_EQ(Content(dst), Content(src));
  }
}

TEST_F(InplaceTest, InATreeTheChangeListIsAskedByThePathBelowTheSource) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  fs::create_directories(src + "/sub");
  fs::create_directories(dst);
  WriteFile(src + "/sub/f", RandomBytes(20 * kBs, 68));
  WriteFile(src + "/g", RandomBytes(20 * kBs, 69));
  Sync(src, dst);
  WriteFileAt(src + "/sub/f", 2 * kBs, RandomBytes(10, 70));
  WriteFile(src + "/new", "n");
  SetMtimeNs(src + "/sub/f", kT0 + 5, 0);
  ChangeLog asked;
  InplaceOptions opts;
  opts.changes = Changes(&asked, {{2 * kBs, 10}});
  InplaceStats s = Sync(src, dst, kBs, opts);
  ASSERT_EQ(asked.asked.size(), 1u) << "g is unchanged (quick check), new is new";
  EXPECT_EQ(asked.asked[0], std::make_pair(std::string("sub/f"), src + "/sub/f"));
  EXPECT_EQ(s.files_by_change_list, 1u);
  EXPECT_EQ(s.change_why, "new: not in the mirror yet");
  EXPECT_EQ(s.bytes_read, kBs + 1u);
  EXPECT_EQ(Describe(dst), Describe(src));
}

TEST_F(InplaceTest, MetadataOnlyChangeKeepsTheMapTrusted) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(10 * kBs, 21));
  Sync(src, dst);
  ASSERT_EQ(::chmod(src.c_str(), 0640), 0);
  ASSERT_EQ(::setxattr(src.c_str(), "user.note", "v", 1, 0), 0);
  InplaceStats s = Sync(src, dst);
  EXPECT_EQ(s.files_skipped, 1u);
  EXPECT_EQ(Stat(dst).st_mode & 07777, 0640u);
  std::vector<std::string> problems;
  InplaceStats again = SyncLogged(src, dst, &problems);
  EXPECT_EQ(again.blockmaps_rebuilt, 0u) << "the map follows the target's new ctime";
  EXPECT_TRUE(problems.empty());
  char v[8];
  EXPECT_EQ(::getxattr(dst.c_str(), "user.note", v, sizeof v), 1);
}

TEST_F(InplaceTest, AllZeroBlocksBecomeHoles) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  // 4 MiB: data, 2 MiB of written (allocated) zeros, data.
  std::string data = RandomBytes(4 << 20, 30);
  std::fill(data.begin() + (1 << 20), data.begin() + (3 << 20), '\0');
  WriteFile(src, data);
  InplaceStats s = Sync(src, dst);
  EXPECT_EQ(s.blocks_written, (2u << 20) / kBs);
  EXPECT_EQ(ReadFile(dst), data);
  EXPECT_LE(AllocatedBytes(dst), (2u << 20) + (64u << 10)) << "the zeros are not allocated";

  // Data turning into zeros is punched out.
  std::fill(data.begin(), data.begin() + (1 << 20), '\0');
  WriteFile(src, data);
  InplaceStats z = Sync(src, dst);
  EXPECT_EQ(z.holes_punched, (1u << 20) / kBs);
  EXPECT_EQ(z.blocks_written, 0u);
  EXPECT_EQ(ReadFile(dst), data);
  EXPECT_LE(AllocatedBytes(dst), (1u << 20) + (64u << 10));

  // Without hole punching they are written as zeros.
  std::string src2 = tmp_ / "src2", dst2 = tmp_ / "dst2";
  WriteFile(src2, RandomBytes(8 * kBs, 31));
  Sync(src2, dst2);
  WriteFile(src2, std::string(8 * kBs, '\0'));
  InplaceStats w = Sync(src2, dst2, kBs, {.punch_holes = false});
  EXPECT_EQ(w.holes_punched, 0u);
  EXPECT_EQ(w.blocks_written, 8u);
  EXPECT_EQ(ReadFile(dst2), ReadFile(src2));
}

// A block device source (a loop device over a file; skipped where losetup is
// unavailable): always read, mirrored as a 0600 file, only changes written.
TEST_F(InplaceTest, BlockDeviceSource) {
  std::string img = tmp_ / "dev.img", dst = tmp_ / "dev.mirror";
  std::string data = RandomBytes(4 << 20, 95);
  std::fill(data.begin() + (1 << 20), data.begin() + (2 << 20), '\0');
  WriteFile(img, data);
  RunResult r = Env::Default()->Run({"losetup", "-f", "--show", img});
  if (r.exit_code != 0) GTEST_SKIP() << "no loop device: " << r.err;
  std::string dev = r.out.substr(0, r.out.find('\n'));
  struct Detach {
    std::string dev;
    ~Detach() { Env::Default()->Run({"losetup", "-d", dev}); }
  } detach{dev};

  InplaceStats s = Sync(dev, dst);
  EXPECT_EQ(Content(dst), data);
  EXPECT_EQ(s.blocks_written, (3u << 20) / kBs);
  EXPECT_EQ(Stat(dst).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadBlockmap(Env::Default(), MapOf(dst)).file_size, 4u << 20);

  // Changed through the device: no quick check for devices, only the
  // changed block is written.
  {
    auto out = Env::Default()->OpenWrite(dev, CreateMode::kExisting);
    out->WriteAt(5 * kBs, RandomBytes(kBs, 96).data(), kBs);
    out->Sync();
    out->Close();
  }
  Env::Default()->Run({"blockdev", "--flushbufs", dev});
  InplaceStats again = Sync(dev, dst);
  EXPECT_EQ(again.files_skipped, 0u);
  EXPECT_EQ(again.blocks_written, 1u);
  EXPECT_EQ(again.blockmaps_rebuilt, 0u);
  EXPECT_EQ(Content(dst), Content(dev));
}

// --- Blockmaps missing, corrupt, stale -------------------------------------------

TEST_F(InplaceTest, DeletedBlockmapIsRebuiltWithAMessage) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(100 * kBs + 5, 40));
  Sync(src, dst);
  ASSERT_EQ(::unlink(MapOf(dst).c_str()), 0);
  std::vector<std::string> problems;
  InplaceStats s = SyncLogged(src, dst, &problems);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(s.blocks_written, 0u) << "the target holds the data already";
  EXPECT_EQ(s.target_bytes_read, 100u * kBs + 5);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("is missing"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("rebuilding"), std::string::npos) << problems[0];
  ReadBlockmap(Env::Default(), MapOf(dst));  // sound again

  InplaceStats next = SyncLogged(src, dst, &problems, kBs, {.full_read = true});
  EXPECT_EQ(next.blockmaps_rebuilt, 0u);
  EXPECT_EQ(next.blocks_written, 0u);
  EXPECT_EQ(next.target_bytes_read, 0u);
  EXPECT_TRUE(problems.empty());
}

TEST_F(InplaceTest, CorruptBlockmapIsDetectedAndRebuilt) {
  // A map read whole at once (under 8 KiB) and one read in steps.
  for (size_t blocks : {50, 300}) {
    std::string src = tmp_ / ("src" + std::to_string(blocks)), dst = tmp_ / ("dst" + std::to_string(blocks));
    WriteFile(src, RandomBytes(blocks * kBs, 41));
    Sync(src, dst);
    const uint64_t map_size = fs::file_size(MapOf(dst));
    ASSERT_EQ(map_size < 8192, blocks == 50) << map_size;
    const uint64_t path_len = BaseName(dst).size();
    // An entry, a header field (block size), the path, the trailer.
    for (uint64_t off : {64 + path_len + 32 * 7 + 5, uint64_t{17}, uint64_t{65}, map_size - 1}) {
      SCOPED_TRACE(std::to_string(blocks) + " blocks, byte " + std::to_string(off));
      XorFileByte(MapOf(dst), off, 0x01);
      EXPECT_THROW(ReadBlockmap(Env::Default(), MapOf(dst)), Error);
      // And the target changed too, where the map can no longer tell.
      XorFileByte(dst, 7 * kBs + 100, 0x80);
      std::vector<std::string> problems;
      InplaceStats s = SyncLogged(src, dst, &problems, kBs, {.full_read = true});
      EXPECT_EQ(s.blockmaps_rebuilt, 1u);
      EXPECT_EQ(s.blocks_written, 1u);
      ASSERT_EQ(problems.size(), 1u);
      EXPECT_NE(problems[0].find("blockmap"), std::string::npos);
      EXPECT_EQ(problems[0].find("does not fit the target"), std::string::npos) << problems[0];
      EXPECT_EQ(ReadFile(dst), ReadFile(src));
      Blockmap m = ReadBlockmap(Env::Default(), MapOf(dst));
      EXPECT_EQ(m.blocks[0], Sha256(ReadFile(src).substr(0, kBs)));
    }
  }
}

TEST_F(InplaceTest, TargetEditedWhileTheMapIsMissingIsRepairedByTheCompare) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(64 * kBs, 42));
  Sync(src, dst);
  ASSERT_EQ(::unlink(MapOf(dst).c_str()), 0);
  XorFileByte(dst, 0, 1);
  XorFileByte(dst, 10 * kBs + 4095, 2);
  XorFileByte(dst, 10 * kBs + 1, 2);
  WriteFileAt(dst, 70 * kBs, "tail");  // longer than the source now
  InplaceStats s = Sync(src, dst);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(s.blocks_written, 2u);
  EXPECT_EQ(ReadFile(dst), ReadFile(src));
}

TEST_F(InplaceTest, TargetEditedBehindTheMapsBackIsNoticed) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(64 * kBs, 43));
  SetMtimeNs(src, kT0, 0);
  Sync(src, dst);
  // Edit the target and put its mtime back: only the ctime tells.
  struct stat before = Stat(dst);
  XorFileByte(dst, 33 * kBs, 4);
  SetMtimeNs(dst, before.st_mtim.tv_sec, before.st_mtim.tv_nsec);
  std::vector<std::string> problems;
  InplaceStats s = SyncLogged(src, dst, &problems);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(s.blocks_written, 1u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("changed after it was written"), std::string::npos) << problems[0];
  EXPECT_EQ(ReadFile(dst), ReadFile(src));
}

TEST_F(InplaceTest, NewBlockSizeRebuildsTheMap) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(64 * kBs, 44));
  Sync(src, dst);
  std::vector<std::string> problems;
  InplaceStats s = SyncLogged(src, dst, &problems, 2 * kBs);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(s.blocks_written, 0u);
  EXPECT_TRUE(Contains(problems, "blocks of 4096 bytes"));
  EXPECT_EQ(ReadBlockmap(Env::Default(), MapOf(dst)).block_size, 2 * kBs);
}

// Records every write step, with its offset, in order.
class OrderEnv final : public EnvWrapper {
 public:
  struct Op {
    std::string kind, path;
    uint64_t offset = 0;
  };
  std::vector<Op> ops;

  OrderEnv() : EnvWrapper(Env::Default()) {}
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode m, mode_t perm) override {
    ops.push_back({"open", p});
    return std::make_unique<File>(this, EnvWrapper::OpenWrite(p, m, perm));
  }
  void Rename(const std::string& a, const std::string& b) override {
    ops.push_back({"rename", b});
    EnvWrapper::Rename(a, b);
  }
  void Remove(const std::string& p) override {
    ops.push_back({"remove", p});
    EnvWrapper::Remove(p);
  }
  void MakeDir(const std::string& p) override {
    ops.push_back({"mkdir", p});
    EnvWrapper::MakeDir(p);
  }
  void SyncDir(const std::string& p) override {
    ops.push_back({"syncdir", p});
    EnvWrapper::SyncDir(p);
  }
  void SyncFileSystem(const std::string& p) override {
    ops.push_back({"syncfs", p});
    EnvWrapper::SyncFileSystem(p);
  }

  int Count(const std::string& kind) const {
    return static_cast<int>(std::count_if(ops.begin(), ops.end(), [&](const Op& o) { return o.kind == kind; }));
  }
  // Index of the first syncfs at or after from; -1 if none.
  int Barrier(int from) const {
    for (int i = std::max(from, 0); i < static_cast<int>(ops.size()); i++)
      if (ops[i].kind == "syncfs") return i;
    return -1;
  }

  // Index of the first (last) op of one of kinds on path at or after from; -1 if none.
  int Find(const std::string& path, std::set<std::string> kinds, int from = 0, bool last = false,
           int64_t offset = -1) const {
    int found = -1;
    for (int i = from; i < static_cast<int>(ops.size()); i++) {
      if (ops[i].path != path || !kinds.count(ops[i].kind)) continue;
      if (offset >= 0 && ops[i].offset != static_cast<uint64_t>(offset)) continue;
      found = i;
      if (!last) break;
    }
    return found;
  }

 private:
  class File final : public WritableFileWrapper {
   public:
    File(OrderEnv* env, std::unique_ptr<WritableFile> base) : WritableFileWrapper(std::move(base)), env_(env) {}
    void Append(const void* d, size_t n) override {
      env_->ops.push_back({"write", path()});
      target()->Append(d, n);
    }
    void WriteAt(uint64_t off, const void* d, size_t n) override {
      env_->ops.push_back({"write", path(), off});
      target()->WriteAt(off, d, n);
    }
    void Truncate(uint64_t size) override {
      env_->ops.push_back({"truncate", path(), size});
      target()->Truncate(size);
    }
    void Sync() override {
      env_->ops.push_back({"sync", path()});
      target()->Sync();
    }
    bool PunchHole(uint64_t off, uint64_t len) override {
      env_->ops.push_back({"punch", path(), off});
      return target()->PunchHole(off, len);
    }

   private:
    OrderEnv* env_;
  };
};

// The order that keeps a map from claiming what is not on disk, after a
// crash of the process or of the machine: a map that could be trusted is
// invalidated durably before its file changes (the state word, then a
// syncfs before the copy); a
// map that did not fit is emptied durably; a map made where none was needs
// no fsync (it has no header on disk). The data reaches the disk by a
// syncfs of the target (no fsync of the file), and only after that barrier
// is the header that completes the map written; one more syncfs makes it
// durable before the sync returns.
TEST_F(InplaceTest, MapIsInvalidatedBeforeAndCompletedAfterTheDataIsDurable) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  const std::string map = MapOf(dst);
  WriteFile(src, RandomBytes(30 * kBs, 90));
  Sync(src, dst);
  WriteFileAt(src, 3 * kBs, RandomBytes(kBs, 91));
  WriteFileAt(src, 30 * kBs, RandomBytes(100, 92));  // grows
  SetMtimeNs(src, kT0, 3);

  for (const std::string how : {"update", "stale", "rebuild"}) {
    SCOPED_TRACE(how);
    if (how == "stale") XorFileByte(dst, 7 * kBs, 1);  // the map no longer fits
    if (how == "rebuild") {
      ASSERT_EQ(::unlink(map.c_str()), 0);
      XorFileByte(dst, 7 * kBs, 1);
    }
    OrderEnv env;
    InplaceStats s = SyncInPlace(&env, src, dst, kBs, {}, &log_);
    ASSERT_GT(s.blocks_written, 0u);
    const int first_data = env.Find(dst, {"write", "truncate", "punch"});
    const int last_data = env.Find(dst, {"write", "truncate", "punch"}, 0, true);
    ASSERT_GE(first_data, 0);
    if (how == "update") {  // the state word, then a barrier
      const int invalid = env.Find(map, {"write"}, 0, false, 12);
      ASSERT_GE(invalid, 0);
      EXPECT_LT(env.Barrier(invalid), first_data);
      EXPECT_EQ(env.Find(map, {"sync"}), -1);
    } else if (how == "stale") {  // emptied, fsynced
      const int emptied = env.Find(map, {"open"});
      ASSERT_GE(emptied, 0);
      EXPECT_LT(env.Find(map, {"sync"}, emptied), first_data);
    } else {  // new: no fsync at all
      EXPECT_EQ(env.Find(map, {"sync"}), -1);
    }
    EXPECT_EQ(env.Find(dst, {"sync"}), -1) << "no fsync per file: the barrier makes it durable";
    // The data durable (a syncfs) before the header that completes the map.
    const int barrier = env.Barrier(last_data);
    const int header = env.Find(map, {"write"}, first_data, false, 0);
    ASSERT_GE(barrier, 0);
    EXPECT_GT(header, barrier);
    EXPECT_GT(env.Barrier(header), header) << "the completed map is durable before the sync returns";
    EXPECT_EQ(Content(dst), Content(src));
    EXPECT_EQ(StaleClaims(dst, map), "");
    EXPECT_NO_THROW(ReadBlockmap(Env::Default(), map));
    XorFileByte(src, 0, 1);
    SetMtimeNs(src, kT0, how == "update" ? 4 : 5);
  }
}

// A tree of new files costs no fsync per file: two syncfs in all (the
// barrier before the maps are completed, and the one that makes them
// durable). A later sync that changes a few files costs one more syncfs
// (their maps' invalidation made durable before any of them changes), and
// no fsync either. Every map's header comes after a barrier that follows
// the last change of its file.
TEST_F(InplaceTest, ATreeIsMadeDurableByBarriersNotByAnFsyncPerFile) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  ASSERT_TRUE(fs::create_directory(src));
  ASSERT_TRUE(fs::create_directory(src + "/sub"));
  std::vector<std::string> rels;
  for (int i = 0; i < 40; i++) {
    const std::string rel = (i % 2 ? "sub/f" : "f") + std::to_string(i);
    WriteFile(src + "/" + rel, RandomBytes(100 + i * 700, 200 + i));
    SetMtimeNs(src + "/" + rel, kT0, i);
    rels.push_back(rel);
  }
  auto check_order = [&](const OrderEnv& env, const std::string& rel) {
    SCOPED_TRACE(rel);
    const std::string file = dst + "/" + rel, map = BlockmapPath(dst, rel);
    const int last_data = env.Find(file, {"write", "truncate", "punch"}, 0, true);
    if (last_data < 0) return;
    const int barrier = env.Barrier(last_data);
    ASSERT_GE(barrier, 0);
    EXPECT_GT(env.Find(map, {"write"}, env.Find(file, {"write", "truncate", "punch"}), false, 0), barrier);
    EXPECT_EQ(StaleClaims(file, map), "");
    EXPECT_NO_THROW(ReadBlockmap(Env::Default(), map));
  };

  OrderEnv day1;
  SyncInPlace(&day1, src, dst, kBs, {}, &log_);
  EXPECT_EQ(day1.Count("sync"), 0);
  EXPECT_EQ(day1.Count("syncdir"), 0);
  // Before the completed maps, after them (before the index that names
  // them), and the last one.
  EXPECT_EQ(day1.Count("syncfs"), 3);
  for (const auto& rel : rels) check_order(day1, rel);
  EXPECT_EQ(Describe(dst), Describe(src));

  for (int i : {3, 10, 17}) {
    WriteFileAt(src + "/" + rels[i], 50, "changed");
    SetMtimeNs(src + "/" + rels[i], kT0 + 1, i);
  }
  OrderEnv day2;
  InplaceStats s = SyncInPlace(&day2, src, dst, kBs, {}, &log_);
  EXPECT_EQ(s.files_skipped, rels.size() - 3);
  EXPECT_EQ(day2.Count("sync"), 0);
  EXPECT_EQ(day2.Count("syncfs"), 4);
  for (int i : {3, 10, 17}) {
    const std::string file = dst + "/" + rels[i], map = BlockmapPath(dst, rels[i]);
    const int invalid = day2.Find(map, {"write"}, 0, false, 12);
    ASSERT_GE(invalid, 0) << rels[i];
    EXPECT_LT(day2.Barrier(invalid), day2.Find(file, {"write"})) << rels[i];
    check_order(day2, rels[i]);
  }
  EXPECT_EQ(Describe(dst), Describe(src));

  // A source ctime is recorded once it is 2 s old: a sync that first finds
  // it so writes the index anew (under TSan, day 3 came that late for the
  // files day 2 changed). Settled and recorded first, so that day 3 does
  // not depend on how fast this machine is.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  SyncInPlace(Env::Default(), src, dst, kBs, {}, &log_);
  OrderEnv day3;  // nothing changed: nothing written, nothing synced
  SyncInPlace(&day3, src, dst, kBs, {}, &log_);
  EXPECT_EQ(day3.ops.size(), 0u);
  for (const auto& op : day3.ops) ADD_FAILURE() << "day 3: " << op.kind << " " << op.path;
}

// Day 1 of a tree: the map of a small file (up to 256 blocks) is not made
// while its file is copied but by its completion, after the barrier that
// made the file durable: one open (O_EXCL, 0600) and one write of the whole
// map. A bigger file's map is created before its copy and its entries are
// written as the copy goes, as before; its header still after the barrier.
// Both are sound, and the next sync trusts them.
TEST_F(InplaceTest, ASmallNewMapIsMadeWholeAfterTheBarrier) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  ASSERT_TRUE(fs::create_directory(src));
  WriteFile(src + "/small", RandomBytes(10 * kBs + 7, 300));
  WriteFile(src + "/edge", RandomBytes(256 * kBs, 301));      // 256 blocks: the largest made later
  WriteFile(src + "/big", RandomBytes(256 * kBs + 1, 302));   // 257
  ASSERT_TRUE(fs::create_directory(dst));
  OrderEnv env;
  InplaceStats s = SyncInPlace(&env, src, dst, kBs, {}, &log_);
  EXPECT_EQ(s.errors, 0u);
  for (const std::string rel : {"small", "edge", "big"}) {
    SCOPED_TRACE(rel);
    const std::string file = dst + "/" + rel, map = BlockmapPath(dst, rel);
    const int last_data = env.Find(file, {"write", "truncate", "punch"}, 0, true);
    ASSERT_GE(last_data, 0);
    const int barrier = env.Barrier(last_data);
    ASSERT_GE(barrier, 0);
    const int opened = env.Find(map, {"open"});
    ASSERT_GE(opened, 0);
    const int header = env.Find(map, {"write"}, 0, false, 0);
    EXPECT_GT(header, barrier) << "the header only after the file is durable";
    int writes = 0;
    for (const auto& op : env.ops) writes += op.path == map && op.kind == "write";
    if (rel == "big") {
      EXPECT_LT(opened, last_data) << "made before the copy, its entries written as it goes";
      EXPECT_GE(writes, 3);
    } else {
      EXPECT_GT(opened, barrier) << "made by its completion";
      EXPECT_EQ(writes, 1) << "written whole at once";
    }
    EXPECT_EQ(env.Find(map, {"sync"}), -1) << "no fsync of a new map";
    EXPECT_EQ(Stat(map).st_mode & 07777, 0600u);
    EXPECT_EQ(StaleClaims(file, map), "");
    EXPECT_EQ(ReadFile(file), ReadFile(src + "/" + rel));
  }
  InplaceStats again = Sync(src, dst);
  EXPECT_EQ(again.blockmaps_rebuilt, 0u);
  EXPECT_EQ(again.files_skipped, 3u);
  EXPECT_EQ(again.bytes_read, 0u) << "every map trusted";
}

// The map index is gone from the disk before the data of any existing
// mirror file changes: removed before the barrier that precedes the queued
// copies, or removed and its directory fsynced before a file copied at once
// (a compare) is written. The new index is written after the last barrier
// that made the files durable, and made durable by the final one.
TEST_F(InplaceTest, TheIndexIsRemovedDurablyBeforeAnyFileChanges) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  ASSERT_TRUE(fs::create_directory(src));
  for (int i = 0; i < 10; i++) {
    WriteFile(src + "/f" + std::to_string(i), RandomBytes(3 * kBs, 300 + i));
    SetMtimeNs(src + "/f" + std::to_string(i), kT0, i);
  }
  Sync(src, dst);
  const std::string index = IndexOf(dst);
  ASSERT_TRUE(fs::exists(index));

  for (const std::string how : {"queued", "compare"}) {
    SCOPED_TRACE(how);
    const std::string file = dst + "/f4";
    if (how == "queued") {
      WriteFileAt(src + "/f4", 10, "changed");
      SetMtimeNs(src + "/f4", kT0 + 1, 0);
    } else {
      XorFileByte(file, 10, 1);  // the target edited: a compare
    }
    OrderEnv env;
    InplaceStats s = SyncInPlace(&env, src, dst, kBs, {}, &log_);
    EXPECT_EQ(s.blocks_written, 1u);
    const int first_data = env.Find(file, {"write", "truncate", "punch"});
    const int removed = env.Find(index, {"remove"});
    ASSERT_GE(first_data, 0);
    ASSERT_GE(removed, 0);
    EXPECT_LT(removed, first_data);
    // Durably gone before any map is touched: a sync stopped between the
    // map's invalidation and the copy leaves no index to trust that map.
    const int synced = env.Find(DirName(index), {"syncdir"}, removed);
    ASSERT_GE(synced, 0);
    const int first_map = env.Find(BlockmapPath(dst, "f4"), {"write"});
    ASSERT_GE(first_map, 0);
    EXPECT_LT(synced, first_map);
    // And the new index comes after a barrier that follows the last map write.
    const int last_map = env.Find(BlockmapPath(dst, "f4"), {"write"}, 0, true);
    EXPECT_LT(env.Barrier(last_map), env.Find(index, {"rename"}));
    if (how == "queued") {
      EXPECT_LT(env.Barrier(removed), first_data);
    } else {
      const int synced = env.Find(DirName(index), {"syncdir"}, removed);
      ASSERT_GE(synced, 0);
      EXPECT_LT(synced, first_data);
    }
    const int renamed = env.Find(index, {"rename"});
    ASSERT_GE(renamed, 0);
    EXPECT_GT(renamed, env.Barrier(env.Find(file, {"write"}, 0, true)));
    EXPECT_GE(env.Barrier(renamed), 0) << "the new index is durable before the sync returns";
    EXPECT_EQ(Describe(dst), Describe(src));
    EXPECT_EQ(IndexStaleClaims(dst, {src}, kBs), "");
    MapIndex m;
    EXPECT_EQ(ReadMapIndex(Env::Default(), index, kBs, &m), "");
    EXPECT_EQ(m.size(), 10u);
  }
}

// --- Trees ---------------------------------------------------------------------

class InplaceTreeTest : public InplaceTest {
 protected:
  void SetUp() override {
    src_ = tmp_ / "src";
    dst_ = tmp_ / "dst";
  }
  void Mkdir(const std::string& rel, mode_t mode = 0755) {
    ASSERT_EQ(::mkdir((src_ + "/" + rel).c_str(), mode), 0) << rel;
    ASSERT_EQ(::chmod((src_ + "/" + rel).c_str(), mode), 0);
  }
  std::string S(const std::string& rel) { return src_ + "/" + rel; }
  std::string D(const std::string& rel) { return dst_ + "/" + rel; }

  // src/
  //   a.bin            random, 0640 1234:5678, xattr user.a
  //   sparse.img       32 MiB, mostly hole
  //   empty
  //   link -> a.bin
  //   hard1, sub/hard2 one inode
  //   fifo, null (char device 1:3), sock
  //   sub/ 0750        deep/x.txt
  //   gone/            y, z (deleted later)
  void MakeTree() {
    Mkdir("");
    Mkdir("sub", 0750);
    Mkdir("sub/deep");
    Mkdir("gone");
    WriteFile(S("a.bin"), RandomBytes(50000, 50));
    ASSERT_EQ(::chown(S("a.bin").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::chmod(S("a.bin").c_str(), 0640), 0);
    ASSERT_EQ(::lsetxattr(S("a.bin").c_str(), "user.a", "1", 1, 0), 0);
    WriteFile(S("sparse.img"), "");
    WriteFileAt(S("sparse.img"), 3 << 20, RandomBytes(5000, 51));
    ASSERT_EQ(::truncate(S("sparse.img").c_str(), 32 << 20), 0);
    WriteFile(S("empty"), "");
    ASSERT_EQ(::symlink("a.bin", S("link").c_str()), 0);
    WriteFile(S("hard1"), RandomBytes(9000, 52));
    ASSERT_EQ(::link(S("hard1").c_str(), S("sub/hard2").c_str()), 0);
    ASSERT_EQ(::mkfifo(S("fifo").c_str(), 0620), 0);
    ASSERT_EQ(::mknod(S("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mknod(S("sock").c_str(), S_IFSOCK | 0600, 0), 0);
    WriteFile(S("sub/deep/x.txt"), "x\n");
    WriteFile(S("gone/y"), RandomBytes(7000, 53));
    WriteFile(S("gone/z"), "z");
    SetMtimeNs(S("sub/deep/x.txt"), kT0, 123456789);
    SetMtimeNs(S("link"), kT0 + 1, 5);
    SetMtimeNs(S("sub"), kT0 + 2, 7);
    SetMtimeNs(src_, kT0 + 3, 9);
  }

  std::string src_, dst_;
};

TEST_F(InplaceTreeTest, MirrorsEveryKindOfEntryAndItsMetadata) {
  MakeTree();
  InplaceStats s = Sync(src_, dst_);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  EXPECT_EQ(s.files, 8u);   // a.bin sparse.img empty hard1 hard2 x.txt y z
  EXPECT_EQ(s.dirs, 4u);    // the root, sub, sub/deep, gone
  EXPECT_EQ(s.other, 4u);   // link fifo null sock
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(Stat(D("hard1")).st_ino, Stat(D("sub/hard2")).st_ino);
  EXPECT_EQ(CountMaps(dst_), 7u) << "one map per inode";
  EXPECT_LE(AllocatedBytes(D("sparse.img")), 64u << 10);
  EXPECT_TRUE(log_.problems().empty()) << log_.problems()[0];

  // Nothing changed: nothing written, nothing read.
  InplaceStats again = Sync(src_, dst_);
  EXPECT_EQ(again.files_skipped, 7u);
  EXPECT_EQ(again.bytes_read + again.bytes_written + again.map_bytes_written + again.deleted, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// Records the metadata calls a sync makes by path.
class MetadataPathEnv final : public EnvWrapper {
 public:
  MetadataPathEnv() : EnvWrapper(Env::Default()) {}
  std::set<std::string> touched;
  bool SetOwner(const std::string& p, uid_t uid, gid_t gid) override {
    touched.insert(p);
    return EnvWrapper::SetOwner(p, uid, gid);
  }
  void SetModeNoFollow(const std::string& p, mode_t mode) override {
    touched.insert(p);
    EnvWrapper::SetModeNoFollow(p, mode);
  }
  void SetTimes(const std::string& p, std::optional<int64_t> atime_ns, int64_t mtime_ns) override {
    touched.insert(p);
    EnvWrapper::SetTimes(p, atime_ns, mtime_ns);
  }
  void SetXattr(const std::string& p, const std::string& name, const std::string& value) override {
    touched.insert(p);
    EnvWrapper::SetXattr(p, name, value);
  }
  Xattrs ReadXattrs(const std::string& p) override {
    touched.insert(p);
    return EnvWrapper::ReadXattrs(p);
  }
};

// A file the sync has just written gets its owner, mode, xattrs and mtime
// through the descriptor it wrote with: no path of it looked up again for
// them (five lookups of a long path a file, in a tree of small files).
TEST_F(InplaceTreeTest, AWrittenFileGetsItsMetadataThroughItsDescriptor) {
  MakeTree();
  MetadataPathEnv env;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &env);
  EXPECT_EQ(s.warnings, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  for (const char* f : {"a.bin", "sparse.img", "empty", "hard1", "sub/deep/x.txt", "gone/y"})
    EXPECT_FALSE(env.touched.count(D(f))) << f;
  EXPECT_TRUE(env.touched.count(D("sub"))) << "a directory's, by path as before";
}

TEST_F(InplaceTreeTest, FollowsChangesAndDeletesWhatVanished) {
  MakeTree();
  Sync(src_, dst_);
  const ino_t a_ino = Stat(D("a.bin")).st_ino;
  // Vanish a directory, a file; types change both ways; a symlink moves;
  // a hard link breaks and a new one forms; metadata changes.
  fs::remove_all(S("gone"));
  ASSERT_EQ(::unlink(S("empty").c_str()), 0);
  ASSERT_EQ(::unlink(S("fifo").c_str()), 0);
  Mkdir("fifo");
  WriteFile(S("fifo/inside"), "now a directory");
  fs::remove_all(S("sub/deep"));
  WriteFile(S("sub/deep"), "now a file");
  ASSERT_EQ(::unlink(S("link").c_str()), 0);
  ASSERT_EQ(::symlink("sparse.img", S("link").c_str()), 0);
  ASSERT_EQ(::unlink(S("sub/hard2").c_str()), 0);
  WriteFile(S("sub/hard2"), "separate now");
  ASSERT_EQ(::link(S("a.bin").c_str(), S("sub/a-again").c_str()), 0);
  ASSERT_EQ(::lremovexattr(S("a.bin").c_str(), "user.a"), 0);
  ASSERT_EQ(::lsetxattr(S("a.bin").c_str(), "user.b", "2", 1, 0), 0);
  ASSERT_EQ(::chmod(S("sub").c_str(), 0700), 0);
  WriteFileAt(S("a.bin"), 4096, "changed");
  SetMtimeNs(S("sub"), kT0 + 5, 0);
  SetMtimeNs(src_, kT0 + 6, 0);

  InplaceStats s = Sync(src_, dst_);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  EXPECT_FALSE(fs::exists(D("gone")));
  // gone, y, z; empty; the fifo; deep and x.txt; the old link; hard2 (its
  // inode now belongs to hard1 alone).
  EXPECT_EQ(s.deleted, 3u + 1 + 1 + 2 + 1 + 1);
  EXPECT_EQ(Stat(D("a.bin")).st_ino, a_ino) << "changed in place";
  EXPECT_EQ(Stat(D("a.bin")).st_ino, Stat(D("sub/a-again")).st_ino);
  EXPECT_NE(Stat(D("hard1")).st_ino, Stat(D("sub/hard2")).st_ino);
  EXPECT_EQ(ReadFile(D("hard1")), ReadFile(S("hard1"))) << "the broken link did not clobber its old partner";
  // The maps of empty, x.txt, y and z went with them; a.bin, sparse.img,
  // hard1, sub/hard2, sub/deep and fifo/inside have one each.
  EXPECT_EQ(s.maps_deleted, 4u);
  EXPECT_EQ(CountMaps(dst_), 6u);

  InplaceStats again = Sync(src_, dst_, kBs, {.full_read = true});
  EXPECT_EQ(again.blocks_written + again.holes_punched + again.deleted + again.blockmaps_rebuilt, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

TEST_F(InplaceTreeTest, LeavesTheMirrorOfAnUnreadableEntryAlone) {
  Mkdir("");
  WriteFile(S("bad"), RandomBytes(5 * kBs, 80));
  WriteFile(S("good"), RandomBytes(5 * kBs, 81));
  WriteFile(S("vanishing"), "v");
  WriteFile(S("unstatable"), RandomBytes(3 * kBs, 82));
  Sync(src_, dst_);
  const std::string old_bad = ReadFile(D("bad"));
  const std::string old_unstatable = ReadFile(D("unstatable"));
  for (const char* name : {"bad", "good", "unstatable"}) {
    WriteFileAt(S(name), 0, "new");
    SetMtimeNs(S(name), kT0, 1);
  }
  ASSERT_EQ(::unlink(S("vanishing").c_str()), 0);
  WriteFile(S(kBlockmapDir), "a source entry with the map directory's name");

  // The real environment, except that one path cannot be opened for
  // reading and another not even lstat'ed (the walk asks the Env).
  test::HookEnv env;
  env.before_read = [bad = S("bad")](const std::string& p) {
    if (p == bad) ThrowIo("open " + p, EIO);
  };
  env.before_status = [unstatable = S("unstatable")](const std::string& p) {
    if (p == unstatable) ThrowIo("stat " + p, EIO);
  };
  Logger log(LogLevel::kError, false);
  InplaceStats s = SyncInPlace(&env, src_, dst_, kBs, {}, &log);
  EXPECT_EQ(s.errors, 3u);
  EXPECT_TRUE(Contains(log.problems(), "open " + S("bad") + ": Input/output error (left as it was in the mirror)"));
  EXPECT_TRUE(Contains(log.problems(),
                       "stat " + S("unstatable") + ": Input/output error (left as it was in the mirror)"));
  EXPECT_TRUE(Contains(log.problems(), "may not be named"));
  EXPECT_TRUE(Contains(log.problems(), "old blockmaps"));
  EXPECT_EQ(ReadFile(D("bad")), old_bad);
  EXPECT_EQ(ReadFile(D("unstatable")), old_unstatable);
  EXPECT_NO_THROW(ReadBlockmap(Env::Default(), BlockmapPath(dst_, "bad"))) << "its map untouched";
  EXPECT_EQ(ReadFile(D("good")), ReadFile(S("good")));
  EXPECT_FALSE(fs::exists(D("vanishing")));
  EXPECT_EQ(CountMaps(dst_), 4u) << "no sweep after an error";
  EXPECT_TRUE(fs::is_directory(D(kBlockmapDir)));

  ASSERT_EQ(::unlink(S(kBlockmapDir).c_str()), 0);
  InplaceStats ok = Sync(src_, dst_);
  EXPECT_EQ(ok.errors, 0u);
  EXPECT_EQ(ok.maps_deleted, 1u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

TEST_F(InplaceTreeTest, ZfsControlDirectoryIsNeitherMirroredNorDeleted) {
  Mkdir("");
  Mkdir(".zfs");
  WriteFile(S(".zfs/snapshot-ish"), "not data");
  WriteFile(S("f"), "f");
  ASSERT_EQ(::mkdir(dst_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(D(".zfs").c_str(), 0755), 0);
  WriteFile(D(".zfs/keep"), "the target's own");
  ASSERT_EQ(::mkdir(D("old").c_str(), 0755), 0);
  InplaceStats s = Sync(src_, dst_);
  EXPECT_EQ(s.deleted, 1u);  // old
  EXPECT_EQ(ReadFile(D(".zfs/keep")), "the target's own");
  EXPECT_FALSE(fs::exists(D(".zfs/snapshot-ish")));
  EXPECT_EQ(ReadFile(D("f")), "f");
}

TEST_F(InplaceTreeTest, RefusesOverlapsAndMismatchedKinds) {
  MakeTree();
  auto kind = [&](const std::string& s, const std::string& d, uint32_t bs = kBs) {
    try {
      Sync(s, d, bs);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kOther;
  };
  EXPECT_EQ(kind(src_, S("sub/mirror")), ErrorKind::kConfig);
  EXPECT_EQ(kind(S("sub"), src_), ErrorKind::kConfig);
  EXPECT_EQ(kind(src_, src_), ErrorKind::kConfig);
  WriteFile(tmp_ / "f", "f");
  EXPECT_EQ(kind(src_, tmp_ / "f"), ErrorKind::kConfig) << "a tree onto a file";
  ASSERT_EQ(::mkdir((tmp_ / "d").c_str(), 0755), 0);
  EXPECT_EQ(kind(tmp_ / "f", tmp_ / "d"), ErrorKind::kConfig) << "a file onto a directory";
  EXPECT_EQ(kind(tmp_ / "f", tmp_ / "g", 1000), ErrorKind::kConfig);
  EXPECT_EQ(kind(tmp_ / "missing", tmp_ / "g"), ErrorKind::kNotFound);
  EXPECT_FALSE(fs::exists(S("sub/mirror")));
  EXPECT_FALSE(fs::exists(tmp_ / "g"));
}

// A symlink where the sink keeps its own file or directory (planted on a
// target disk) is an error naming it; nothing it points to is touched.
TEST_F(InplaceTest, PlantedSymlinksAreRefusedAndNotWrittenThrough) {
  WriteFile(tmp_ / "src.img", RandomBytes(3 * kBs + 5, 7));
  ASSERT_EQ(::mkdir((tmp_ / "outside").c_str(), 0755), 0);
  WriteFile(tmp_ / "outside/victim", "victim");
  const std::string outside = DescribeTree(tmp_ / "outside");
  ASSERT_EQ(::mkdir((tmp_ / "t").c_str(), 0755), 0);
  const std::string dst = tmp_ / "t/disk";
  auto refused = [&](const std::string& planted) {
    try {
      Sync(tmp_ / "src.img", dst);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
      EXPECT_NE(std::string(e.what()).find(planted), std::string::npos) << e.what();
      return true;
    }
    return false;
  };
  // The mirror file itself.
  ASSERT_EQ(::symlink((tmp_ / "outside/victim").c_str(), dst.c_str()), 0);
  EXPECT_TRUE(refused(dst));
  EXPECT_EQ(ReadFile(tmp_ / "outside/victim"), "victim");
  ASSERT_EQ(::unlink(dst.c_str()), 0);
  // The blockmap directory.
  const std::string map_dir = JoinPath(tmp_ / "t", kBlockmapDir);
  ASSERT_EQ(::symlink((tmp_ / "outside").c_str(), map_dir.c_str()), 0);
  EXPECT_TRUE(refused(map_dir));
  ASSERT_EQ(::unlink(map_dir.c_str()), 0);
  // The map, once the mirror exists.
  Sync(tmp_ / "src.img", dst);
  const std::string map = MapOf(dst);
  ASSERT_EQ(::unlink(map.c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "outside/victim").c_str(), map.c_str()), 0);
  EXPECT_TRUE(refused(map));
  EXPECT_EQ(ReadFile(tmp_ / "outside/victim"), "victim");
  EXPECT_EQ(DescribeTree(tmp_ / "outside"), outside) << "nothing changed outside";
}

TEST_F(InplaceTest, DirRemoveKeepsWhatSymlinksPointTo) {
  ASSERT_EQ(::mkdir((tmp_ / "outside").c_str(), 0755), 0);
  WriteFile(tmp_ / "outside/victim", "victim");
  fs::create_directories(tmp_ / "gone/a/b");
  WriteFile(tmp_ / "gone/a/b/f", "f");
  ASSERT_EQ(::symlink((tmp_ / "outside").c_str(), (tmp_ / "gone/a/link").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "outside/victim").c_str(), (tmp_ / "gone/flink").c_str()), 0);
  Dir top = Dir::Open(tmp_.path());
  EXPECT_EQ(top.Remove("gone"), 6u);
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmp_ / "gone")));
  EXPECT_EQ(ReadFile(tmp_ / "outside/victim"), "victim");
  EXPECT_EQ(top.Remove("gone"), 0u);
  // A symlink as the name itself: the link goes, not what it points to.
  ASSERT_EQ(::symlink((tmp_ / "outside").c_str(), (tmp_ / "l").c_str()), 0);
  EXPECT_EQ(top.Remove("l"), 1u);
  EXPECT_EQ(ReadFile(tmp_ / "outside/victim"), "victim");
}

TEST_F(InplaceTreeTest, OneSyncAtATime) {
  MakeTree();
  Sync(src_, dst_);
  auto lock = Env::Default()->Lock(D(std::string(kBlockmapDir) + "/lock"), LockMode::kExclusive);
  try {
    Sync(src_, dst_);
    FAIL() << "a second sync ran";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kLocked);
  }
}

// --- The map index ---------------------------------------------------------------

// Counts the blockmaps a sync opens or stats, and what it reads of the index.
class MapCountEnv final : public EnvWrapper {
 public:
  MapCountEnv() : EnvWrapper(Env::Default()) {}
  // map_dir_lists: the map directories (XX) listed; map_top_lists: the
  // top of the map root.
  int map_opens = 0, map_stats = 0, index_reads = 0, map_dir_lists = 0, map_top_lists = 0, map_write_opens = 0;
  std::vector<std::string> ListDir(const std::string& p) override {
    if (EndsWith(p, kBlockmapDir)) {
      map_top_lists++;
    } else if (p.find(kBlockmapDir) != std::string::npos) {
      map_dir_lists++;
    }
    return EnvWrapper::ListDir(p);
  }
  std::unique_ptr<ReadableFile> OpenRead(const std::string& p) override {
    if (EndsWith(p, ".map")) map_opens++;
    if (EndsWith(p, std::string("/") + kMapIndexName)) index_reads++;
    return EnvWrapper::OpenRead(p);
  }
  FileStatus Status(const std::string& p) override {
    if (EndsWith(p, ".map")) map_stats++;
    return EnvWrapper::Status(p);
  }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode mode, mode_t perm = 0600) override {
    if (EndsWith(p, ".map")) map_write_opens++;
    return EnvWrapper::OpenWrite(p, mode, perm);
  }
};

// Day 1 opens each map once: it is created where this sync made the map
// directory (no lstat first: nothing else can be there), and completed
// through the descriptor still open, or (a small one) made whole by its
// completion. The index records each from that descriptor: no map is
// lstat'ed but a restamped one. (Before: two opens and two lstats a map.)
TEST_F(InplaceTreeTest, AFirstSyncOpensEachMapOnceAndLooksForNone) {
  MakeTree();
  MapCountEnv day1;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &day1);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  ASSERT_EQ(CountMaps(dst_), 7u);
  // And hard1's once more: its second name (sub/hard2) moved its file's
  // ctime, so its map is restamped (RestampRelinkedMaps).
  EXPECT_EQ(day1.map_write_opens, 7 + 1);
  // The index records each map as the descriptor its completion was
  // written through says; only the restamped one is lstat'ed for it.
  EXPECT_EQ(day1.map_stats, 1) << "the index's record of hard1's restamped map";
  EXPECT_EQ(IndexStaleClaims(dst_, {src_}, kBs), "");
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "");
  ASSERT_EQ(index.size(), 7u);
  for (const Blockmap& m : index.records())
    EXPECT_TRUE(MapFileUnchanged(m, Env::Default()->Status(BlockmapPath(dst_, m.path))))
        << m.path << ": the index's record of the map is not its lstat";
  for (const char* rel : {"a.bin", "sparse.img", "sub/deep/x.txt"})
    EXPECT_EQ(StaleClaims(D(rel), BlockmapPath(dst_, rel)), "") << rel;
  MapCountEnv day2;
  InplaceStats again = Sync(src_, dst_, kBs, {}, &day2);
  EXPECT_EQ(again.blockmaps_rebuilt, 0u) << "every map complete and trusted";
  EXPECT_EQ(again.files_skipped, 7u) << "all but hard1's second name";
  EXPECT_EQ(day2.map_opens, 0) << "the index tells every file: each map as it recorded";
}

// An unchanged tree is told from the index alone: no map is opened or
// stat'ed, nothing written. Without the index (an older target), the maps
// are read as before and the index is written for the next sync.
TEST_F(InplaceTreeTest, TheIndexTellsUnchangedFilesWithoutReadingTheirMaps) {
  MakeTree();
  Sync(src_, dst_);
  ASSERT_TRUE(fs::exists(IndexOf(dst_)));
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "");
  EXPECT_EQ(index.size(), 7u) << "one entry per map";
  const Blockmap* x = index.Find("sub/deep/x.txt");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->source_mtime_ns, kT0 * 1000000000 + 123456789);
  EXPECT_EQ(x->target_ino, Stat(D("sub/deep/x.txt")).st_ino);

  MapCountEnv day2;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &day2);
  EXPECT_EQ(s.files_skipped, 7u);
  EXPECT_EQ(s.bytes_read + s.bytes_written + s.map_bytes_written + s.deleted, 0u);
  EXPECT_EQ(day2.map_opens, 0);
  EXPECT_EQ(day2.map_stats, 7) << "one lstat per map: the index is used only while the map is as it recorded";
  EXPECT_EQ(day2.index_reads, 1);
  EXPECT_EQ(day2.map_dir_lists, 0) << "an exact index: no map directory listed";

  Env::Default()->Remove(IndexOf(dst_));
  MapCountEnv old_target;
  s = Sync(src_, dst_, kBs, {}, &old_target);
  EXPECT_EQ(s.files_skipped, 7u);
  EXPECT_EQ(s.blockmaps_rebuilt, 0u);
  EXPECT_EQ(old_target.map_opens, 7);
  MapIndex again;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &again), "");
  EXPECT_EQ(again.size(), 7u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// The sweep lists the map directories only when there is no exact index to
// say what is there (here a map left over, and no index). With one, a file
// vanished has its map deleted by name, and a map made (the index removed
// on disk first, so that a crash cannot leave it exact) is known to this
// sync: nothing listed.
TEST_F(InplaceTreeTest, TheMapDirectoriesAreListedOnlyWhenTheIndexCannotSay) {
  MakeTree();
  Sync(src_, dst_);
  bool exact = false;
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index, &exact), "");
  EXPECT_TRUE(exact);

  Env::Default()->Remove(S("gone/z"));
  MapCountEnv vanished;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &vanished);
  EXPECT_EQ(s.maps_deleted, 1u);
  EXPECT_EQ(vanished.map_dir_lists, 0);
  EXPECT_EQ(vanished.map_top_lists, 1) << "the top, for temporaries of the index";
  EXPECT_EQ(CountMaps(dst_), 6u);
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index, &exact), "");
  EXPECT_TRUE(exact);
  EXPECT_EQ(index.size(), 6u);

  WriteFile(S("new"), "new");
  OrderEnv created;
  SyncInPlace(&created, src_, dst_, kBs, {}, &log_);
  const int removed = created.Find(IndexOf(dst_), {"remove"});
  ASSERT_GE(removed, 0);
  EXPECT_LT(removed, created.Find(BlockmapPath(dst_, "new"), {"open"})) << "the index goes before the new map";
  EXPECT_EQ(CountMaps(dst_), 7u);

  // One file gone and one new: as many live maps as the index has, but not
  // the same ones.
  Env::Default()->Remove(S("new"));
  WriteFile(S("newer"), "newer");
  MapCountEnv both;
  s = Sync(src_, dst_, kBs, {}, &both);
  EXPECT_EQ(s.maps_deleted, 1u);
  EXPECT_EQ(both.map_dir_lists, 0);
  EXPECT_EQ(CountMaps(dst_), 7u);
  EXPECT_FALSE(fs::exists(BlockmapPath(dst_, "new")));

  // A map left over (as by an older vmback) and no index: the sweep lists,
  // deletes it, and writes an exact index again.
  const std::string stray = BlockmapPath(dst_, "nothing/here");
  ASSERT_TRUE(fs::create_directories(DirName(stray)));
  WriteFile(stray, "left over");
  Env::Default()->Remove(IndexOf(dst_));
  s = Sync(src_, dst_);
  EXPECT_EQ(s.maps_deleted, 1u);
  EXPECT_FALSE(fs::exists(stray));
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index, &exact), "");
  EXPECT_TRUE(exact);
  MapCountEnv quiet;
  s = Sync(src_, dst_, kBs, {}, &quiet);
  EXPECT_EQ(quiet.map_dir_lists + quiet.map_top_lists + quiet.map_opens, 0);
  EXPECT_EQ(s.maps_deleted + s.map_bytes_written, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// With an exact index, a sweep that deletes maps by name still removes the
// temporary a killed index write left, and where a map's name holds no
// regular file (a directory planted there) it leaves it and writes the next
// index not exact, so that the sync after lists the map directories.
TEST_F(InplaceTreeTest, AnExactIndexSweepRemovesTemporariesAndSaysWhatItLeft) {
  MakeTree();
  Sync(src_, dst_);
  const std::string tmp = JoinPath(DirName(IndexOf(dst_)), std::string(kMapIndexName) + ".tmp-killed");
  WriteFile(tmp, "a torn index");
  const std::string planted = BlockmapPath(dst_, "gone/y");
  Env::Default()->Remove(planted);
  fs::create_directory(planted);
  WriteFile(planted + "/keep", "not a map");
  Env::Default()->Remove(S("gone/y"));
  Env::Default()->Remove(S("gone/z"));
  std::vector<std::string> problems;
  MapCountEnv env;
  InplaceStats s = SyncLogged(src_, dst_, &problems, kBs, {}, &env);
  EXPECT_EQ(env.map_dir_lists, 0);
  EXPECT_FALSE(fs::exists(tmp)) << "the temporary is removed";
  EXPECT_EQ(s.maps_deleted, 1u) << "gone/z's map; gone/y's name holds a directory";
  EXPECT_EQ(ReadFile(planted + "/keep"), "not a map");
  bool exact = true;
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index, &exact), "");
  EXPECT_FALSE(exact);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  // The next sync lists, and says what is wrong.
  MapCountEnv next;
  std::string said;
  try {
    SyncLogged(src_, dst_, &problems, kBs, {}, &next);
    for (const auto& p : problems) said += p + "\n";
  } catch (const Error& e) {
    said = e.what();
  }
  EXPECT_GT(next.map_dir_lists, 0);
  EXPECT_NE(said.find(planted), std::string::npos) << said;
}

// A mirror file edited behind vmback's back (its mtime put back) no longer
// fits its index entry (the ctime moved): its map is read, does not fit
// either, and the file is repaired from a compare. The index written after
// holds the file's new identity.
TEST_F(InplaceTreeTest, AFileEditedBehindTheIndexIsNotTrusted) {
  MakeTree();
  Sync(src_, dst_);
  const struct stat before = Stat(D("a.bin"));
  XorFileByte(D("a.bin"), 5000, 4);
  SetMtimeNs(D("a.bin"), before.st_mtim.tv_sec, before.st_mtim.tv_nsec);
  std::vector<std::string> problems;
  InplaceStats s = SyncLogged(src_, dst_, &problems);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(s.blocks_written, 1u);
  EXPECT_EQ(s.files_skipped, 6u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("changed after it was written"), std::string::npos) << problems[0];
  EXPECT_EQ(ReadFile(D("a.bin")), ReadFile(S("a.bin")));
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "");
  ASSERT_TRUE(index.Find("a.bin"));
  EXPECT_EQ(index.Find("a.bin")->target_ctime_ns,
            Stat(D("a.bin")).st_ctim.tv_sec * int64_t{1000000000} + Stat(D("a.bin")).st_ctim.tv_nsec);
  EXPECT_EQ(IndexStaleClaims(dst_, {src_}, kBs), "");

  // The same when the edit keeps size, mtime and inode and the map is gone.
  XorFileByte(D("hard1"), 10, 1);
  Env::Default()->Remove(BlockmapPath(dst_, "hard1"));
  s = SyncLogged(src_, dst_, &problems);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_EQ(ReadFile(D("hard1")), ReadFile(S("hard1")));
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// A map damaged, cut to nothing or replaced by a symlink after the index
// was written, its file unchanged: the index records the map's own lstat,
// so that map is read and checked as if there were no index (rebuilt from
// a compare; a symlink refused, named). Both ways an index tells a file:
// through its map header (source ctime not recorded) and without reading
// anything of the file (source ctime recorded).
TEST_F(InplaceTreeTest, AMapChangedBehindTheIndexIsReadAndChecked) {
  MakeTree();
  Sync(src_, dst_);
  auto damage_and_sync = [&](const std::string& rel, bool to_nothing) {
    const std::string map = BlockmapPath(dst_, rel);
    if (to_nothing) {
      fs::resize_file(map, 0);
    } else {
      XorFileByte(map, 70, 0x10);  // in the header
    }
    std::vector<std::string> problems;
    InplaceStats s = SyncLogged(src_, dst_, &problems);
    EXPECT_EQ(s.blockmaps_rebuilt, 1u) << rel;
    EXPECT_EQ(s.blocks_written, 0u) << rel;
    EXPECT_EQ(s.errors, 0u) << rel;
    EXPECT_EQ(Describe(dst_), Describe(src_));
    EXPECT_EQ(IndexStaleClaims(dst_, {src_}, kBs), "");
    InplaceStats again = Sync(src_, dst_);
    EXPECT_EQ(again.blockmaps_rebuilt, 0u) << rel;
  };
  damage_and_sync("a.bin", true);
  damage_and_sync("sub/deep/x.txt", false);

  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the source ctimes settle
  Sync(src_, dst_);  // records them
  MapCountEnv quiet;
  Sync(src_, dst_, kBs, {}, &quiet);
  ASSERT_EQ(quiet.map_opens, 0) << "the index tells every file";
  damage_and_sync("a.bin", true);
  damage_and_sync("sparse.img", false);

  const std::string map = BlockmapPath(dst_, "empty");
  const std::string planted = tmp_ / "planted";
  WriteFile(planted, "not a map");
  Env::Default()->Remove(map);
  Env::Default()->Symlink(planted, map);
  EXPECT_THROW(
      {
        try {
          Sync(src_, dst_);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find(map), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  EXPECT_EQ(ReadFile(planted), "not a map");
}

// Counts the lstats of the mirror's files named keep* and of maps, by the
// thread that runs the sync and by the others, whether by path or through
// a directory opened by the env.
class KeepStatEnv final : public EnvWrapper {
 public:
  explicit KeepStatEnv(std::string mirror)
      : EnvWrapper(Env::Default()), mirror_(std::move(mirror)), walk_(std::this_thread::get_id()) {}
  std::atomic<int> walk{0}, others{0};
  std::set<std::string> ignore;  // paths not counted (set before the sync)
  FileStatus Status(const std::string& p) override {
    Count(p);
    return EnvWrapper::Status(p);
  }
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& p) override {
    return Wrap(EnvWrapper::OpenDirectory(p));
  }

 private:
  class Dir final : public ReadableDirWrapper {
   public:
    Dir(std::unique_ptr<ReadableDir> d, KeepStatEnv* env) : ReadableDirWrapper(std::move(d)), env_(env) {}
    FileStatus Status(const std::string& name) override {
      env_->Count(ChildPath(name));
      return ReadableDirWrapper::Status(name);
    }
    std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
      return env_->Wrap(ReadableDirWrapper::OpenDir(name));
    }

   private:
    KeepStatEnv* env_;
  };
  std::unique_ptr<ReadableDir> Wrap(std::unique_ptr<ReadableDir> d) {
    if (d->path().rfind(mirror_, 0) != 0) return d;
    return std::make_unique<Dir>(std::move(d), this);
  }
  void Count(const std::string& p) {
    if (p.rfind(mirror_ + "/", 0) != 0 || ignore.count(p)) return;
    const std::string base = BaseName(p);
    if (base.rfind("keep", 0) != 0 && !EndsWith(base, ".map")) return;
    (std::this_thread::get_id() == walk_ ? walk : others)++;
  }
  const std::string mirror_;
  const std::thread::id walk_;
};

// A day with nothing changed: the mirror scan's thread lstats each mirror
// file and its map, the walk only the source. Also where the mirror and
// the source do not have the same directories (one only in the source,
// sorting between a directory and its subdirectories; one only in the
// mirror): every file still found unchanged without the walk's lstats.
TEST_F(InplaceTreeTest, AnUnchangedFileIsLookedAtOffTheWalksThread) {
  Mkdir("");
  for (const char* d : {"a", "a/x", "b", "c", "c/y"}) Mkdir(d);
  int files = 0;
  for (const char* d : {"", "a/", "a/x/", "b/", "c/y/"})
    for (int i = 0; i < 4; i++, files++)
      WriteFile(S(std::string(d) + "keep" + std::to_string(i)), RandomBytes(100 + i, i));
  Sync(src_, dst_);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the source ctimes settle
  Sync(src_, dst_);  // records them

  const FileStatus index_before = Env::Default()->Status(IndexOf(dst_));
  KeepStatEnv day2(dst_);
  InplaceStats s = Sync(src_, dst_, kBs, {}, &day2);
  EXPECT_EQ(s.files_skipped, static_cast<uint64_t>(files));
  EXPECT_EQ(s.bytes_written + s.map_bytes_written + s.deleted, 0u);
  EXPECT_EQ(day2.walk, 0) << "the walk lstat'ed mirror files or maps";
  EXPECT_EQ(day2.others, 2 * files) << "the scan lstats each file and its map once";
  const FileStatus index_after = Env::Default()->Status(IndexOf(dst_));
  EXPECT_EQ(index_after.ino, index_before.ino) << "the index says the same: not written again";
  EXPECT_EQ(index_after.mtime_ns, index_before.mtime_ns);

  Mkdir("a-new");
  WriteFile(S("a-new/fresh"), "fresh");
  fs::remove_all(S("c"));
  KeepStatEnv day3(dst_);
  day3.ignore.insert(BlockmapPath(dst_, "a-new/fresh"));  // a new file's map: looked for by the walk
  for (int i = 0; i < 4; i++)  // the maps of c's files: looked at by the sweep, before it deletes them
    day3.ignore.insert(BlockmapPath(dst_, "c/y/keep" + std::to_string(i)));
  s = Sync(src_, dst_, kBs, {}, &day3);
  EXPECT_EQ(s.files_skipped, static_cast<uint64_t>(files - 4));
  EXPECT_EQ(s.deleted, 6u) << "c, c/y and its 4 files";
  EXPECT_EQ(day3.walk, 0);
  EXPECT_EQ(Describe(dst_), Describe(src_));
  MapIndex index;
  bool exact = false;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index, &exact), "");
  EXPECT_EQ(index.size(), static_cast<size_t>(files - 4 + 1)) << "the files told unchanged and the new one";
  EXPECT_TRUE(exact);
  const std::vector<Blockmap>& order = index.records();
  EXPECT_EQ(order[0].path, "a-new/fresh") << "bytewise before a/keep0, which the walk met first";
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end(),
                             [](const Blockmap& a, const Blockmap& b) { return a.path < b.path; }));
  EXPECT_EQ(CountMaps(dst_), static_cast<size_t>(files - 4 + 1));
  EXPECT_EQ(IndexStaleClaims(dst_, {src_}, kBs), "");
}

// The index encodes its records in path order whatever order they are
// given in, and a path given twice once (the first given).
TEST(MapIndexTest, EncodedInPathOrderEachPathOnce) {
  TempDir tmp;
  auto record = [](const std::string& path, uint64_t size) {
    Blockmap m;
    m.block_size = kBs;
    m.path = path;
    m.file_size = size;
    m.map_ino = 7;
    return m;
  };
  const Blockmap b = record("b", 1), a_dash = record("a-x", 2), a_sub = record("a/x", 3), b_again = record("b", 4);
  WriteFile(tmp / "index", std::string(EncodeMapIndex({&b, &a_sub, &a_dash, &b_again}, kBs, true).view()));
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), tmp / "index", kBs, &index), "");
  const std::vector<Blockmap>& order = index.records();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0].path, "a-x");
  EXPECT_EQ(order[1].path, "a/x");
  EXPECT_EQ(order[2].path, "b");
  EXPECT_EQ(order[2].file_size, 1u);
  for (const Blockmap& m : order) EXPECT_EQ(index.Find(m.path), &m) << m.path;
  EXPECT_EQ(index.Find("a"), nullptr);
  EXPECT_EQ(index.Find("c"), nullptr);
}

// Enough records that probes run past occupied slots: each is found at its
// own address, and paths next to them (a prefix, a suffix, one byte off)
// are not.
TEST(MapIndexTest, ManyRecordsEachFoundAndTheirNeighboursNot) {
  TempDir tmp;
  std::vector<Blockmap> maps(20000);
  std::vector<const Blockmap*> given;
  for (size_t i = 0; i < maps.size(); i++) {
    maps[i].block_size = kBs;
    maps[i].path = "d" + std::to_string(i % 97) + "/file-" + std::to_string(i);
    maps[i].file_size = i;
    maps[i].map_ino = i + 1;
    given.push_back(&maps[i]);
  }
  WriteFile(tmp / "index", std::string(EncodeMapIndex(given, kBs, true).view()));
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), tmp / "index", kBs, &index), "");
  ASSERT_EQ(index.size(), maps.size());
  size_t wrong = 0;
  for (const Blockmap& m : index.records()) {
    const Blockmap* found = index.Find(m.path);
    wrong += found != &m;
    wrong += index.Find(m.path + "x") != nullptr;
    wrong += index.Find(m.path.substr(0, m.path.size() - 1) + "#") != nullptr;
    wrong += index.Find(std::string_view(m.path).substr(1)) != nullptr;
  }
  EXPECT_EQ(wrong, 0u);
  const Blockmap* some = index.Find("d5/file-5");
  ASSERT_NE(some, nullptr);
  EXPECT_EQ(some->file_size, 5u);
}

// A mirror directory replaced after the scan looked at it (here, moved
// aside just before the walk comes to it): the walk makes it anew and
// copies its files; the scan's lstats of the old one are not used.
class SwapDirEnv final : public EnvWrapper {
 public:
  SwapDirEnv(std::string dir, std::set<std::string> maps)
      : EnvWrapper(Env::Default()), dir_(std::move(dir)), maps_(std::move(maps)), walk_(std::this_thread::get_id()) {}
  bool swapped = false;
  FileStatus Status(const std::string& p) override {
    if (p == dir_ && std::this_thread::get_id() == walk_ && !swapped) {
      // Once the scan has looked at the directory's maps, so that its
      // findings there are ready for the walk.
      for (int i = 0; i < 1000 && seen_ < maps_.size(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      fs::rename(dir_, dir_ + "-old");
      swapped = true;
    }
    return EnvWrapper::Status(p);
  }
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& p) override {
    auto d = EnvWrapper::OpenDirectory(p);
    return std::make_unique<MapDir>(std::move(d), this);
  }

 private:
  class MapDir final : public ReadableDirWrapper {
   public:
    MapDir(std::unique_ptr<ReadableDir> d, SwapDirEnv* env) : ReadableDirWrapper(std::move(d)), env_(env) {}
    FileStatus Status(const std::string& name) override {
      if (env_->maps_.count(name)) env_->seen_++;
      return ReadableDirWrapper::Status(name);
    }

   private:
    SwapDirEnv* env_;
  };
  const std::string dir_;
  const std::set<std::string> maps_;
  const std::thread::id walk_;
  std::atomic<size_t> seen_{0};
};

TEST_F(InplaceTreeTest, ADirectoryReplacedAfterTheScanIsCopiedAnew) {
  Mkdir("");
  Mkdir("a");
  Mkdir("b");
  std::set<std::string> b_maps;
  for (int i = 0; i < 4; i++) {
    WriteFile(S("a/keep" + std::to_string(i)), RandomBytes(100 + i, i));
    WriteFile(S("b/keep" + std::to_string(i)), RandomBytes(200 + i, 10 + i));
    b_maps.insert(BaseName(BlockmapPath(dst_, "b/keep" + std::to_string(i))));
  }
  Sync(src_, dst_);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the source ctimes settle
  Sync(src_, dst_);  // records them

  SwapDirEnv env(D("b"), b_maps);
  InplaceStats s = Sync(src_, dst_, kBs, {}, &env);
  ASSERT_TRUE(env.swapped);
  EXPECT_EQ(s.files_skipped, 4u) << "a's files only";
  EXPECT_EQ(Describe(dst_), Describe(src_)) << "b's files copied into the new b, b-old deleted";
  EXPECT_EQ(IndexStaleClaims(dst_, {src_}, kBs), "");
}

// An index whose records are not in path order (not written by vmback,
// its checksum made anew): used all the same, and the next index is
// written in order, each path once.
TEST_F(InplaceTreeTest, AnIndexOutOfOrderIsWrittenAnewInOrder) {
  MakeTree();
  Sync(src_, dst_);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the source ctimes settle
  Sync(src_, dst_);  // records them
  std::string data = ReadFile(IndexOf(dst_));
  std::vector<std::string> records;
  for (size_t off = 32; off < data.size() - 32;) {
    const size_t len = 84 + GetU32(data.data() + off);
    records.push_back(data.substr(off, len));
    off += len;
  }
  ASSERT_EQ(records.size(), 7u);
  std::string reversed = data.substr(0, 32);
  for (auto it = records.rbegin(); it != records.rend(); ++it) reversed += *it;
  const Hash sum = Sha256(reversed);
  reversed.append(reinterpret_cast<const char*>(sum.bytes.data()), sum.bytes.size());
  WriteFile(IndexOf(dst_), reversed);
  MapIndex index;
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "") << "a sound index, out of order";

  WriteFile(S("a.bin"), RandomBytes(50000, 60));
  InplaceStats s = Sync(src_, dst_);
  EXPECT_GE(s.files_skipped, 5u) << "told by the index out of order";
  ASSERT_EQ(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "");
  EXPECT_EQ(index.size(), 7u);
  EXPECT_TRUE(std::is_sorted(index.records().begin(), index.records().end(),
                             [](const Blockmap& a, const Blockmap& b) { return a.path < b.path; }));
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// The scan hands over each mirror directory in the walk's order; one the
// walk asks for that the mirror lacks is null, and what the walk passed by
// is dropped. Maps are looked at only where asked.
TEST(MirrorScanTest, HandsOverDirectoriesInTheWalksOrder) {
  TempDir tmp;
  const std::string root = tmp / "mirror";
  for (const char* d : {"", "a", "a/x", "b", "zz"}) ASSERT_TRUE(fs::create_directories(root + "/" + d) || *d == 0);
  WriteFile(root + "/a/one", "1");
  WriteFile(root + "/b/two", "22");
  const std::string map_dir = root + "/" + kBlockmapDir;
  ASSERT_TRUE(fs::create_directories(DirName(BlockmapPath(root, "b/two"))));
  WriteFile(BlockmapPath(root, "b/two"), "map");
  std::vector<std::string> asked;
  std::mutex mu;
  const Blockmap record;
  inplace_internal::MirrorScan scan(Env::Default(), root, map_dir, Env::Default()->Status(root).dev,
                                    [&](const std::string& rel, const FileStatus&) {
                                      std::lock_guard<std::mutex> l(mu);
                                      asked.push_back(rel);
                                      return rel == "b/two" ? &record : nullptr;
                                    });
  auto top = scan.Take("");
  ASSERT_TRUE(top);
  EXPECT_TRUE(top->Find("a") && top->Find("zz"));
  EXPECT_FALSE(top->Find(kBlockmapDir)) << "the map directory is not the mirror's";
  auto a = scan.Take("a");
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Find("one"));
  EXPECT_EQ(a->Find("one")->st.size, 1u);
  EXPECT_FALSE(a->Find("one")->map_looked);
  EXPECT_FALSE(scan.Take("a-new")) << "after a/x in the walk's order, which is dropped";
  EXPECT_FALSE(scan.Take("a/x")) << "asked after a later one";
  auto b = scan.Take("b");
  ASSERT_TRUE(b && b->Find("two"));
  ASSERT_TRUE(b->Find("two")->map_looked);
  EXPECT_EQ(b->Find("two")->indexed, &record);
  EXPECT_EQ(a->Find("one")->indexed, nullptr);
  EXPECT_EQ(b->Find("two")->map_st.size, 3u);
  EXPECT_EQ(b->Find("two")->map_hash.Hex() + ".map", BaseName(BlockmapPath(root, "b/two")));
  EXPECT_FALSE(scan.Take("c"));
  EXPECT_TRUE(scan.Take("zz"));
  EXPECT_FALSE(scan.Take("zzz")) << "the scan is over";
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(asked, (std::vector<std::string>{"a/one", "b/two"}));
  EXPECT_EQ(scan.maps_looked(), 1u);
}

// Counts the xattr lists a sync reads, by path or through a file it has
// open for writing.
class XattrCountEnv final : public EnvWrapper {
 public:
  XattrCountEnv() : EnvWrapper(Env::Default()) {}
  std::set<std::string> read;
  Xattrs ReadXattrs(const std::string& p) override {
    read.insert(p);
    return EnvWrapper::ReadXattrs(p);
  }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode mode, mode_t perm) override {
    class File final : public WritableFileWrapper {
     public:
      File(std::unique_ptr<WritableFile> f, std::set<std::string>* read)
          : WritableFileWrapper(std::move(f)), read_(read) {}
      Xattrs ReadXattrs() override {
        read_->insert(path());
        return WritableFileWrapper::ReadXattrs();
      }

     private:
      std::set<std::string>* read_;
    };
    return std::make_unique<File>(EnvWrapper::OpenWrite(p, mode, perm), &read);
  }
};

// An unchanged file (one link, both ctimes as the index recorded them) has
// neither its xattrs nor its mirror's read. A metadata change on either
// side moves a ctime, and is mirrored (or undone) as before: the source's
// mode, owner or xattrs changed with its mtime put back; an xattr added to
// the mirror behind vmback's back.
TEST_F(InplaceTreeTest, MetadataIsReadOnlyWhenACtimeMoved) {
  MakeTree();
  Sync(src_, dst_);
  // A ctime within 2 s of the sync is not recorded (a change in the same
  // clock tick would leave it as it is): read again.
  XattrCountEnv racy;
  Sync(src_, dst_, kBs, {}, &racy);
  EXPECT_TRUE(racy.read.count(S("a.bin"))) << "a just-made file's ctime is not trusted";
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  Sync(src_, dst_);  // now the ctimes are recorded
  XattrCountEnv day2;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &day2);
  EXPECT_EQ(s.files_skipped, 7u);
  for (const char* f : {"a.bin", "sparse.img", "empty", "sub/deep/x.txt", "gone/y"}) {
    EXPECT_FALSE(day2.read.count(S(f))) << f;
    EXPECT_FALSE(day2.read.count(D(f))) << f;
  }
  EXPECT_TRUE(day2.read.count(S("hard1"))) << "two links: read as before";

  const struct stat a = Stat(S("a.bin"));
  Env::Default()->SetXattr(S("a.bin"), "user.a", "2");
  Env::Default()->SetMode(S("empty"), 0600);
  test::Chown(S("gone/y"), 4321, 8765);
  Env::Default()->SetXattr(D("sparse.img"), "user.planted", "x");
  SetMtimeNs(S("a.bin"), a.st_mtim.tv_sec, a.st_mtim.tv_nsec);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the new ctimes settle
  XattrCountEnv day3;
  s = Sync(src_, dst_, kBs, {}, &day3);
  EXPECT_EQ(s.files_skipped, 6u);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u) << "the mirror changed behind vmback's back: compared";
  EXPECT_EQ(s.blocks_written, 0u);
  for (const char* f : {"a.bin", "sparse.img", "empty", "gone/y"}) EXPECT_TRUE(day3.read.count(D(f))) << f;
  EXPECT_FALSE(day3.read.count(D("sub/deep/x.txt")));
  EXPECT_EQ(Describe(dst_), Describe(src_));
  const Xattrs a_xattrs = Env::Default()->ReadXattrs(D("a.bin"));
  EXPECT_NE(std::find(a_xattrs.begin(), a_xattrs.end(), std::pair<std::string, std::string>("user.a", "2")),
            a_xattrs.end());
  for (const auto& [name, value] : Env::Default()->ReadXattrs(D("sparse.img"))) EXPECT_NE(name, "user.planted");

  XattrCountEnv day4;  // the index holds the new ctimes: nothing read again
  s = Sync(src_, dst_, kBs, {}, &day4);
  EXPECT_EQ(s.files_skipped, 7u);
  EXPECT_EQ(s.blockmaps_rebuilt + s.bytes_read + s.map_bytes_written, 0u);
  for (const char* f : {"a.bin", "sparse.img", "empty", "gone/y"}) EXPECT_FALSE(day4.read.count(D(f))) << f;
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// An index that is torn, of an unknown version, or written for another
// block size is not used: the maps are read (and trusted as before), and
// a sound index replaces it.
TEST_F(InplaceTreeTest, AnIndexThatIsNotSoundIsNotUsed) {
  MakeTree();
  Sync(src_, dst_);
  const std::string good = ReadFile(IndexOf(dst_));
  std::string future = good;
  future[8] = 2;  // version 2, with a right checksum
  const Hash sum = Sha256(future.data(), future.size() - 32);
  future.replace(future.size() - 32, 32, reinterpret_cast<const char*>(sum.bytes.data()), 32);
  for (const std::string& bad : {good.substr(0, good.size() - 1), good.substr(0, 40), future}) {
    WriteFile(IndexOf(dst_), bad);
    MapIndex index;
    EXPECT_NE(ReadMapIndex(Env::Default(), IndexOf(dst_), kBs, &index), "");
    EXPECT_TRUE(index.empty());
    MapCountEnv env;
    InplaceStats s = Sync(src_, dst_, kBs, {}, &env);
    EXPECT_EQ(s.files_skipped, 7u);
    EXPECT_EQ(env.map_opens, 7);
    EXPECT_EQ(ReadFile(IndexOf(dst_)), good);
  }
  MapIndex index;
  EXPECT_NE(ReadMapIndex(Env::Default(), IndexOf(dst_), 2 * kBs, &index), "");
  EXPECT_TRUE(index.empty());
}

// --- Faults ----------------------------------------------------------------------

// Runs `changed` through a FaultEnv failing at every write step in turn
// (ENOSPC, or a crash), each time on a fresh mirror of `base`; after each
// failure no map may claim what the target lacks, and a normal sync must
// then leave the mirror exact with its maps sound.
class InplaceFaultTest : public InplaceTest {
 protected:
  void Sweep(bool tree, int write_errno) {
    std::string base = tmp_ / "base", changed = tmp_ / "changed";
    if (tree) {
      ASSERT_EQ(::mkdir(base.c_str(), 0755), 0);
      WriteFile(base + "/a", RandomBytes(40 * kBs, 60));
      WriteFile(base + "/b", RandomBytes(3 * kBs, 61));
      WriteFile(base + "/c", "c");
      fs::copy(base, changed, fs::copy_options::recursive);
      WriteFileAt(changed + "/a", 5 * kBs, RandomBytes(2 * kBs, 62));
      WriteFileAt(changed + "/a", 20 * kBs, std::string(kBs, '\0'));
      ASSERT_EQ(::truncate((changed + "/b").c_str(), kBs + 10), 0);
      ASSERT_EQ(::unlink((changed + "/c").c_str()), 0);
      WriteFile(changed + "/d", RandomBytes(2 * kBs, 63));
      ASSERT_EQ(::symlink("a", (changed + "/l").c_str()), 0);
      ASSERT_EQ(::mkfifo((changed + "/f").c_str(), 0600), 0);
      for (const char* n : {"a", "b", "c"}) SetMtimeNs(base + "/" + n, kT0 - 1, 0);
      for (const char* n : {"a", "b", "d"}) SetMtimeNs(changed + "/" + n, kT0, 0);
    } else {
      std::string data = RandomBytes(40 * kBs, 64);
      WriteFile(base, data);
      WriteFileAt(changed, 0, data);
      WriteFileAt(changed, 5 * kBs, RandomBytes(2 * kBs, 65));
      WriteFileAt(changed, 30 * kBs, std::string(kBs, '\0'));
      WriteFileAt(changed, 40 * kBs, RandomBytes(kBs + 3, 66));  // grows
      SetMtimeNs(base, kT0 - 1, 0);
    }
    SetMtimeNs(changed, kT0, 0);
    const std::string want = tree ? Describe(changed) : ReadFile(changed);
    auto mirror_of = [&](int k) { return tmp_ / ("m" + std::to_string(k)); };
    auto dest_of = [&](int k) { return tree ? mirror_of(k) : mirror_of(k) + "/disk.img"; };
    auto files_of = [&](int k) {
      std::vector<std::pair<std::string, std::string>> out;  // file, its map
      if (!tree) return std::vector<std::pair<std::string, std::string>>{{dest_of(k), MapOf(dest_of(k))}};
      for (const char* n : {"a", "b", "c", "d"})
        out.emplace_back(dest_of(k) + "/" + n, BlockmapPath(dest_of(k), n));
      return out;
    };

    int steps = 0;
    std::vector<std::string> failures;
    for (int k = 1;; k++) {
      SCOPED_TRACE("fault at write step " + std::to_string(k));
      ASSERT_EQ(::mkdir(mirror_of(k).c_str(), 0755), 0);
      Sync(base, dest_of(k));
      FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = k, .write_errno = write_errno});
      bool failed = false;
      try {
        Sync(changed, dest_of(k), kBs, {}, &fenv);
      } catch (const Error& e) {
        failed = true;
        EXPECT_EQ(e.kind(), write_errno ? ErrorKind::kNoSpace : ErrorKind::kCrash) << e.what();
        // The error names the step and the file it failed on.
        const std::string what = e.what(), dir = mirror_of(k);
        const size_t at = what.find(dir);
        EXPECT_TRUE(at != std::string::npos && (at + dir.size() == what.size() || what[at + dir.size()] == '/' ||
                                                what[at + dir.size()] == ' '))
            << what;
        failures.push_back(e.what());
      }
      for (const auto& [file, map] : files_of(k)) EXPECT_EQ(StaleClaims(file, map), "") << file;
      if (tree) {
        EXPECT_EQ(IndexStaleClaims(dest_of(k), {base, changed}, kBs), "");
      }
      Logger quiet(LogLevel::kError, false);
      SyncInPlace(Env::Default(), changed, dest_of(k), kBs, {}, &quiet);
      EXPECT_EQ(tree ? Describe(dest_of(k)) : ReadFile(dest_of(k)), want);
      InplaceStats again = SyncInPlace(Env::Default(), changed, dest_of(k), kBs, {.full_read = true}, &quiet);
      EXPECT_EQ(again.blocks_written + again.holes_punched + again.blockmaps_rebuilt + again.deleted, 0u);
      for (const auto& [file, map] : files_of(k))
        if (fs::exists(file)) {
          EXPECT_NO_THROW(ReadBlockmap(Env::Default(), map)) << file;
        }
      if (tree) {
        MapIndex index;
        EXPECT_EQ(ReadMapIndex(Env::Default(), IndexOf(dest_of(k)), kBs, &index), "");
        EXPECT_EQ(index.size(), 3u);  // a, b, d
      }
      fs::remove_all(mirror_of(k));
      if (!failed) {
        steps = k - 1;
        break;
      }
      ASSERT_LT(k, 500) << "runaway sweep";
    }
    EXPECT_GT(steps, 10) << "the sweep covered the run's write steps";
    // Hole punching is a step of its own (the all-zero block), and in a
    // tree so are the special files and the syncfs that makes them durable.
    std::vector<std::string> kinds = {"punch a hole in "};
    if (tree) kinds.insert(kinds.end(), {"mknod ", "create symlink ", "syncfs "});
    for (const auto& kind : kinds) EXPECT_TRUE(Contains(failures, kind)) << "no step failed at: " << kind;
  }
};

TEST_F(InplaceFaultTest, NoSpaceAtEveryWriteStepOfAFile) { Sweep(false, ENOSPC); }
TEST_F(InplaceFaultTest, CrashAtEveryWriteStepOfAFile) { Sweep(false, 0); }
TEST_F(InplaceFaultTest, NoSpaceAtEveryWriteStepOfATree) { Sweep(true, ENOSPC); }

TEST_F(InplaceFaultTest, CrashAtEveryWriteStepOfATree) { Sweep(true, 0); }

// Every metadata step of a sync (chmod, mtime, xattrs where the file system
// has them; chown too when an owner changes) failing with EIO in turn: the sync goes on with one
// warning naming the step and the path; no map claims what the target
// lacks; the next sync mends the mirror.
TEST_F(InplaceFaultTest, EioAtEveryMetadataStepOfATree) {
  std::string base = tmp_ / "base", changed = tmp_ / "changed";
  ASSERT_EQ(::mkdir(base.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((base + "/sub").c_str(), 0755), 0);
  WriteFile(base + "/a", RandomBytes(4 * kBs, 80));
  WriteFile(base + "/b", "b");
  WriteFile(base + "/sub/c", RandomBytes(kBs, 81));
  fs::copy(base, changed, fs::copy_options::recursive);
  WriteFileAt(changed + "/a", kBs, RandomBytes(kBs, 82));
  ASSERT_EQ(::chmod((changed + "/b").c_str(), 0640), 0);
  ASSERT_EQ(::chmod((changed + "/sub").c_str(), 0750), 0);
  ASSERT_EQ(::mkfifo((changed + "/f").c_str(), 0640), 0);
  ASSERT_EQ(::symlink("a", (changed + "/l").c_str()), 0);
  const bool xattrs = ::lsetxattr((changed + "/b").c_str(), "user.vmback", "1", 1, 0) == 0;
  for (const char* n : {"a", "b", "sub/c", "sub"}) {
    SetMtimeNs(base + "/" + n, kT0 - 1, 0);
    SetMtimeNs(changed + "/" + n, kT0, 0);
  }
  SetMtimeNs(base, kT0 - 1, 0);
  SetMtimeNs(changed, kT0, 0);
  const std::string want = Describe(changed);

  int steps = 0;
  std::vector<std::string> warnings;
  for (int k = 1;; k++) {
    SCOPED_TRACE("fault at metadata step " + std::to_string(k));
    const std::string mirror = tmp_ / ("m" + std::to_string(k));
    Sync(base, mirror);
    FaultEnv fenv(Env::Default(), FaultPlan{.fail_metadata_at = k, .metadata_errno = EIO});
    std::vector<std::string> problems;
    InplaceStats s = SyncLogged(changed, mirror, &problems, kBs, {}, &fenv);
    const bool failed = fenv.metadata_steps() >= k;
    EXPECT_EQ(s.warnings, failed ? 1u : 0u);
    if (failed) {
      ASSERT_TRUE(Contains(problems, "(injected)")) << ::testing::PrintToString(problems);
      for (const auto& p : problems)
        if (p.find("(injected)") != std::string::npos) {
          EXPECT_NE(p.find(mirror), std::string::npos) << p;
          warnings.push_back(p);
        }
    }
    for (const char* n : {"a", "b", "sub/c"})
      EXPECT_EQ(StaleClaims(mirror + "/" + n, BlockmapPath(mirror, n)), "") << n;
    Logger quiet(LogLevel::kError, false);
    InplaceStats mend = SyncInPlace(Env::Default(), changed, mirror, kBs, {}, &quiet);
    EXPECT_EQ(mend.warnings, 0u);
    EXPECT_EQ(Describe(mirror), want);
    InplaceStats again = SyncInPlace(Env::Default(), changed, mirror, kBs, {.full_read = true}, &quiet);
    EXPECT_EQ(again.blocks_written + again.holes_punched + again.blockmaps_rebuilt + again.deleted, 0u);
    fs::remove_all(mirror);
    if (!failed) {
      steps = k - 1;
      break;
    }
    ASSERT_LT(k, 200) << "runaway sweep";
  }
  EXPECT_GE(steps, 8) << "the sweep covered the run's metadata steps";
  std::vector<std::string> kinds = {"chmod ", "set times of "};
  if (xattrs) kinds.push_back("set xattr user.vmback on ");
  for (const auto& kind : kinds) EXPECT_TRUE(Contains(warnings, kind)) << "no warning for: " << kind;
}

TEST_F(InplaceFaultTest, DiskStaysFullThenRecovers) {
  std::string src = tmp_ / "src", dst = tmp_ / "dst";
  WriteFile(src, RandomBytes(64 * kBs, 70));
  Sync(src, dst);
  WriteFile(src, RandomBytes(64 * kBs, 71));
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 4, .write_errno = ENOSPC, .fail_every_write_after = true});
  EXPECT_THROW(Sync(src, dst, kBs, {}, &fenv), Error);
  EXPECT_EQ(StaleClaims(dst, MapOf(dst)), "");
  std::vector<std::string> problems;
  InplaceStats s = SyncLogged(src, dst, &problems);
  EXPECT_EQ(s.blockmaps_rebuilt, 1u);
  EXPECT_TRUE(Contains(problems, "left incomplete"));
  EXPECT_EQ(ReadFile(dst), ReadFile(src));
}

// --- Reading the source ahead of the sync (source_prefetch.h) ---

// Waits up to 10 s until pred holds.
bool Eventually(const std::function<bool()>& pred) { return test::Eventually(pred, std::chrono::seconds(10)); }

class SourcePrefetchTest : public InplaceTreeTest {
 protected:
  // The files the prefetcher was asked about, in order.
  std::vector<std::string> asked_about;
  std::mutex mu;
  inplace_internal::SourcePrefetch::WillRead Recording(std::set<std::string> unchanged = {}) {
    return [this, unchanged](const std::string& rel, const FileStatus&) {
      std::lock_guard<std::mutex> l(mu);
      asked_about.push_back(rel);
      return unchanged.count(rel) == 0;
    };
  }
};

// It walks in the sync's order and asks for the data of the files the sync
// will read: not of empty files, symlinks, what an exclude leaves out, the
// map directory's or ZFS's names at the top, nor what the sync will not
// read (here "unchanged").
TEST_F(SourcePrefetchTest, AsksForTheFilesTheSyncReadsInItsOrder) {
  Mkdir("");
  Mkdir("b");
  Mkdir(".zfs");
  WriteFile(S("a"), "1");
  WriteFile(S("b/c"), "22");
  WriteFile(S("b-c"), "333");
  WriteFile(S("empty"), "");
  WriteFile(S("skip.tmp"), "left out");
  WriteFile(S(".zfs/x"), "not ours");
  WriteFile(S(kBlockmapDir), "not mirrored");
  WriteFile(S("unchanged"), "4444");
  fs::create_symlink("a", S("link"));
  VolumeExcludes ex;
  ex.patterns.Add("*.tmp");
  InplaceOptions opts;
  opts.excludes = &ex;
  inplace_internal::SourcePrefetch p(Env::Default(), src_, Stat(src_).st_dev, opts, Recording({"unchanged"}));
  ASSERT_TRUE(Eventually([&] { return p.done(); }));
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(asked_about, (std::vector<std::string>{"a", "b/c", "b-c", "unchanged"}));
  EXPECT_EQ(p.asked(), 3u);
}

// It stays kAheadFiles files ahead of the sync, goes on as the sync passes
// them, and skips what the sync has passed.
TEST_F(SourcePrefetchTest, StaysABoundedWayAheadOfTheSync) {
  Mkdir("");
  constexpr size_t kFiles = 300;
  char name[16];
  for (size_t i = 0; i < kFiles; i++) {
    std::snprintf(name, sizeof name, "f%03zu", i);
    WriteFile(S(name), "x");
  }
  constexpr size_t kAhead = inplace_internal::SourcePrefetch::kAheadFiles;
  inplace_internal::SourcePrefetch p(Env::Default(), src_, Stat(src_).st_dev, {}, Recording());
  ASSERT_TRUE(Eventually([&] { return p.asked() == kAhead; })) << p.asked();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(p.asked(), kAhead) << "no further than that without the sync";
  EXPECT_FALSE(p.done());
  p.Passed("f100");  // f000 to f099 are done with
  ASSERT_TRUE(Eventually([&] { return p.asked() == 100 + kAhead; })) << p.asked();
  // What the sync has gone past is not asked for (f228 to f289): its
  // pages would be read for nothing.
  p.Passed("f290");
  ASSERT_TRUE(Eventually([&] { return p.done(); }));
  EXPECT_EQ(p.asked(), 100 + kAhead + (kFiles - 290));
}

// The sync of a tree asks for the data of the files it copies: every file
// on day 1, none of a tree that did not change, the changed one after.
TEST_F(SourcePrefetchTest, ATreeSyncAsksAheadForWhatItCopiesOnly) {
  class CountingDirEnv final : public EnvWrapper {
   public:
    std::atomic<int> will_need{0};
    // The sync writes nothing until the prefetcher has asked for this many
    // (at most 10 s): a sync that runs ahead of it does not skew the count.
    int expect = 0;
    CountingDirEnv() : EnvWrapper(Env::Default()) {}
    std::unique_ptr<WritableFile> OpenWrite(const std::string& p, CreateMode m, mode_t perm) override {
      if (!Eventually([&] { return will_need >= expect; })) expect = 0;  // waited once: enough
      return EnvWrapper::OpenWrite(p, m, perm);
    }
    std::unique_ptr<ReadableDir> OpenDirectory(const std::string& p) override {
      return std::make_unique<Dir>(this, EnvWrapper::OpenDirectory(p));
    }

   private:
    class File final : public ReadableFileWrapper {
     public:
      File(CountingDirEnv* env, std::unique_ptr<ReadableFile> f) : ReadableFileWrapper(std::move(f)), env_(env) {}
      void WillNeed(uint64_t offset, uint64_t len) override {
        env_->will_need++;
        target()->WillNeed(offset, len);
      }

     private:
      CountingDirEnv* env_;
    };
    class Dir final : public ReadableDirWrapper {
     public:
      Dir(CountingDirEnv* env, std::unique_ptr<ReadableDir> d) : ReadableDirWrapper(std::move(d)), env_(env) {}
      std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
        return std::make_unique<Dir>(env_, target()->OpenDir(name));
      }
      std::unique_ptr<ReadableFile> OpenRead(const std::string& name) override {
        return std::make_unique<File>(env_, target()->OpenRead(name));
      }

     private:
      CountingDirEnv* env_;
    };
  };
  MakeTree();  // a.bin, sparse.img, hard1 (and sub/hard2, its second name), sub/deep/x.txt, gone/y, gone/z
  Logger log(LogLevel::kError, false);
  CountingDirEnv day1;
  day1.expect = 7;
  SyncInPlace(&day1, src_, dst_, kBs, {}, &log);
  EXPECT_EQ(day1.will_need.load(), 7) << "every file with data, by each of its names";
  CountingDirEnv day2;
  SyncInPlace(&day2, src_, dst_, kBs, {}, &log);
  EXPECT_EQ(day2.will_need.load(), 0) << "nothing changed";
  WriteFileAt(S("a.bin"), 100, "changed");
  SetMtimeNs(S("a.bin"), kT0 + 5, 0);
  CountingDirEnv day3;
  day3.expect = 1;
  SyncInPlace(&day3, src_, dst_, kBs, {}, &log);
  EXPECT_EQ(day3.will_need.load(), 1);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// The read-ahead's thread lists each source directory and lstats its
// entries for the walk: the walk's thread lstats no source file, on day 1
// (every file copied) nor on a day with nothing changed; and the mirror is
// the source's.
TEST_F(InplaceTreeTest, TheSourceIsListedOffTheWalksThread) {
  Mkdir("");
  for (const char* d : {"a", "a/x", "a-b", "b"}) Mkdir(d);
  int files = 0;
  for (const char* d : {"", "a/", "a/x/", "a-b/", "b/"})
    for (int i = 0; i < 4; i++, files++)
      WriteFile(S(std::string(d) + "keep" + std::to_string(i)), RandomBytes(100 + i, i));
  KeepStatEnv day1(src_);
  InplaceStats s = Sync(src_, dst_, kBs, {}, &day1);
  EXPECT_EQ(s.files, static_cast<uint64_t>(files));
  EXPECT_EQ(day1.walk, 0) << "the walk lstat'ed source files";
  EXPECT_EQ(day1.others, files) << "the read-ahead lstats each once";
  EXPECT_EQ(Describe(dst_), Describe(src_));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // the source ctimes settle
  Sync(src_, dst_);  // records them

  KeepStatEnv day2(src_);
  s = Sync(src_, dst_, kBs, {}, &day2);
  EXPECT_EQ(s.files_skipped, static_cast<uint64_t>(files));
  EXPECT_EQ(day2.walk, 0);
  EXPECT_EQ(day2.others, files);

  // A file changed, one removed, one added: the mirror follows.
  WriteFileAt(S("a/x/keep1"), 10, "changed");
  fs::remove(S("b/keep2"));
  WriteFile(S("a-b/keep9"), "new");
  KeepStatEnv day3(src_);
  s = Sync(src_, dst_, kBs, {}, &day3);
  EXPECT_EQ(day3.walk, 0);
  EXPECT_EQ(s.deleted, 1u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// A directory the read-ahead's thread could not open (here refused to it
// alone), followed by more files than it asks for ahead of the sync: the
// thread waits for the sync to pass them, and the sync, at that directory,
// does not wait for a listing that never comes; it lists the directory
// itself.
TEST_F(InplaceTreeTest, ADirectoryTheReadAheadCannotListIsListedByTheWalk) {
  class RefuseDirEnv final : public EnvWrapper {
   public:
    RefuseDirEnv() : EnvWrapper(Env::Default()) {}
    std::atomic<int> refused{0};
    std::unique_ptr<ReadableDir> OpenDirectory(const std::string& p) override {
      return std::make_unique<Dir>(this, EnvWrapper::OpenDirectory(p));
    }

   private:
    class Dir final : public ReadableDirWrapper {
     public:
      Dir(RefuseDirEnv* env, std::unique_ptr<ReadableDir> d) : ReadableDirWrapper(std::move(d)), env_(env) {}
      std::unique_ptr<ReadableDir> OpenDir(const std::string& name) override {
        if (name == "b" && std::this_thread::get_id() != env_->walk_) {
          env_->refused++;
          throw Error(ErrorKind::kIo, "open " + ChildPath(name) + ": refused by the test");
        }
        return std::make_unique<Dir>(env_, target()->OpenDir(name));
      }

     private:
      RefuseDirEnv* env_;
    };
    const std::thread::id walk_ = std::this_thread::get_id();
  };
  Mkdir("");
  Mkdir("b");
  WriteFile(S("b/inside"), "in b");
  const size_t kFiles = 2 * inplace_internal::SourcePrefetch::kAheadFiles;
  char name[16];
  for (size_t i = 0; i < kFiles; i++) {
    std::snprintf(name, sizeof name, "c%03zu", i);
    WriteFile(S(name), "x");
  }
  RefuseDirEnv env;
  InplaceStats s = Sync(src_, dst_, kBs, {}, &env);
  EXPECT_EQ(env.refused, 1);
  EXPECT_EQ(s.files, kFiles + 1);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(Describe(dst_), Describe(src_));
}

// A mirror directory swapped for a symlink while the walk is in it (here
// just before it deletes what the source no longer has there, before the
// first deletion or between two): nothing is deleted through the symlink;
// the sync fails naming the directory. Also where the source directory has
// nothing left (every mirror entry is to go).
TEST_F(InplaceTreeTest, NothingIsDeletedThroughADirectorySwappedDuringTheSync) {
  class SwapAtDeleteEnv final : public EnvWrapper {
   public:
    SwapAtDeleteEnv(std::string dir, std::string to, int at_look)
        : EnvWrapper(Env::Default()), dir_(std::move(dir)), to_(std::move(to)), at_look_(at_look) {}
    bool swapped = false;
    FileStatus Status(const std::string& p) override {
      // The walk's first look at the directory is its own lstat before it
      // enters; each later one comes before a deletion in it.
      if (p == dir_ && ++looks_ == at_look_) {
        fs::rename(dir_, dir_ + "-away");
        fs::create_directory_symlink(to_, dir_);
        swapped = true;
      }
      return EnvWrapper::Status(p);
    }

   private:
    const std::string dir_, to_;
    const int at_look_;
    int looks_ = 0;
  };
  const std::vector<std::string> goes = {"goes1", "goes2"};
  auto run = [&](const std::string& case_name, bool keep_one, int at_look) {
    SCOPED_TRACE(case_name);
    fs::remove_all(src_);
    fs::remove_all(dst_);
    fs::remove_all(D("b-away"));
    Mkdir("");
    Mkdir("b");
    if (keep_one) WriteFile(S("b/stays"), "stays");
    for (const auto& g : goes) WriteFile(S("b/" + g), g);
    Sync(src_, dst_);
    for (const auto& g : goes) fs::remove(S("b/" + g));
    const std::string sentinel = tmp_ / ("sentinel-" + case_name);
    fs::create_directory(sentinel);
    for (const auto& g : goes) WriteFile(sentinel + "/" + g, "precious");
    SwapAtDeleteEnv env(D("b"), sentinel, at_look);
    try {
      Sync(src_, dst_, kBs, {}, &env);
      ADD_FAILURE() << "the sync went on";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(D("b") + " was replaced"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(env.swapped);
    for (const auto& g : goes) EXPECT_EQ(ReadFile(sentinel + "/" + g), "precious") << g;
  };
  run("before-the-first", true, 2);
  run("between-two", true, 3);
  run("source-directory-empty", false, 2);
}

// After every writeback_every bytes written, the target's write-back is
// started on a thread of its own (a syncfs the sync does not wait for), so
// that the last barrier finds little left to write; never with 0.
TEST_F(InplaceTreeTest, WriteBackStartsInTheBackgroundAfterWritebackEveryBytes) {
  class ThreadSyncEnv final : public EnvWrapper {
   public:
    ThreadSyncEnv() : EnvWrapper(Env::Default()) {}
    void SyncFileSystem(const std::string& p) override {
      if (std::this_thread::get_id() != sync_thread_) background++;
      EnvWrapper::SyncFileSystem(p);
    }
    std::atomic<int> background{0};

   private:
    const std::thread::id sync_thread_ = std::this_thread::get_id();
  };
  MakeTree();
  Logger log(LogLevel::kError, false);
  InplaceOptions opts;
  opts.writeback_every = 0;
  ThreadSyncEnv never;
  SyncInPlace(&never, src_, dst_, kBs, opts, &log);
  EXPECT_EQ(never.background.load(), 0);

  const std::string dst2 = tmp_ / "dst2";
  opts.writeback_every = 1;  // after every file written
  ThreadSyncEnv each;
  InplaceStats s = SyncInPlace(&each, src_, dst2, kBs, opts, &log);
  EXPECT_GT(s.bytes_written, 0u);
  EXPECT_GE(each.background.load(), 1) << "a Kick is always followed by a run";
  EXPECT_EQ(Describe(dst2), Describe(src_));
}

}  // namespace
}  // namespace vmback
