// FaultEnv: the fault-injecting Env used by the crash tests. These tests pin
// down exactly what it counts as a write step, where an injected errno, a
// short write or a simulated crash lands, and that the faulted step did not
// reach the disk.
#include "helpers/fault_env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "util/error.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using test::ReadFile;
using test::TempDir;
using test::WriteFile;

uint64_t FileSize(const std::string& path) { return fs::file_size(path); }

// One write step of a fixed script, with the path its error must name.
struct Step {
  std::string name;
  std::string path;
  std::function<void()> run;
};

// A script of ten write steps, one of each kind, in a fresh directory:
// open, append, write-at, truncate, fsync, close, mkdir, fsync dir, rename,
// remove.
class Script {
 public:
  Script(Env* env, const std::string& dir) : env_(env), dir_(dir) {
    std::string f = dir + "/f", d = dir + "/d", g = dir + "/d/g";
    steps_ = {
        {"open", f, [this, f] { file_ = env_->OpenWrite(f, CreateMode::kExclusive); }},
        {"append", f, [this] { file_->Append("hello world", 11); }},
        {"writeat", f, [this] { file_->WriteAt(0, "HE", 2); }},
        {"truncate", f, [this] { file_->Truncate(8); }},
        {"sync", f, [this] { file_->Sync(); }},
        {"close", f, [this] { file_->Close(); }},
        {"mkdir", d, [this, d] { env_->MakeDir(d); }},
        {"syncdir", d, [this, d] { env_->SyncDir(d); }},
        {"rename", f, [this, f, g] { env_->Rename(f, g); }},
        {"remove", g, [this, g] { env_->Remove(g); }},
    };
  }
  const std::vector<Step>& steps() const { return steps_; }

 private:
  Env* env_;
  std::string dir_;
  std::unique_ptr<WritableFile> file_;
  std::vector<Step> steps_;
};

TEST(FaultEnvTest, CountsEveryWriteStepAndNothingElse) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(), FaultPlan{});
  Env* env = &fenv;
  Script script(env, tmp.path());
  int64_t n = 0;
  for (const auto& step : script.steps()) {
    SCOPED_TRACE(step.name);
    ASSERT_NO_THROW(step.run());
    EXPECT_EQ(fenv.write_steps(), ++n);
  }
  EXPECT_EQ(n, 10);
  // Queries, reads, locks and the clock are not write steps.
  WriteFile(tmp / "r", "readable");
  EXPECT_TRUE(env->Exists(tmp / "d"));
  EXPECT_FALSE(env->Exists(tmp / "d/g"));
  EXPECT_EQ(env->ListDir(tmp.path()).size(), 2u);  // d and r
  EXPECT_EQ(ReadFileToString(env, tmp / "r"), "readable");
  auto lock = env->Lock(tmp / "lock", LockMode::kExclusive);
  EXPECT_GT(env->NowNanos(), 0);
  EXPECT_EQ(fenv.write_steps(), 10);
  EXPECT_EQ(fenv.reads(), 1);
  EXPECT_FALSE(fenv.crashed());
  // The script did what it says on the real disk.
  EXPECT_FALSE(fs::exists(tmp / "f"));
  EXPECT_FALSE(fs::exists(tmp / "d/g"));
}

