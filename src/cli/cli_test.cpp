// RunCli end to end with captured streams: the command table, dispatch, and
// the exit status of usage, configuration and lock errors.
#include "cli/cli.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/exit_status.h"
#include "cli/listing.h"
#include "helpers/test_util.h"
#include "store/store.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;

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

TEST(CliTest, UnknownOrMissingCommandIsAUsageErrorNamingItAndTheCommands) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"bogus"}, "vmback: error: unknown command 'bogus'; the commands are: store, target, backup, list, ls,"},
      {{"-v", "lls", "latest"}, "vmback: error: unknown command 'lls'; the commands are: store, target, backup,"},
      {{}, "vmback: error: give a command; the commands are: store, target, backup,"},
      {{"store"}, "vmback: error: 'vmback store' needs a command: init, sync\n"},
      {{"store", "snyc"}, "vmback: error: unknown command 'vmback store snyc'; the commands are: init, sync\n"},
      {{"target", "init"}, "vmback: error: 'vmback target init' needs a command: zfs\n"},
  };
  for (const auto& [args, message] : cases) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.rc, kExitUsage);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << r.err;
    EXPECT_NE(r.err.find("'vmback --help' tells more"), std::string::npos) << r.err;
  }
}

TEST(CliTest, VerboseAndQuietAreTakenAfterTheCommandToo) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::MakeFifo(dir / "src/fifo", 0644);
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  // --no-special says at info level what it leaves out.
  CliRun plain = Cli({"restore", "--store", dir / "s", "latest", "--to", dir / "r1", "--no-special"});
  EXPECT_EQ(plain.rc, kExitOk) << plain.err;
  EXPECT_NE(plain.log.find("leaving out"), std::string::npos) << plain.log;
  EXPECT_EQ(plain.out.rfind("restored 0 files, 1 directory, 0 other entries (0 B) to ", 0), 0u) << plain.out;
  EXPECT_NE(plain.out.find(", 1 special file left out\n"), std::string::npos) << plain.out;
  CliRun quiet = Cli({"restore", "--store", dir / "s", "latest", "--to", dir / "r2", "--no-special", "-q"});
  EXPECT_EQ(quiet.rc, kExitOk) << quiet.err;
  EXPECT_EQ(quiet.log.find("leaving out"), std::string::npos) << "-q after the command: " << quiet.log;
  CliRun verbose = Cli({"list", "--store", dir / "s", "--verbose"});
  EXPECT_EQ(verbose.rc, kExitOk) << verbose.err;
  CliRun both = Cli({"-q", "list", "--store", dir / "s", "-v"});
  EXPECT_EQ(both.rc, kExitOk) << both.err;
}

TEST(CliTest, RestorePathsForgiveALeadingSlashAndNameTheVolumes) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::WriteFile(dir / "src/passwd", "root:x:0:0\n");
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  CliRun slash = Cli({"restore", "--store", dir / "s", "latest", "/src/passwd", "--to", dir / "p"});
  EXPECT_EQ(slash.rc, kExitOk) << slash.log;
  EXPECT_EQ(test::ReadFile(dir / "p"), "root:x:0:0\n");
  CliRun dump = Cli({"dump", "--store", dir / "s", "latest", "/src/passwd", "--force"});
  EXPECT_EQ(dump.rc, kExitOk) << dump.log;
  EXPECT_EQ(dump.out, "root:x:0:0\n");
  CliRun wrong = Cli({"restore", "--store", dir / "s", "latest", "etc/passwd", "--to", dir / "q"});
  EXPECT_EQ(wrong.rc, kExitFailed);
  EXPECT_NE(wrong.log.find("no point holding volume 'etc' (its points' volumes: src)"), std::string::npos)
      << wrong.log;
  const std::string point =
      nlohmann::json::parse(Cli({"list", "--store", dir / "s", "--json"}).out)[0]["name"].get<std::string>();
  CliRun named = Cli({"ls", "--store", dir / "s", point, "etc"});
  EXPECT_NE(named.log.find("has no volume 'etc' (its volumes: src)"), std::string::npos) << named.log;
}

