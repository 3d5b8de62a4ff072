// Tests of RunSubprocess: output and exit status as before, and that nothing
// waits forever: a deadline or the cancel flag kills the whole process group
// of a command (a child it started included) within a fraction of a second.
#include "os/subprocess.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "helpers/test_util.h"
#include "util/error.h"

namespace vmback {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

double SecondsSince(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

// A shell that starts a child sleep, writes its process group to pgid_file,
// and waits: as an lvcreate stuck on a device.
// A shell that writes its process group (field 5 of /proc/self/stat, read
// with builtins only: written before any limit of a test can strike, even on
// a loaded machine) and waits on a child sleep.
std::vector<std::string> Hanger(const std::string& pgid_file) {
  return {"sh", "-c", "read -r _ _ _ _ g _ </proc/$$/stat; echo \"$g\" >\"$0\"; sleep 3600 & wait", pgid_file};
}

// The group in pgid_file has no live process left, within 3 s (a SIGKILL
// is delivered, and the killed reaped, a moment after it is sent).
bool GroupGone(const std::string& pgid_file) {
  std::string text = test::ReadFile(pgid_file);
  if (text.empty()) return false;
  for (int i = 0; i < 60; i++) {
    if (test::LiveProcessesInGroup(std::stoi(text)).empty()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

TEST(SubprocessTest, CapturesOutputAndExitStatus) {
  RunResult r = RunSubprocess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(DescribeFailure({"sh", "-c", "x"}, r), "sh -c x failed (exit 3): err");
  r = RunSubprocess({"sh", "-c", "kill -KILL $$"});
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(SubprocessTest, DeadlineKillsTheProcessGroup) {
  test::TempDir tmp;
  RunLimits limits;
  limits.deadline = Steady::now() + milliseconds(500);
  auto start = Steady::now();
  try {
    RunSubprocess(Hanger(tmp / "pgid"), limits);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_TRUE(Has(m, "sh -c")) << m;
    EXPECT_TRUE(Has(m, "did not finish within 0.5 s")) << m;
    EXPECT_TRUE(Has(m, "killed its process group")) << m;
  }
  double took = SecondsSince(start);
  EXPECT_GE(took, 0.5);
  EXPECT_LE(took, 1.2);
  EXPECT_TRUE(GroupGone(tmp / "pgid")) << "the child sleep survived";
}

TEST(SubprocessTest, CancelKillsTheProcessGroupAtOnce) {
  test::TempDir tmp;
  std::atomic<bool> cancel{false};
  Steady::time_point set_at;
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(300));
    set_at = Steady::now();
    cancel = true;
  });
  RunLimits limits;
  limits.cancel = &cancel;
  std::string message;
  try {
    RunSubprocess(Hanger(tmp / "pgid"), limits);
  } catch (const Error& e) {
    message = e.what();
  }
  auto ended = Steady::now();
  t.join();
  EXPECT_TRUE(Has(message, "interrupted by a signal")) << message;
  EXPECT_LE(std::chrono::duration<double>(ended - set_at).count(), 0.5);
  EXPECT_TRUE(GroupGone(tmp / "pgid"));
  // Set before the start: not started at all.
  try {
    RunSubprocess({"touch", tmp / "made"}, limits);
    ADD_FAILURE() << "started although cancelled";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "not started")) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "made"));
}

// A command that closes its output and goes on (a daemon that did not
// detach) is bounded too, and a command that ignores SIGTERM gets SIGKILL.
TEST(SubprocessTest, ClosedOutputAndIgnoredSigtermAreBounded) {
  RunLimits limits;
  limits.deadline = Steady::now() + milliseconds(300);
  auto start = Steady::now();
  EXPECT_THROW(RunSubprocess({"sh", "-c", "exec >/dev/null 2>&1; trap '' TERM; sleep 3600"}, limits), Error);
  EXPECT_LE(SecondsSince(start), 1.2);
}