// Links, symlinks and new directories are write steps; chown, chmod and
// set-times are metadata steps, counted apart: the Nth fails with the
// planned errno, naming the path, and shifts no write step.
TEST(FaultEnvTest, LinksAreWriteStepsAndMetadataStepsCountApart) {
  TempDir tmp;
  WriteFile(tmp / "f", "x");
  FaultPlan plan;
  plan.fail_metadata_at = 3;
  plan.metadata_errno = EPERM;
  FaultEnv fenv(Env::Default(), plan);
  Env* env = &fenv;
  env->MakeNewDir(tmp / "d");
  env->Link(tmp / "f", tmp / "d/hard");
  env->Symlink("f", tmp / "s");
  EXPECT_EQ(fenv.write_steps(), 3);
  EXPECT_EQ(env->ReadLink(tmp / "s"), "f");
  EXPECT_EQ(env->Status(tmp / "f").nlink, 2u);
  EXPECT_TRUE(env->SetOwner(tmp / "f", ::getuid(), ::getgid()));
  env->SetMode(tmp / "f", 0640);
  try {
    env->SetTimes(tmp / "s", std::nullopt, 1000000000);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set times of " + (tmp / "s")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(injected)"), std::string::npos) << e.what();
  }
  env->SetTimes(tmp / "s", std::nullopt, 1000000000);  // only the 3rd fails
  EXPECT_EQ(env->Status(tmp / "s").mtime_ns, 1000000000);
  EXPECT_EQ(env->Status(tmp / "f").mode, 0640u);
  EXPECT_EQ(fenv.metadata_steps(), 4);
  EXPECT_EQ(fenv.write_steps(), 3);
}

TEST(FaultEnvTest, WriteFileAtomicIsSixWriteSteps) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(), FaultPlan{});
  WriteFileAtomic(&fenv, tmp / "x", "data");
  EXPECT_EQ(fenv.write_steps(), 6);  // open, append, fsync, close, rename, fsync dir
  EXPECT_EQ(ReadFile(tmp / "x"), "data");
}

// For every step k of the script: EIO at step k throws kIo naming that step's
// path, exactly at step k and not before; steps before it took effect.
TEST(FaultEnvTest, EioAtExactlyTheNthWriteStep) {
  for (int k = 1; k <= 10; k++) {
    SCOPED_TRACE("fail_write_at=" + std::to_string(k));
    TempDir tmp;
    FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = k, .write_errno = EIO});
    Script script(&fenv, tmp.path());
    int failed_at = 0;
    for (int i = 1; i <= 10; i++) {
      const Step& step = script.steps()[i - 1];
      try {
        step.run();
      } catch (const Error& e) {
        failed_at = i;
        EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
        EXPECT_NE(std::string(e.what()).find(step.path), std::string::npos)
            << "error does not name " << step.path << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find("(injected)"), std::string::npos) << e.what();
        break;
      }
    }
    EXPECT_EQ(failed_at, k);
    EXPECT_EQ(fenv.write_steps(), k);
    EXPECT_FALSE(fenv.crashed());
    // The failing step itself did not happen.
    switch (k) {
      case 1: EXPECT_FALSE(fs::exists(tmp / "f")); break;
      case 7: EXPECT_FALSE(fs::exists(tmp / "d")); break;
      case 9:
        EXPECT_TRUE(fs::exists(tmp / "f"));
        EXPECT_FALSE(fs::exists(tmp / "d/g"));
        break;
      case 10: EXPECT_TRUE(fs::exists(tmp / "d/g")); break;
      default: break;
    }
  }
}

TEST(FaultEnvTest, EnospcIsKindNoSpace) {
  for (int k = 1; k <= 10; k++) {
    SCOPED_TRACE("fail_write_at=" + std::to_string(k));
    TempDir tmp;
    FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = k, .write_errno = ENOSPC});
    Script script(&fenv, tmp.path());
    for (int i = 1; i < k; i++) ASSERT_NO_THROW(script.steps()[i - 1].run()) << "step " << i;
    const Step& step = script.steps()[k - 1];
    try {
      step.run();
      ADD_FAILURE() << "step " << k << " (" << step.name << ") did not fail";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
      EXPECT_NE(std::string(e.what()).find(step.path), std::string::npos) << e.what();
    }
  }
}

// Without fail_every_write_after the disk recovers: later steps succeed.
TEST(FaultEnvTest, SingleFaultThenLaterStepsSucceed) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 2, .write_errno = EIO});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExclusive);
  EXPECT_THROW(f->Append("abcd", 4), Error);
  EXPECT_NO_THROW(f->Append("efgh", 4));
  EXPECT_NO_THROW(f->Sync());
  EXPECT_NO_THROW(f->Close());
  EXPECT_NO_THROW(env->MakeDir(tmp / "d"));
  EXPECT_EQ(fenv.write_steps(), 6);
  EXPECT_FALSE(fenv.crashed());
  // The failed append was short: "ab" reached the disk, then "efgh" after it.
  EXPECT_EQ(ReadFile(tmp / "f"), "abefgh");
}

