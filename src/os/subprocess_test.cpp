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
std::vector<std::string> Hanger(const std::string& pgid_file) {
  return {"sh", "-c", "ps -o pgid= -p $$ | tr -d ' ' >\"$0\"; sleep 3600 & wait", pgid_file};
}

bool GroupGone(const std::string& pgid_file) {
  std::string text = test::ReadFile(pgid_file);
  return !text.empty() && test::LiveProcessesInGroup(std::stoi(text)).empty();
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

TEST(SubprocessTest, StartFailureNamesTheProgram) {
  try {
    RunSubprocess({"/nonexistent/program"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(Has(e.what(), "/nonexistent/program")) << e.what();
  }
}

}  // namespace
}  // namespace vmback