TEST(CliTest, RestoreIntoAnEmptyDirectoryNeedsNoForce) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::WriteFile(dir / "src/a", "a\n");
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  for (const char* d : {"empty1", "empty2", "empty3", "full"}) test::MakeDir(dir / d, 0700);
  test::WriteFile(dir / "full/x", "x");
  CliRun point = Cli({"restore", "--store", dir / "s", "latest", "--to", dir / "empty1"});
  EXPECT_EQ(point.rc, kExitOk) << point.log;
  EXPECT_EQ(test::ReadFile(dir / "empty1/src/a"), "a\n");
  CliRun tree = Cli({"restore", "--store", dir / "s", "latest", "src", "--to", dir / "empty2"});
  EXPECT_EQ(tree.rc, kExitOk) << tree.log;
  EXPECT_EQ(test::ReadFile(dir / "empty2/a"), "a\n");
  CliRun file = Cli({"restore", "--store", dir / "s", "latest", "src/a", "--to", dir / "empty3"});
  EXPECT_EQ(file.rc, kExitUsage) << "a file onto a directory: give the file's path";
  CliRun full = Cli({"restore", "--store", dir / "s", "latest", "--to", dir / "full"});
  EXPECT_EQ(full.rc, kExitUsage);
  EXPECT_NE(full.log.find("without --force"), std::string::npos) << full.log;
}

TEST(CliTest, RestoreForceMergesAndDeleteMakesTheTreeExactlyThePoint) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::MakeDir(dir / "src/sub", 0755);
  test::WriteFile(dir / "src/a", "a\n");
  test::WriteFile(dir / "src/sub/b", "b\n");
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  test::MakeDir(dir / "t", 0700);
  test::MakeDir(dir / "victim", 0700);
  test::WriteFile(dir / "victim/keep", "keep");
  test::WriteFile(dir / "t/extra.txt", "extra");
  test::WriteFile(dir / "t/a", "old");
  CliRun merge = Cli({"restore", "--store", dir / "s", "latest", "src", "--to", dir / "t", "--force"});
  EXPECT_EQ(merge.rc, kExitOk) << merge.log;
  EXPECT_EQ(test::ReadFile(dir / "t/a"), "a\n");
  EXPECT_EQ(test::ReadFile(dir / "t/extra.txt"), "extra") << "--force merges";
  fs::create_symlink(dir / "victim", dir / "t/sub/planted");
  CliRun exact = Cli({"restore", "--store", dir / "s", "latest", "src", "--to", dir / "t", "--delete"});
  EXPECT_EQ(exact.rc, kExitOk) << exact.log;
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "t/extra.txt"))) << "--delete removes extra.txt";
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "t/sub/planted"))) << "--delete removes the planted symlink";
  EXPECT_EQ(test::ReadFile(dir / "victim/keep"), "keep") << "and never follows it";
  EXPECT_EQ(test::ReadFile(dir / "t/sub/b"), "b\n");
  EXPECT_NE(exact.out.find("removed 2 entries the point does not have"), std::string::npos) << exact.out;
  EXPECT_EQ(Cli({"restore", "--store", dir / "s", "latest", "src", "--to", dir / "t", "--delete", "--force"}).rc,
            kExitUsage);
}

TEST(CliTest, RestoreToDashWritesOneFileToStandardOutput) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::MakeDir(dir / "src/sub", 0755);
  test::WriteFile(dir / "src/a", "content\n");
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  CliRun file = Cli({"restore", "--store", dir / "s", "latest", "src/a", "--to", "-"});
  EXPECT_EQ(file.rc, kExitOk) << file.log;
  EXPECT_EQ(file.out, "content\n");
  CliRun tree = Cli({"restore", "--store", dir / "s", "latest", "src/sub", "--to", "-"});
  EXPECT_EQ(tree.rc, kExitUsage);
  EXPECT_EQ(tree.out, "");
  EXPECT_NE(tree.log.find("--to - writes one file to standard output, and 'src/sub' in point"), std::string::npos)
      << tree.log;
  EXPECT_NE(tree.log.find("is a directory"), std::string::npos) << tree.log;
}