TEST(FaultEnvTest, ShortAppendLeavesHalfTheBytes) {
  TempDir tmp;
  std::string data = test::RandomBytes(1000, 7);
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 3, .write_errno = ENOSPC});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExclusive);  // 1
  f->Append("0123456789", 10);                                   // 2
  try {
    f->Append(data.data(), data.size());  // 3: short, then ENOSPC
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace);
    EXPECT_NE(std::string(e.what()).find(tmp / "f"), std::string::npos) << e.what();
  }
  f.reset();
  EXPECT_EQ(ReadFile(tmp / "f"), "0123456789" + data.substr(0, 500));
}

TEST(FaultEnvTest, ShortWriteAtLeavesHalfTheBytesAtTheOffset) {
  TempDir tmp;
  WriteFile(tmp / "f", std::string(200, '.'));
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 2, .write_errno = EIO});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExisting);  // 1
  std::string data(64, 'x');
  try {
    f->WriteAt(100, data.data(), data.size());  // 2
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
  }
  f.reset();
  EXPECT_EQ(ReadFile(tmp / "f"), std::string(100, '.') + std::string(32, 'x') + std::string(68, '.'));
}

TEST(FaultEnvTest, OneByteWriteIsNotShortened) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 2, .write_errno = EIO});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExclusive);
  EXPECT_THROW(f->Append("x", 1), Error);
  f.reset();
  EXPECT_EQ(FileSize(tmp / "f"), 0u);
}

// write_errno 0: the process "dies" at step k. That step and every later
// write step of any kind throw kCrash, and none reaches the disk (a crash is
// not a short write).
TEST(FaultEnvTest, CrashAtNthStepThenEveryWriteStepFails) {
  TempDir tmp;
  WriteFile(tmp / "existing", "keep");
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 3, .write_errno = 0});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExclusive);  // 1
  f->Append("abc", 3);                                         // 2
  EXPECT_FALSE(fenv.crashed());
  std::string big(100, 'z');
  try {
    f->Append(big.data(), big.size());  // 3: the crash
    FAIL() << "no crash";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCrash) << e.what();
    EXPECT_NE(std::string(e.what()).find(tmp / "f"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fenv.crashed());
  EXPECT_EQ(fenv.write_steps(), 3);

  auto expect_crash = [](const char* what, const std::function<void()>& fn) {
    try {
      fn();
      ADD_FAILURE() << what << " succeeded after the crash";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCrash) << what << ": " << e.what();
    }
  };
  expect_crash("append", [&] { f->Append("d", 1); });
  expect_crash("writeat", [&] { f->WriteAt(0, "XY", 2); });
  expect_crash("truncate", [&] { f->Truncate(0); });
  expect_crash("sync", [&] { f->Sync(); });
  expect_crash("close", [&] { f->Close(); });
  expect_crash("open", [&] { env->OpenWrite(tmp / "g", CreateMode::kExclusive); });
  expect_crash("open existing", [&] { env->OpenWrite(tmp / "existing", CreateMode::kTruncate); });
  expect_crash("rename", [&] { env->Rename(tmp / "existing", tmp / "moved"); });
  expect_crash("remove", [&] { env->Remove(tmp / "existing"); });
  expect_crash("mkdir", [&] { env->MakeDir(tmp / "d"); });
  expect_crash("syncdir", [&] { env->SyncDir(tmp.path()); });
  expect_crash("atomic", [&] { WriteFileAtomic(env, tmp / "existing", "new"); });
  EXPECT_TRUE(fenv.crashed());
  f.reset();

  // Nothing after the crash reached the disk.
  EXPECT_EQ(ReadFile(tmp / "f"), "abc");
  EXPECT_EQ(ReadFile(tmp / "existing"), "keep");
  EXPECT_FALSE(fs::exists(tmp / "g"));
  EXPECT_FALSE(fs::exists(tmp / "moved"));
  EXPECT_FALSE(fs::exists(tmp / "d"));
  EXPECT_FALSE(fs::exists(tmp / "existing.tmp-" + std::to_string(::getpid())));
}