// What a command prints is held in memory: past kMaxCommandOutput (a
// hostile host at the other end of ssh) it is killed, and Error says so.
TEST(SubprocessTest, OutputPastTheCapIsRefused) {
  try {
    RunSubprocess({"head", "-c", std::to_string(kMaxCommandOutput + 4096), "/dev/zero"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "printed more than 64 MiB")) << e.what();
  }
  RunResult r = RunSubprocess({"head", "-c", std::to_string(kMaxCommandOutput), "/dev/zero"});
  EXPECT_EQ(r.out.size(), kMaxCommandOutput);
  try {
    RunPipeSubprocesses({"echo", "x"}, {"sh", "-c", "cat >/dev/null; head -c 70000000 /dev/zero >&2"}, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "printed more than 64 MiB")) << e.what();
  }
}

TEST(SubprocessTest, StartFailureNamesTheProgram) {
  try {
    RunSubprocess({"/nonexistent/program"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "/nonexistent/program")) << e.what();
  }
}

// --- RunPipeSubprocesses: producer | consumer relayed through vmback ------

TEST(SubprocessPipeTest, RelaysAndCountsEveryByte) {
  PipeResult r = RunPipeSubprocesses({"head", "-c", "3000000", "/dev/urandom"}, {"sha256sum"}, {});
  EXPECT_EQ(r.producer.exit_code, 0);
  EXPECT_EQ(r.consumer.exit_code, 0);
  EXPECT_EQ(r.bytes, 3000000u);
  // The same bytes, checked by the consumer: a file written by tee and
  // hashed again gives the sum the consumer printed.
  test::TempDir tmp;
  r = RunPipeSubprocesses({"sh", "-c", "head -c 2500000 /dev/urandom | tee \"$0\"", tmp / "copy"},
                          {"sha256sum"}, {});
  ASSERT_EQ(r.consumer.exit_code, 0);
  RunResult again = RunSubprocess({"sha256sum", tmp / "copy"});
  EXPECT_EQ(r.consumer.out.substr(0, 64), again.out.substr(0, 64));
  EXPECT_EQ(r.bytes, 2500000u);
}

TEST(SubprocessPipeTest, KeepsEachOnesWordsAndExit) {
  PipeResult r = RunPipeSubprocesses({"sh", "-c", "echo sent; echo oops >&2; exit 2"},
                                     {"sh", "-c", "cat; echo refused >&2; exit 4"}, {});
  EXPECT_EQ(r.producer.exit_code, 2);
  EXPECT_EQ(r.producer.err, "oops\n");
  EXPECT_EQ(r.consumer.exit_code, 4);
  EXPECT_EQ(r.consumer.out, "sent\n");
  EXPECT_EQ(r.consumer.err, "refused\n");
}

// A consumer that refuses the stream at once (zfs recv into a dataset that
// has diverged): the producer, still sending, is ended, and vmback is not
// killed by SIGPIPE.
TEST(SubprocessPipeTest, ConsumerGoneEarlyEndsTheProducer) {
  test::TempDir tmp;
  auto start = Steady::now();
  PipeResult r = RunPipeSubprocesses(
      {"sh", "-c", "ps -o pgid= -p $$ | tr -d ' ' >\"$0\"; while :; do head -c 65536 /dev/zero; done", tmp / "pgid"},
      {"sh", "-c", "head -c 1000 >/dev/null; echo no >&2; exit 1"}, {});
  EXPECT_EQ(r.consumer.exit_code, 1);
  EXPECT_EQ(r.consumer.err, "no\n");
  EXPECT_EQ(r.producer.exit_code, -1);
  EXPECT_LE(SecondsSince(start), 5.0);
  EXPECT_TRUE(GroupGone(tmp / "pgid"));
}

TEST(SubprocessPipeTest, StallKillsBoth) {
  test::TempDir tmp;
  PipeLimits limits;
  limits.stall = milliseconds(400);
  auto start = Steady::now();
  try {
    RunPipeSubprocesses(Hanger(tmp / "pgid"), {"cat"}, limits);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "| cat moved no byte for 0.4 s")) << e.what();
  }
  EXPECT_LE(SecondsSince(start), 2.0);
  EXPECT_TRUE(GroupGone(tmp / "pgid")) << "the producer's child sleep survived";
}

TEST(SubprocessPipeTest, StartFailureNamesTheProgram) {
  EXPECT_THROW(RunPipeSubprocesses({"echo", "x"}, {"/nonexistent/recv"}, {}), Error);
  try {
    RunPipeSubprocesses({"/nonexistent/send"}, {"cat"}, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "/nonexistent/send")) << e.what();
  }
}

}  // namespace
}  // namespace vmback