TEST(CliTest, RestoreWritesUnderATemporaryNameAndKeepsWhatAFailedOneWouldReplace) {
  test::TempDir dir;
  test::MakeDir(dir / "src", 0755);
  test::WriteFile(dir / "src/a", test::RandomBytes(200000, 7));
  fs::permissions(dir / "src/a", fs::perms(0644));
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  ASSERT_EQ(Cli({"backup", "--store", dir / "s", dir / "src"}).rc, kExitOk);
  ASSERT_EQ(Cli({"restore", "--store", dir / "s", "latest", "src", "--to", dir / "t"}).rc, kExitOk);
  EXPECT_EQ(Env::Default()->ListDir(dir / "t"), std::vector<std::string>{"a"}) << "no temporary left";
  fs::file_status st = fs::status(dir / "t/a");
  ASSERT_TRUE(fs::exists(st));
  EXPECT_EQ(static_cast<unsigned>(st.permissions()), 0644u) << "the temporary's 0600 became the file's mode";

  // A restore --force that fails half way (a damaged block, --fail-fast)
  // leaves the file it would have replaced as it was, and no temporary.
  std::string pack;
  for (const auto& fan : Env::Default()->ListDir(dir / "s/packs"))
    for (const auto& name : Env::Default()->ListDir(dir / "s/packs" + "/" + fan))
      if (name.size() > 5 && name.substr(name.size() - 5) == ".pack") pack = dir / "s/packs" + "/" + fan + "/" + name;
  ASSERT_FALSE(pack.empty());
  test::XorFileByte(pack, fs::file_size(pack) / 2, 0xff);
  test::MakeDir(dir / "u", 0700);
  test::WriteFile(dir / "u/a", "the old file");
  CliRun failed = Cli({"restore", "--store", dir / "s", "latest", "src/a", "--to", dir / "u/a", "--force",
                       "--fail-fast"});
  EXPECT_NE(failed.rc, kExitOk) << failed.log;
  EXPECT_EQ(test::ReadFile(dir / "u/a"), "the old file");
  EXPECT_EQ(Env::Default()->ListDir(dir / "u"), std::vector<std::string>{"a"}) << "no temporary left";
}

TEST(ExitStatusTest, AnInterruptExits128PlusTheSignal) {
  EXPECT_EQ(ExitStatusAfterSignal(SIGINT, kExitFailed), 130);
  EXPECT_EQ(ExitStatusAfterSignal(SIGTERM, kExitFailed), 143);
  EXPECT_EQ(ExitStatusAfterSignal(SIGHUP, kExitUsage), 129);
  EXPECT_EQ(ExitStatusAfterSignal(0, kExitLocked), kExitLocked);
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
  EXPECT_NE(r.log.find("VMBACK_CONFIG"), std::string::npos) << "says where a default comes from: " << r.log;
}


TEST(CliTest, VmbackConfigNamesTheConfigWhenNoTargetIsGiven) {
  test::TempDir dir;
  ASSERT_EQ(Cli({"store", "init", dir / "s"}).rc, kExitOk);
  test::MakeDir(dir / "src", 0755);
  test::WriteFile(dir / "c.toml", "[target]\npath = \"" + (dir / "s") + "\"\n[[volume]]\nname = \"src\"\nsource = \"" +
                                      (dir / "src") + "\"\nsnapshot = \"none\"\nvms = []\n");
  {
    test::ScopedEnv env("VMBACK_CONFIG", dir / "c.toml");
    test::WriteFile(dir / "src/f", "f\n");
    CliRun backup = Cli({"backup"});
    EXPECT_EQ(backup.rc, kExitOk) << "backup backs up the config's volumes: " << backup.log;
    CliRun list = Cli({"list"});
    EXPECT_EQ(list.rc, kExitOk) << list.log;
    EXPECT_EQ(list.out.find("no points yet"), std::string::npos) << "the backup made a point: " << list.out;
    CliRun restore = Cli({"restore", "latest", "/src/f", "--to", dir / "f"});
    EXPECT_EQ(restore.rc, kExitOk) << restore.log;
    EXPECT_EQ(test::ReadFile(dir / "f"), "f\n");
    CliRun plan = Cli({"plan"});
    EXPECT_EQ(plan.err, "") << "plan takes it too, with no -c";
    EXPECT_NE(plan.out + plan.log, "") << "plan worked on the config";
    CliRun other = Cli({"list", "--store", dir / "none"});
    EXPECT_NE(other.log.find(dir / "none"), std::string::npos) << "a target given wins: " << other.log;
  }
  {
    test::ScopedEnv env("VMBACK_CONFIG", dir / "missing.toml");
    CliRun r = Cli({"list"});
    EXPECT_EQ(r.rc, kExitUsage);
    EXPECT_NE(r.log.find("VMBACK_CONFIG"), std::string::npos) << r.log;
    EXPECT_NE(r.log.find(dir / "missing.toml"), std::string::npos) << r.log;
  }
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

TEST(CliTest, ListShowsAStorePointWithItsVolumesAndTags) {
  test::TempDir tmp;
  const std::string dir = tmp / "store";
  ASSERT_EQ(Cli({"store", "init", dir}).rc, kExitOk);
  test::MakeDir(tmp / "data", 0700);
  test::WriteFile(tmp / "data/f", "hello");
  CliRun backup = Cli({"backup", "--store", dir, "--tag", "before-upgrade", tmp / "data"});
  ASSERT_EQ(backup.rc, kExitOk) << backup.log;

  CliRun list = Cli({"list", "--store", dir});
  EXPECT_EQ(list.rc, kExitOk);
  EXPECT_NE(list.out.find("Z  data  #before-upgrade\n"), std::string::npos) << list.out;

  CliRun json = Cli({"list", "--store", dir, "--json"});
  EXPECT_EQ(json.rc, kExitOk);
  nlohmann::json points = nlohmann::json::parse(json.out);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0]["volumes"], nlohmann::json::array({"data"}));
  EXPECT_EQ(points[0]["tags"], nlohmann::json::array({"before-upgrade"}));
  EXPECT_EQ(points[0]["stats"]["volumes"][0]["files"], 1);
  EXPECT_FALSE(points[0]["stats"].contains("point"));
}