TEST(FaultEnvTest, CrashAtFirstStepCreatesNothing) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = 1, .write_errno = 0});
  Env* env = &fenv;
  try {
    env->OpenWrite(tmp / "f", CreateMode::kExclusive);
    FAIL() << "no crash";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCrash);
  }
  EXPECT_TRUE(fenv.crashed());
  EXPECT_FALSE(fs::exists(tmp / "f"));
}

// A crash at any step of WriteFileAtomic leaves the old or the new content,
// never a mix.
TEST(FaultEnvTest, CrashDuringWriteFileAtomicLeavesOldOrNew) {
  for (int k = 1; k <= 6; k++) {
    SCOPED_TRACE("crash at " + std::to_string(k));
    TempDir tmp;
    WriteFile(tmp / "x", "old content");
    FaultEnv fenv(Env::Default(), FaultPlan{.fail_write_at = k, .write_errno = 0});
    try {
      WriteFileAtomic(&fenv, tmp / "x", "new content, longer");
      ADD_FAILURE() << "no crash";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCrash);
    }
    std::string got = ReadFile(tmp / "x");
    // Rename is step 5: from then on the new content is in place.
    EXPECT_EQ(got, k <= 5 ? "old content" : "new content, longer");
  }
}

TEST(FaultEnvTest, FailEveryWriteAfterKeepsFailing) {
  TempDir tmp;
  FaultEnv fenv(Env::Default(),
                FaultPlan{.fail_write_at = 2, .write_errno = ENOSPC, .fail_every_write_after = true});
  Env* env = &fenv;
  auto f = env->OpenWrite(tmp / "f", CreateMode::kExclusive);  // 1: before the fault
  std::vector<std::pair<std::string, std::function<void()>>> later = {
      {"append", [&] { f->Append("abcdef", 6); }},
      {"append again", [&] { f->Append("ghijkl", 6); }},
      {"writeat", [&] { f->WriteAt(0, "xy", 2); }},
      {"sync", [&] { f->Sync(); }},
      {"close", [&] { f->Close(); }},
      {"open", [&] { env->OpenWrite(tmp / "g", CreateMode::kExclusive); }},
      {"mkdir", [&] { env->MakeDir(tmp / "d"); }},
      {"rename", [&] { env->Rename(tmp / "f", tmp / "h"); }},
      {"remove", [&] { env->Remove(tmp / "f"); }},
      {"syncdir", [&] { env->SyncDir(tmp.path()); }},
  };
  for (const auto& [name, fn] : later) {
    try {
      fn();
      ADD_FAILURE() << name << " succeeded on a full disk";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << name << ": " << e.what();
    }
  }
  EXPECT_FALSE(fenv.crashed());
  EXPECT_EQ(fenv.write_steps(), 1 + static_cast<int64_t>(later.size()));
  f.reset();
  // Only the first failing append was short (3 of 6 bytes); the rest wrote nothing.
  EXPECT_EQ(ReadFile(tmp / "f"), "abc");
  EXPECT_FALSE(fs::exists(tmp / "g"));
  EXPECT_FALSE(fs::exists(tmp / "d"));
  EXPECT_FALSE(fs::exists(tmp / "h"));
}

