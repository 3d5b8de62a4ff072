// How a point named on the command line is found among a destination's
// points (SelectPoint): names, times as `vmback list` shows them, latest~N,
// and the nearest names when none matches.
#include "destination/point_select.h"

#include <gtest/gtest.h>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {
namespace {

constexpr int64_t kSec = 1000000000;
// 2026-11-26T18:01:02Z
constexpr int64_t kT0 = 1795716062LL * kSec;

struct Fixture {
  std::vector<std::string> names = {"2026-11-26T180102Z", "2026-11-26T180102Z.2", "2026-11-27T090000Z"};
  std::vector<PointSummary> Summaries() const {
    std::vector<PointSummary> out(3);
    const int64_t times[3] = {kT0, kT0 + kSec / 2, kT0 + 15 * 3600 * kSec - 2 * kSec};
    for (size_t i = 0; i < 3; i++) {
      out[i].name = names[i];
      out[i].time_ns = times[i];
      out[i].time = FormatTimeUtc(times[i]);
    }
    return out;
  }
  std::string Select(const std::string& arg) {
    return SelectPoint(arg, names, [this] { return Summaries(); }, "store /s");
  }
};

std::string ErrorOf(const std::function<void()>& f, ErrorKind* kind = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "";
}

TEST(SelectPoint, NameAndLatestAreThemselves) {
  Fixture f;
  EXPECT_EQ(f.Select("2026-11-26T180102Z.2"), "2026-11-26T180102Z.2");
  // "latest" stays: a destination takes the newest point holding the volume asked for.
  EXPECT_EQ(f.Select("latest"), "latest");
}

TEST(SelectPoint, LatestTildeCountsBackFromTheNewest) {
  Fixture f;
  EXPECT_EQ(f.Select("latest~0"), "2026-11-27T090000Z");
  EXPECT_EQ(f.Select("latest~1"), "2026-11-26T180102Z.2");
  EXPECT_EQ(f.Select("latest~2"), "2026-11-26T180102Z");
  ErrorKind kind{};
  std::string e = ErrorOf([&] { f.Select("latest~3"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kConfig);
  EXPECT_NE(e.find("latest~3"), std::string::npos) << e;
  EXPECT_NE(e.find("3 points"), std::string::npos) << e;
  for (const char* bad : {"latest~", "latest~-1", "latest~1x", "latest~99999999999999999999999"}) {
    kind = ErrorKind::kOther;
    ErrorOf([&] { f.Select(bad); }, &kind);
    EXPECT_EQ(kind, ErrorKind::kConfig) << bad;
  }
}

TEST(SelectPoint, TheTimeListShowsNamesThePoint) {
  Fixture f;
  EXPECT_EQ(f.Select(FormatTimeUtc(kT0 + 15 * 3600 * kSec - 2 * kSec)), "2026-11-27T090000Z");
}

TEST(SelectPoint, ATimeOfSeveralPointsIsRefusedNamingThem) {
  Fixture f;
  ErrorKind kind{};
  std::string e = ErrorOf([&] { f.Select(FormatTimeUtc(kT0)); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kConfig);
  EXPECT_NE(e.find("2026-11-26T180102Z, 2026-11-26T180102Z.2"), std::string::npos) << e;
}

TEST(SelectPoint, APointNotThereListsTheNearestNames) {
  Fixture f;
  ErrorKind kind{};
  std::string e = ErrorOf([&] { f.Select("2026-11-27T090001Z"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kNotFound);
  EXPECT_NE(e.find("point '2026-11-27T090001Z' not found in store /s"), std::string::npos) << e;
  EXPECT_NE(e.find("nearest: 2026-11-27T090000Z"), std::string::npos) << e;
  e = ErrorOf([&] { f.Select("curent"); });
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
}

TEST(SelectPoint, NoPointsAtAll) {
  ErrorKind kind{};
  std::string e = ErrorOf(
      [&] { SelectPoint("latest~0", {}, [] { return std::vector<PointSummary>{}; }, "dir target /m"); }, &kind);
  EXPECT_NE(e.find("no points yet in dir target /m"), std::string::npos) << e;
  e = ErrorOf([&] { SelectPoint("x", {}, [] { return std::vector<PointSummary>{}; }, "dir target /m"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::kNotFound);
  EXPECT_NE(e.find("no points yet"), std::string::npos) << e;
}

TEST(SelectPoint, TimesAreReadOnlyWhenTheNameIsNotAName) {
  Fixture f;
  int reads = 0;
  auto times = [&] {
    reads++;
    return f.Summaries();
  };
  SelectPoint("latest", f.names, times, "s");
  SelectPoint("latest~1", f.names, times, "s");
  SelectPoint("2026-11-27T090000Z", f.names, times, "s");
  EXPECT_EQ(reads, 0);
}

}  // namespace
}  // namespace vmback