TEST(ListingTest, ColumnsStayAlignedWhatEverTheNames) {
  PointSummary a, b, c;
  a.name = "2026-01-01T020000Z";
  a.time_ns = 1767232800000000000;
  a.volumes = {"images"};
  b = a;
  b.name = "2026-01-01T020000Z.2";
  c.name = "current";
  c.time_ns = -1;
  c.volumes = {"d"};
  std::ostringstream out;
  PrintPoints({"store", {a, b, c}}, out);
  EXPECT_EQ(out.str(),
            "2026-01-01T020000Z    2026-01-01T02:00:00Z  images\n"
            "2026-01-01T020000Z.2  2026-01-01T02:00:00Z  images\n"
            "current               ?                     d\n");
}

TEST(ListingTest, AnInplacePointHasNoTagsOrStats) {
  PointSummary p;
  p.name = "current";
  p.time_ns = -1;
  p.volumes = {"d"};
  nlohmann::json j = PointsToJson({p});
  EXPECT_EQ(j.dump(), R"([{"name":"current","time":"","time_ns":-1,"volumes":["d"]}])");
  std::ostringstream out;
  PrintPoints({"dir:/x", {p}}, out);
  EXPECT_EQ(out.str(), "current  ?  d\n");
  std::ostringstream none;
  PrintPoints({"dir:/x", {}}, none);
  EXPECT_EQ(none.str(), "no points yet in dir:/x\n");
}

TEST(ListingTest, PruneJsonHasGarbageCollectionOnlyForAStore) {
  PruneSummary s;
  s.dry_run = true;
  s.decisions = {{"b", 2, true, {"last 1"}, R"({"host":"h"})"}, {"a", 1, false, {}, ""}};
  s.deleted = {"a"};
  EXPECT_EQ(PruneSummaryToJson(s).dump(),
            R"({"decisions":[{"group":{"host":"h"},"keep":true,"name":"b","reasons":["last 1"]},)"
            R"({"group":null,"keep":false,"name":"a","reasons":[]}],"deleted":["a"],"dry_run":true})");
  s.gc = GcStats{};
  s.gc->packs_deleted = 2;
  s.gc->bytes_freed = 2048;
  nlohmann::json j = PruneSummaryToJson(s);
  EXPECT_EQ(j["packs_deleted"], 2);
  EXPECT_EQ(j["packs_repacked"], 0);
  EXPECT_EQ(j["bytes_freed"], 2048);
  std::ostringstream out;
  PrintPruneSummary(s, out);
  EXPECT_NE(out.str().find("would delete 1 point; would reclaim 2.0 KiB (2 packs deleted, 0 repacked)\n"),
            std::string::npos)
      << out.str();
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