TEST(FaultEnvTest, FailReadAtNthReadAt) {
  TempDir tmp;
  WriteFile(tmp / "a", "0123456789");
  WriteFile(tmp / "b", "abcdefghij");
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_read_at = 3});
  Env* env = &fenv;
  auto a = env->OpenRead(tmp / "a");
  auto b = env->OpenRead(tmp / "b");
  EXPECT_EQ(fenv.reads(), 0);  // opening is not a read
  char buf[4];
  EXPECT_EQ(a->ReadAt(0, buf, 4), 4u);  // 1
  EXPECT_EQ(b->ReadAt(2, buf, 4), 4u);  // 2
  EXPECT_EQ(std::string(buf, 4), "cdef");
  try {
    a->ReadAt(4, buf, 4);  // 3
    FAIL() << "no read error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
    EXPECT_NE(std::string(e.what()).find(tmp / "a"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Input/output error"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a->ReadAt(4, buf, 4), 4u);  // 4: only the Nth read fails
  EXPECT_EQ(std::string(buf, 4), "4567");
  EXPECT_EQ(fenv.reads(), 4);
  // Size and sparse queries are not reads.
  EXPECT_EQ(a->Size(), 10u);
  EXPECT_EQ(a->NextData(0), 0u);
  EXPECT_EQ(fenv.reads(), 4);
  // Read faults are independent of writes.
  EXPECT_EQ(fenv.write_steps(), 0);
  EXPECT_FALSE(fenv.crashed());
}

TEST(FaultEnvTest, FailReadWithOtherErrno) {
  TempDir tmp;
  WriteFile(tmp / "a", "0123456789");
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_read_at = 1, .read_errno = ENOSPC});
  auto a = static_cast<Env*>(&fenv)->OpenRead(tmp / "a");
  char buf[4];
  try {
    a->ReadAt(0, buf, 4);
    FAIL() << "no read error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
  }
}

TEST(FaultEnvTest, ReadFaultThroughReadFileToString) {
  TempDir tmp;
  WriteFile(tmp / "a", "content");
  FaultEnv fenv(Env::Default(), FaultPlan{.fail_read_at = 1});
  try {
    ReadFileToString(&fenv, tmp / "a");
    FAIL() << "an injected read error was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
  }
  EXPECT_EQ(ReadFileToString(&fenv, tmp / "a"), "content");
}

// ---------------------------------------------------------------------------
// PosixEnv never follows a symlink where it expects its own file or directory
// (a store on a disk someone else handled), and makes private files.

class PosixEnvLinksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    victim_ = tmp_ / "victim";
    WriteFile(victim_, "precious");
  }
  bool VictimIntact() { return ReadFile(victim_) == "precious"; }
  TempDir tmp_;
  std::string victim_;
  Env* env_ = Env::Default();
};

TEST_F(PosixEnvLinksTest, CreatingNeverWritesThroughASymlink) {
  std::string link = tmp_ / "link";
  fs::create_symlink(victim_, link);
  EXPECT_THROW(env_->OpenWrite(link, CreateMode::kTruncate), Error);
  EXPECT_THROW(env_->OpenWrite(link, CreateMode::kExclusive), Error);
  EXPECT_THROW(env_->OpenWrite(link, CreateMode::kExisting), Error);  // a regular file behind it
  EXPECT_TRUE(VictimIntact());
  std::string dangling = tmp_ / "dangling";
  fs::create_symlink(tmp_ / "created", dangling);
  EXPECT_THROW(env_->OpenWrite(dangling, CreateMode::kTruncate), Error);
  EXPECT_FALSE(fs::exists(tmp_ / "created"));
}

