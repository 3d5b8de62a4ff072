// Per-run JSON report files: their names, their atomic writing, and the
// rotation that keeps the newest N of each kind and touches nothing else.
#include "report/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "helpers/test_util.h"
#include "helpers/fault_env.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::ReadFile;
using test::TempDir;
using test::WriteFile;

constexpr int64_t kSecond = 1000000000;
constexpr int64_t kT0 = 1764180062 * kSecond + 123;  // 2025-11-26T180102Z

std::vector<std::string> Names(const std::vector<ReportFile>& reports) {
  std::vector<std::string> out;
  for (const auto& r : reports) out.push_back(r.name);
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(ReportNameTest, FormatsAndParses) {
  EXPECT_EQ(ReportFileName(kT0, "run"), "vmback-2025-11-26T180102Z-run.json");
  EXPECT_EQ(ReportFileName(kT0, "store-sync", 2), "vmback-2025-11-26T180102Z.2-store-sync.json");
  EXPECT_EQ(ReportFileName(0, "verify"), "vmback-1970-01-01T000000Z-verify.json");
  EXPECT_EQ(ReportFileName(-1, "verify"), "vmback-1969-12-31T235959Z-verify.json");

  ReportFile r;
  ASSERT_TRUE(ParseReportFileName("vmback-2025-11-26T180102Z.12-store-sync.json", &r));
  EXPECT_EQ(r.name, "vmback-2025-11-26T180102Z.12-store-sync.json");
  EXPECT_EQ(r.time, "2025-11-26T180102Z");
  EXPECT_EQ(r.seq, 12);
  EXPECT_EQ(r.kind, "store-sync");
  ASSERT_TRUE(ParseReportFileName("vmback-2025-11-26T180102Z-run.json", &r));
  EXPECT_EQ(r.seq, 1);
  EXPECT_EQ(r.kind, "run");

  for (const char* other : {
           "vmback-2025-11-26T180102Z-run.json.tmp-1234",  // an interrupted write
           "vmback-2025-11-26T180102Z-run.jsonx",
           "vmback-2025-11-26T180102Z-.json",
           "vmback-2025-11-26T180102Z-Run.json",
           "vmback-2025-11-26T180102Z--run.json",
           "vmback-2025-11-26T180102Z.1-run.json",
           "vmback-2025-11-26T180102Z.02-run.json",
           "vmback-2025-11-26T180102Z.-run.json",
           "vmback-2025-11-26T18010Z-run.json",
           "vmback-2025-11-26 180102Z-run.json",
           "vmback-2025-11-26T180102Zrun.json",
           "vmback.prom",
           "other-2025-11-26T180102Z-run.json",
           "",
       }) {
    EXPECT_FALSE(ParseReportFileName(other, &r)) << other;
  }
  EXPECT_TRUE(IsValidReportKind("run"));
  EXPECT_TRUE(IsValidReportKind("store-sync"));
  EXPECT_TRUE(IsValidReportKind("2fa_x"));
  EXPECT_FALSE(IsValidReportKind(""));
  EXPECT_FALSE(IsValidReportKind("-run"));
  EXPECT_FALSE(IsValidReportKind("a/b"));
  EXPECT_FALSE(IsValidReportKind("a.json"));
  EXPECT_FALSE(IsValidReportKind(std::string(33, 'a')));
}

TEST(WriteReportTest, WritesJsonAndNumbersReportsOfTheSameSecond) {
  TempDir tmp;
  Env* env = Env::Default();
  std::string dir = tmp / "reports";  // created on demand
  nlohmann::json report = {{"point", "2025-11-26T180102Z"}, {"vms", {{{"name", "MySQL"}, {"freeze_ms", 812}}}}};
  std::string first = WriteReport(env, dir, "run", kT0, report, 10);
  EXPECT_EQ(first, dir + "/vmback-2025-11-26T180102Z-run.json");
  EXPECT_EQ(ReadFile(first), report.dump(2) + "\n");
  EXPECT_EQ(nlohmann::json::parse(ReadFile(first)), report);
  std::string second = WriteReport(env, dir, "run", kT0 + 5, {{"n", 2}}, 10);
  std::string third = WriteReport(env, dir, "run", kT0 + 7, {{"n", 3}}, 10);
  EXPECT_EQ(second, dir + "/vmback-2025-11-26T180102Z.2-run.json");
  EXPECT_EQ(third, dir + "/vmback-2025-11-26T180102Z.3-run.json");
  EXPECT_EQ(nlohmann::json::parse(ReadFile(first)), report) << "an earlier report was overwritten";
  EXPECT_EQ(Names(ListReports(env, dir)), (std::vector<std::string>{"vmback-2025-11-26T180102Z-run.json",
                                                                     "vmback-2025-11-26T180102Z.2-run.json",
                                                                     "vmback-2025-11-26T180102Z.3-run.json"}));
  try {
    WriteReport(env, dir, "../run", kT0, report, 10);
    ADD_FAILURE() << "a kind that is not a plain word was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
  }
  EXPECT_EQ(ListReports(env, dir).size(), 3u);
  EXPECT_THROW(ListReports(env, tmp / "missing"), Error);

  // A name that is not UTF-8 (a file in a guest) does not cost the report.
  std::string odd = WriteReport(env, dir, "backup", kT0, {{"error", "cannot read /srv/\xff\xfe"}}, 10);
  EXPECT_EQ(nlohmann::json::parse(ReadFile(odd))["error"], "cannot read /srv/\ufffd\ufffd");
}

TEST(WriteReportTest, KeepsTheNewestOfEachKindAndNothingElseIsTouched) {
  TempDir tmp;
  Env* env = Env::Default();
  std::string dir = tmp.path();
  // Files that are not reports, or reports of another kind, must survive.
  WriteFile(tmp / "vmback-run.prom", "x");
  WriteFile(tmp / "notes.txt", "x");
  WriteFile(tmp / "vmback-2000-01-01T000000Z-run.json.tmp-99", "x");
  WriteFile(tmp / "vmback-2000-01-01T000000Z-verify.json", "{}");
  std::vector<std::string> written;
  for (int i = 0; i < 7; i++)  // one a day, out of order of the sequence numbers
    written.push_back(BaseName(WriteReport(env, dir, "run", kT0 + i * 86400 * kSecond, {{"i", i}}, 3)));
  EXPECT_EQ(Names(ListReports(env, dir, "run")),
            (std::vector<std::string>{written[4], written[5], written[6]}));
  EXPECT_EQ(Names(ListReports(env, dir, "verify")),
            std::vector<std::string>{"vmback-2000-01-01T000000Z-verify.json"});
  for (const char* other : {"vmback-run.prom", "notes.txt", "vmback-2000-01-01T000000Z-run.json.tmp-99"})
    EXPECT_TRUE(env->Exists(tmp / other)) << other;

  // A clock set back: the new report sorts first, yet it stays; the oldest others go.
  std::string back = WriteReport(env, dir, "run", kT0 - 86400 * kSecond, {{"i", -1}}, 3);
  EXPECT_TRUE(env->Exists(back));
  EXPECT_EQ(Sorted(Names(ListReports(env, dir, "run"))),
            Sorted({BaseName(back), written[5], written[6]}));

  // keep = 0: nothing is deleted; keep = 1: only the new one stays.
  WriteReport(env, dir, "run", kT0 + 10 * 86400 * kSecond, {{"i", 10}}, 0);
  EXPECT_EQ(ListReports(env, dir, "run").size(), 4u);
  std::string last = WriteReport(env, dir, "run", kT0 + 11 * 86400 * kSecond, {{"i", 11}}, 1);
  EXPECT_EQ(Names(ListReports(env, dir, "run")), std::vector<std::string>{BaseName(last)});
  EXPECT_EQ(ListReports(env, dir).size(), 2u);  // and the verify report
}

// A write that fails deletes nothing and leaves no temporary behind.
TEST(WriteReportTest, AFailedWriteDeletesNothing) {
  TempDir tmp;
  std::string dir = tmp.path();
  for (int i = 0; i < 3; i++) WriteReport(Env::Default(), dir, "run", kT0 + i * kSecond, {{"i", i}}, 3);
  std::vector<std::string> before = Sorted(Env::Default()->ListDir(dir));
  // Write steps: mkdir, then the atomic replace: open, append, sync, close, rename, ...
  for (int64_t n = 1; n <= 5; n++) {
    SCOPED_TRACE("ENOSPC at write step " + std::to_string(n));
    FaultPlan plan;
    plan.fail_write_at = n;
    plan.write_errno = ENOSPC;
    FaultEnv fenv(Env::Default(), plan);
    try {
      WriteReport(&fenv, dir, "run", kT0 + 100 * kSecond, {{"i", 100}}, 3);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
    }
    EXPECT_EQ(Sorted(Env::Default()->ListDir(dir)), before);
  }
}

}  // namespace
}  // namespace vmback
