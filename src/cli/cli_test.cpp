// RunCli end to end with captured streams: the command table, dispatch, and
// the exit status of usage, configuration and lock errors.
#include "cli/cli.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/exit_status.h"
#include "helpers/test_util.h"
#include "store/store.h"

namespace vmback {
namespace {

struct CliRun {
  int rc;
  std::string out;  // the stream RunCli prints results and --help to
  std::string err;  // the stream CLI11's usage errors go to
  std::string log;  // the Logger's lines (the process's stderr)
};

CliRun Cli(std::vector<std::string> args) {
  args.insert(args.begin(), "vmback");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  testing::internal::CaptureStderr();
  int rc = RunCli(static_cast<int>(argv.size()), argv.data(), out, err);
  std::string log = testing::internal::GetCapturedStderr();
  return {rc, out.str(), err.str(), log};
}

std::vector<std::string> Words(const std::string& path) {
  std::vector<std::string> words;
  std::istringstream in(path);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

TEST(CliTest, HelpListsEveryCommandOfTheTableUnderItsGroup) {
  ASSERT_GE(CommandTable().size(), 14u);
  for (const CommandInfo& info : CommandTable()) {
    std::vector<std::string> words = Words(info.path);
    const std::string name = words.back();
    words.pop_back();
    words.push_back("--help");
    CliRun r = Cli(words);
    SCOPED_TRACE(info.path);
    EXPECT_EQ(r.rc, kExitOk);
    EXPECT_NE(r.out.find("\n  " + name + " "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(info.summary), std::string::npos) << r.out;
  }
}

TEST(CliTest, EachCommandHasItsOwnHelp) {
  for (const CommandInfo& info : CommandTable()) {
    std::vector<std::string> words = Words(info.path);
    words.push_back("--help");
    CliRun r = Cli(words);
    SCOPED_TRACE(info.path);
    EXPECT_EQ(r.rc, kExitOk);
    EXPECT_NE(r.out.find(std::string("Usage: vmback ") + info.path), std::string::npos) << r.out;
  }
}

TEST(CliTest, TopLevelHelpEndsWithTheExitStatuses) {
  CliRun r = Cli({"--help"});
  EXPECT_EQ(r.rc, kExitOk);
  EXPECT_NE(r.out.find("Exit status:\n  0  success\n  5  success with warnings"), std::string::npos);
  EXPECT_EQ(r.err, "");
}

TEST(CliTest, VersionPrintsTheVersion) {
  CliRun r = Cli({"--version"});
  EXPECT_EQ(r.rc, kExitOk);
  EXPECT_EQ(r.out, std::string("vmback ") + VMBACK_VERSION + "\n");
}

TEST(CliTest, UnknownOrMissingCommandIsAUsageError) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"bogus"}, {}, {"store"}, {"target", "init"}}) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.rc, kExitUsage);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "A subcommand is required\nRun with --help for more information.\n");
  }
}

TEST(CliTest, UnknownOptionIsAUsageErrorNamingIt) {
  CliRun r = Cli({"list", "--bogus-option"});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_NE(r.err.find("--bogus-option"), std::string::npos) << r.err;
}

TEST(CliTest, MissingTargetIsAConfigurationError) {
  CliRun r = Cli({"list"});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.log.find("vmback: error: say which target: -c CONFIG, --store DIR"), std::string::npos) << r.log;
}

TEST(CliTest, BadConfigFileIsAConfigurationError) {
  test::TempDir tmp;
  test::WriteFile(tmp / "vmback.toml", "[target\npath = 3\n");
  CliRun r = Cli({"list", "-c", tmp / "vmback.toml"});
  EXPECT_EQ(r.rc, kExitUsage) << r.log;
  EXPECT_NE(r.log.find("vmback.toml"), std::string::npos) << r.log;
}

TEST(CliTest, OptionForAStoreOnAnInplaceTargetIsAConfigurationError) {
  test::TempDir tmp;
  CliRun r = Cli({"verify", "--dir", tmp.path(), "--read-data-subset", "1/2"});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_NE(r.log.find("--read-data-subset and --read-limit are for a store"), std::string::npos) << r.log;
}

TEST(CliTest, ListOfAnEmptyStoreSaysSoAndSucceeds) {
  test::TempDir tmp;
  const std::string dir = tmp / "store";
  CliRun init = Cli({"store", "init", dir});
  ASSERT_EQ(init.rc, kExitOk) << init.log;
  EXPECT_EQ(init.out, "created store " + dir + " (block size 64.0 KiB)\n");

  CliRun list = Cli({"list", "--store", dir});
  EXPECT_EQ(list.rc, kExitOk) << list.log;
  EXPECT_EQ(list.out, "no points yet in " + dir + "\n");
  EXPECT_EQ(list.log, "");

  CliRun json = Cli({"list", "--store", dir, "--json"});
  EXPECT_EQ(json.rc, kExitOk);
  EXPECT_EQ(json.out, "[]\n");
}

TEST(CliTest, MissingStoreFails) {
  test::TempDir tmp;
  CliRun r = Cli({"list", "--store", tmp / "none"});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.log.find("no vmback store at " + (tmp / "none")), std::string::npos) << r.log;
}

TEST(CliTest, StoreHeldByAnotherProcessIsLocked) {
  test::TempDir tmp;
  const std::string dir = tmp / "store";
  ASSERT_EQ(Cli({"store", "init", dir}).rc, kExitOk);
  Logger quiet(LogLevel::kError, false);
  // flock locks belong to the open file: this one stands for another process.
  auto holder = Store::Open(Env::Default(), dir, LockMode::kExclusive, &quiet);
  CliRun r = Cli({"list", "--store", dir});
  EXPECT_EQ(r.rc, kExitLocked) << r.log;
}

TEST(ExitStatusTest, FindingsMakeTheStatus) {
  EXPECT_EQ(ExitStatusFor(Findings{}), kExitOk);
  Findings damaged;
  damaged.damage = true;
  damaged.warnings = 2;
  damaged.absent_copies = 1;
  EXPECT_EQ(ExitStatusFor(damaged), kExitDamaged);  // damage outranks warnings
  for (int i = 0; i < 5; i++) {
    Findings f;
    if (i == 0) f.warnings = 1;
    if (i == 1) f.repairs = 1;
    if (i == 2) f.absent_copies = 1;
    if (i == 3) f.not_healed = true;
    if (i == 4) f.blocks_lost = true;
    EXPECT_EQ(ExitStatusFor(f), kExitWarnings) << i;
  }
}

TEST(ExitStatusTest, AnErrorGivesItsKindsStatus) {
  EXPECT_EQ(ExitStatusFor(Error(ErrorKind::kConfig, "x")), kExitUsage);
  EXPECT_EQ(ExitStatusFor(Error(ErrorKind::kLocked, "x")), kExitLocked);
  EXPECT_EQ(ExitStatusFor(Error(ErrorKind::kCorrupt, "x")), kExitDamaged);
  EXPECT_EQ(ExitStatusFor(Error(ErrorKind::kOther, "x")), kExitFailed);
}

}  // namespace
}  // namespace vmback