// The opens that skip their checks (a create that must make the file, the
// read-ahead advice) still block on nothing and create nothing else.
TEST_F(PosixEnvLinksTest, UncheckedOpensNeitherBlockNorFollow) {
  const std::string fifo = tmp_ / "fifo";
  test::MakeFifo(fifo, 0600);
  EXPECT_THROW(env_->OpenWrite(fifo, CreateMode::kExclusive), Error);  // there already
  EXPECT_THROW(env_->OpenWrite(fifo, CreateMode::kExisting), Error);   // no reader: refused, not waited for
  auto dir = env_->OpenDirectory(tmp_.path());
  dir->WillNeed("fifo", 4096);  // no writer: a blocking open would never return
  fs::create_symlink(victim_, tmp_ / "link");
  dir->WillNeed("link", 4096);
  for (const char* odd : {"", ".", "..", "a/b", "missing"}) dir->WillNeed(odd, 4096);
  EXPECT_TRUE(VictimIntact());
  auto made = env_->OpenWrite(tmp_ / "new", CreateMode::kExclusive, 0600);
  made->Append("x", 1);
  made->Close();
  EXPECT_EQ(ReadFile(tmp_ / "new"), "x");
  EXPECT_EQ(fs::status(tmp_ / "new").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

// A file open for writing reads and changes its own metadata through its
// descriptor, as Env does by path; FaultEnv counts those changes as
// metadata steps (not write steps) and fails them as planned.
TEST_F(PosixEnvLinksTest, AWritableFileHasItsMetadataThroughItsDescriptor) {
  auto f = env_->OpenWrite(tmp_ / "f", CreateMode::kExclusive, 0600);
  ASSERT_TRUE(f->MetadataByDescriptor());
  f->Append("data", 4);
  f->SetMode(0640);
  f->SetMtime(1700000000123456789);
  bool xattrs = true;  // the temp file system keeps user xattrs
  try {
    env_->SetXattr(victim_, "user.probe", "1");
  } catch (const Error&) {
    xattrs = false;
  }
  if (xattrs) {
    f->SetXattr("user.a", "1");
    f->SetXattr("user.b", "2");
    f->RemoveXattr("user.b");
    f->RemoveXattr("user.none");  // not there: nothing to do
    EXPECT_EQ(f->ReadXattrs(), (Xattrs{{"user.a", "1"}}));
  }
  const FileStatus owned = f->Status();
  EXPECT_TRUE(f->SetOwner(owned.uid, owned.gid));
  const FileStatus st = f->Status();
  f->Close();
  const FileStatus by_path = env_->Status(tmp_ / "f");
  EXPECT_EQ(st.ino, by_path.ino);
  EXPECT_EQ(st.mode, 0640u);
  EXPECT_EQ(st.mtime_ns, 1700000000123456789);
  EXPECT_EQ(st.ctime_ns, by_path.ctime_ns) << "a close moves no time";
  EXPECT_EQ(st.size, 4u);
  if (xattrs) {
    EXPECT_EQ(env_->ReadXattrs(tmp_ / "f"), (Xattrs{{"user.a", "1"}}));
  }

  FaultEnv fenv(env_, FaultPlan{.fail_metadata_at = 2, .metadata_errno = EACCES});
  auto g = fenv.OpenWrite(tmp_ / "g", CreateMode::kExclusive, 0600);
  g->Append("x", 1);
  g->SetMode(0644);
  EXPECT_THROW(g->SetMtime(0), Error);
  g->Close();
  EXPECT_EQ(fenv.metadata_steps(), 2);
  EXPECT_EQ(env_->Status(tmp_ / "g").mode, 0644u);
}

TEST_F(PosixEnvLinksTest, LocksRefuseSymlinksAndNeverCreateTheirTarget) {
  std::string link = tmp_ / "lock";
  fs::create_symlink(victim_, link);
  for (LockMode m : {LockMode::kShared, LockMode::kExclusive}) {
    try {
      env_->Lock(link, m);
      ADD_FAILURE() << "locked through a symlink";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(VictimIntact());
  std::string dangling = tmp_ / "lock2";
  fs::create_symlink(tmp_ / "created", dangling);
  EXPECT_THROW(env_->Lock(dangling, LockMode::kExclusive), Error);
  EXPECT_THROW(env_->Lock(dangling, LockMode::kShared), Error);
  EXPECT_FALSE(fs::exists(tmp_ / "created"));
}

TEST_F(PosixEnvLinksTest, DirectoriesAreNotFollowed) {
  std::string real = tmp_ / "real";
  fs::create_directory(real);
  WriteFile(real + "/f", "x");
  std::string link = tmp_ / "dirlink";
  fs::create_symlink(real, link);
  EXPECT_THROW(env_->ListDir(link), Error);
  EXPECT_THROW(env_->MakeDir(link), Error);
  EXPECT_EQ(env_->Status(link).kind, FileKind::kSymlink);
  EXPECT_THROW(env_->SetMode(link, 0700), Error);
  EXPECT_EQ(env_->ListDir(real), std::vector<std::string>{"f"});
}

TEST_F(PosixEnvLinksTest, NewFilesAndDirectoriesArePrivate) {
  mode_t old = ::umask(022);
  env_->MakeDir(tmp_ / "d");
  env_->OpenWrite(tmp_ / "f", CreateMode::kExclusive)->Close();
  WriteFileAtomic(env_, tmp_ / "a", "data");
  ::umask(077);
  WriteFileAtomic(env_, tmp_ / "m.prom", "metrics", 0644);  // exactly 0644, whatever the umask
  ::umask(old);
  EXPECT_EQ(env_->Status(tmp_ / "d").mode, 0700u);
  EXPECT_EQ(env_->Status(tmp_ / "f").mode, 0600u);
  EXPECT_EQ(env_->Status(tmp_ / "a").mode, 0600u);
  EXPECT_EQ(env_->Status(tmp_ / "m.prom").mode, 0644u);
  // Nothing left beside them.
  EXPECT_EQ(env_->ListDir(tmp_.path()).size(), 5u);  // victim, d, f, a, m.prom
}

TEST_F(PosixEnvLinksTest, TempNamesAreRandomAndFailuresCleanUp) {
  std::string a = TempPathFor(tmp_ / "x"), b = TempPathFor(tmp_ / "x");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(tmp_ / "x.tmp-", 0), 0u);
  // A crash-free failure (ENOSPC at the fsync) removes the temporary.
  FaultPlan plan;
  plan.fail_write_at = 3;  // create, write, fsync
  plan.write_errno = ENOSPC;
  FaultEnv fenv(env_, plan);
  EXPECT_THROW(WriteFileAtomic(&fenv, tmp_ / "y", "data"), Error);
  EXPECT_EQ(env_->ListDir(tmp_.path()), std::vector<std::string>{"victim"});
}

TEST_F(PosixEnvLinksTest, ReadWholeIsCapped) {
  WriteFile(tmp_ / "big", std::string(4096, 'x'));
  EXPECT_EQ(ReadFileToString(env_, tmp_ / "big", 4096).size(), 4096u);
  try {
    ReadFileToString(env_, tmp_ / "big", 4095);
    ADD_FAILURE() << "read beyond the cap";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_NE(std::string(e.what()).find(tmp_ / "big"), std::string::npos) << e.what();
  }
}

// statfs through the seam: the file system's magic number (what a btrfs
// target checks), also through a wrapper; a path not there is an error
// naming it.
TEST_F(PosixEnvLinksTest, FileSystemTypeIsTheMagicNumber) {
  constexpr uint64_t kProcMagic = 0x9fa0;  // PROC_SUPER_MAGIC
  EXPECT_EQ(env_->FileSystemType("/proc"), kProcMagic);
  FaultEnv fenv(env_, FaultPlan{});
  EXPECT_EQ(fenv.FileSystemType("/proc/self"), kProcMagic);
  EXPECT_NE(env_->FileSystemType(tmp_.path()), kProcMagic);
  try {
    env_->FileSystemType(tmp_ / "absent");
    ADD_FAILURE() << "statfs of a missing path succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("statfs " + (tmp_ / "absent")), std::string::npos) << e.what();
  }
}

TEST_F(PosixEnvLinksTest, AFifoIsRefusedWithoutBlocking) {
  std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(env_->OpenRead(fifo), Error);
  EXPECT_THROW(env_->Lock(fifo, LockMode::kShared), Error);
  EXPECT_THROW(env_->Lock(fifo, LockMode::kExclusive), Error);
}

}  // namespace
}  // namespace vmback
