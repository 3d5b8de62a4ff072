// Tests for retention/policy.h. Expectations are worked out by hand from the
// calendar below (weekdays and ISO weeks checked with `date +%a/%G-W%V`), not
// computed by a second implementation.
#include "retention/policy.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "util/error.h"

namespace vmback {
namespace {

constexpr int64_t kSec = 1000000000;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

// "2025-01-08T100000Z" -> ns since the epoch. timegm: UTC, independent of TZ.
int64_t TimeOf(const std::string& name) {
  struct tm tm = {};
  int n = std::sscanf(name.c_str(), "%4d-%2d-%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
  EXPECT_EQ(n, 6) << name;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * kSec;
}

// The calendar, oldest first: several years, gaps of months, several points
// per day and per hour, and points on period boundaries.
//                                               weekday  ISO week
const char* const P1 = "2022-03-15T100000Z";   // Tue      2022-W11
const char* const P2 = "2022-11-20T080000Z";   // Sun      2022-W46
const char* const P3 = "2022-12-31T235959Z";   // Sat      2022-W52   last second of 2022
const char* const P4 = "2023-01-01T000000Z";   // Sun      2022-W52   first second of 2023
const char* const P5 = "2023-01-02T000000Z";   // Mon      2023-W01
const char* const P6 = "2023-06-10T120000Z";   // Sat      2023-W23   (8 months gap after)
const char* const P7 = "2024-02-29T120000Z";   // Thu      2024-W09   leap day
const char* const P8 = "2024-03-01T000000Z";   // Fri      2024-W09   (9 months gap after)
const char* const P9 = "2024-12-28T090000Z";   // Sat      2024-W52
const char* const P10 = "2024-12-29T235959Z";  // Sun      2024-W52   last second of W52
const char* const P11 = "2024-12-30T000000Z";  // Mon      2025-W01   first second of W01
const char* const P12 = "2024-12-31T235959Z";  // Tue      2025-W01   last second of 2024
const char* const P13 = "2025-01-01T000000Z";  // Wed      2025-W01   first second of 2025
const char* const P14 = "2025-01-01T003000Z";  // Wed      2025-W01   same hour as P13
const char* const P15 = "2025-01-05T235959Z";  // Sun      2025-W01   last second of W01
const char* const P16 = "2025-01-06T000000Z";  // Mon      2025-W02   first second of W02
const char* const P17 = "2025-01-06T060000Z";  // Mon      2025-W02
const char* const P18 = "2025-01-06T064500Z";  // Mon      2025-W02   same hour as P17
const char* const P19 = "2025-01-06T070000Z";  // Mon      2025-W02
const char* const P20 = "2025-01-07T130000Z";  // Tue      2025-W02
const char* const P21 = "2025-01-08T100000Z";  // Wed      2025-W02   newest

const std::vector<std::string> kCalendar = {P1,  P2,  P3,  P4,  P5,  P6,  P7,  P8,  P9,  P10, P11,
                                            P12, P13, P14, P15, P16, P17, P18, P19, P20, P21};

std::vector<PointInfo> Points(const std::vector<std::string>& names) {
  std::vector<PointInfo> points;
  for (const std::string& n : names) points.push_back({n, TimeOf(n)});
  return points;
}

// Kept points and their reasons; every other point must be deleted.
using Kept = std::map<std::string, std::vector<std::string>>;

// {"daily", {A, B}} -> {A: {"daily 1"}, B: {"daily 2"}}.
Kept Ranked(const std::string& rule, const std::vector<std::string>& names) {
  Kept k;
  for (size_t i = 0; i < names.size(); i++) k[names[i]] = {rule + " " + std::to_string(i + 1)};
  return k;
}

// Checks a decision list for the full calendar: newest first, and exactly the
// expected points kept with exactly the expected reasons.
void ExpectCalendarDecisions(const std::vector<RetentionDecision>& got, const Kept& expected) {
  ASSERT_EQ(got.size(), kCalendar.size());
  for (size_t i = 0; i < got.size(); i++) {
    const std::string& name = kCalendar[kCalendar.size() - 1 - i];
    SCOPED_TRACE(name);
    EXPECT_EQ(got[i].name, name);
    EXPECT_EQ(got[i].time_ns, TimeOf(name));
    auto it = expected.find(name);
    if (it == expected.end()) {
      EXPECT_FALSE(got[i].keep);
      EXPECT_TRUE(got[i].reasons.empty());
    } else {
      EXPECT_TRUE(got[i].keep);
      EXPECT_EQ(got[i].reasons, it->second);
    }
  }
  for (const auto& [name, reasons] : expected) {
    EXPECT_NE(std::find(kCalendar.begin(), kCalendar.end(), name), kCalendar.end())
        << "expectation names unknown point " << name;
  }
}

std::vector<std::string> KeptNames(const std::vector<RetentionDecision>& d) {
  std::vector<std::string> names;
  for (const RetentionDecision& x : d) {
    if (x.keep) names.push_back(x.name);
  }
  return names;
}

// Runs fn, which must throw Error(kConfig); returns its message.
std::string ConfigError(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no Error thrown";
  return "";
}

// ------------------------------------------------------------ retention table

struct Case {
  const char* label;
  RetentionPolicy policy;
  Kept kept;
};

TEST(RetentionTest, CalendarTable) {
  const std::vector<Case> cases = {
      {"last 3", {.keep_last = 3}, Ranked("last", {P21, P20, P19})},
      // P16 is exactly 2d10h before P21 (inclusive); P15 is one second more.
      {"within 2d10h",
       {.keep_within_ns = 2 * kDay + 10 * kHour},
       {{P21, {"within 2d10h"}},
        {P20, {"within 2d10h"}},
        {P19, {"within 2d10h"}},
        {P18, {"within 2d10h"}},
        {P17, {"within 2d10h"}},
        {P16, {"within 2d10h"}}}},
      // P17 shares hour 06 with the newer P18; P16 (00:00:00) is its own hour.
      {"hourly 5", {.hourly = 5}, Ranked("hourly", {P21, P20, P19, P18, P16})},
      // 01-06 has four points (P19 newest); 01-05 23:59:59 and 01-06 00:00:00
      // are different days; 01-01 has two (P14 newest).
      {"daily 7", {.daily = 7}, Ranked("daily", {P21, P20, P19, P15, P14, P12, P11})},
      // Weeks: 2025-W02 (P21), 2025-W01 = 2024-12-30..2025-01-05 (P15 newest,
      // even though P11/P12 are dated 2024), 2024-W52 (P10), 2024-W09 (P8).
      {"weekly 4", {.weekly = 4}, Ranked("weekly", {P21, P15, P10, P8})},
      // All nine weeks: 2023-01-01 (P4, Sunday) is in 2022-W52 with P3, so P3
      // is never a weekly point; P5 (Monday) starts 2023-W01.
      {"weekly 9",
       {.weekly = 9},
       Ranked("weekly", {P21, P15, P10, P8, P6, P5, P4, P2, P1})},
      // Months: 2025-01 (P21), 2024-12 (P12, 23:59:59 on the 31st), 2024-03
      // (P8, 00:00:00 on the 1st), 2024-02 (P7, leap day).
      {"monthly 4", {.monthly = 4}, Ranked("monthly", {P21, P12, P8, P7})},
      // Years: 2025 (P21), 2024 (P12, its last second), 2023 (P6).
      {"yearly 3", {.yearly = 3}, Ranked("yearly", {P21, P12, P6})},
      {"daily 7 + weekly 4 + monthly 12 + yearly 3",
       {.daily = 7, .weekly = 4, .monthly = 12, .yearly = 3},
       {{P21, {"daily 1", "weekly 1", "monthly 1", "yearly 1"}},
        {P20, {"daily 2"}},
        {P19, {"daily 3"}},
        {P15, {"daily 4", "weekly 2"}},
        {P14, {"daily 5"}},
        {P12, {"daily 6", "monthly 2", "yearly 2"}},
        {P11, {"daily 7"}},
        {P10, {"weekly 3"}},
        {P8, {"weekly 4", "monthly 3"}},
        {P7, {"monthly 4"}},
        {P6, {"monthly 5", "yearly 3"}},
        {P5, {"monthly 6"}},
        {P3, {"monthly 7"}},
        {P2, {"monthly 8"}},
        {P1, {"monthly 9"}}}},
      {"last 1 + hourly 4 + monthly 3 + yearly 2",
       {.keep_last = 1, .hourly = 4, .monthly = 3, .yearly = 2},
       {{P21, {"last 1", "hourly 1", "monthly 1", "yearly 1"}},
        {P20, {"hourly 2"}},
        {P19, {"hourly 3"}},
        {P18, {"hourly 4"}},
        {P12, {"monthly 2", "yearly 2"}},
        {P8, {"monthly 3"}}}},
      // Within 1d of 2025-01-08 10:00 reaches back to 2025-01-07 10:00.
      {"within 1d + weekly 2",
       {.keep_within_ns = kDay, .weekly = 2},
       {{P21, {"within 1d", "weekly 1"}}, {P20, {"within 1d"}}, {P15, {"weekly 2"}}}},
      // Rules larger than the number of periods keep the newest of every period.
      {"hourly 100",
       {.hourly = 100},
       Ranked("hourly", {P21, P20, P19, P18, P16, P15, P14, P12, P11, P10, P9, P8, P7, P6, P5, P4,
                         P3, P2, P1})},
      {"daily 100",
       {.daily = 100},
       Ranked("daily",
              {P21, P20, P19, P15, P14, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1})},
      {"weekly 100", {.weekly = 100}, Ranked("weekly", {P21, P15, P10, P8, P6, P5, P4, P2, P1})},
      {"monthly 100",
       {.monthly = 100},
       Ranked("monthly", {P21, P12, P8, P7, P6, P5, P3, P2, P1})},
      {"yearly 100", {.yearly = 100}, Ranked("yearly", {P21, P12, P6, P3})},
      {"last 100",
       {.keep_last = 100},
       Ranked("last", {P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6,
                       P5, P4, P3, P2, P1})},
      {"within 10 years",
       {.keep_within_ns = 3650 * kDay},
       [] {
         Kept k;
         for (const std::string& n : kCalendar) k[n] = {"within 3650d"};
         return k;
       }()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    ExpectCalendarDecisions(ApplyRetention(Points(kCalendar), c.policy), c.kept);
  }
}

TEST(RetentionTest, EmptyPolicyKeepsEverything) {
  RetentionPolicy policy;
  EXPECT_TRUE(policy.empty());
  Kept all;
  for (const std::string& n : kCalendar) all[n] = {"no retention rules"};
  ExpectCalendarDecisions(ApplyRetention(Points(kCalendar), policy), all);
}

TEST(RetentionTest, EmptyIsFalseForAnyRule) {
  EXPECT_FALSE((RetentionPolicy{.keep_last = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.keep_within_ns = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.hourly = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.daily = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.weekly = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.monthly = 1}.empty()));
  EXPECT_FALSE((RetentionPolicy{.yearly = 1}.empty()));
}

TEST(RetentionTest, NoPoints) {
  EXPECT_TRUE(ApplyRetention({}, RetentionPolicy{}).empty());
  EXPECT_TRUE(ApplyRetention({}, RetentionPolicy{.keep_last = 3, .daily = 7}).empty());
}

TEST(RetentionTest, EachRuleKeepsTheNewestPoint) {
  const std::vector<RetentionPolicy> policies = {
      {.keep_last = 1}, {.keep_within_ns = 1}, {.hourly = 1}, {.daily = 1},
      {.weekly = 1},    {.monthly = 1},        {.yearly = 1},
  };
  const std::vector<std::string> reasons = {
      "last 1", "within 0.000000001s", "hourly 1", "daily 1", "weekly 1", "monthly 1", "yearly 1"};
  for (size_t i = 0; i < policies.size(); i++) {
    SCOPED_TRACE(reasons[i]);
    std::vector<RetentionDecision> d = ApplyRetention(Points(kCalendar), policies[i]);
    ASSERT_EQ(d.size(), kCalendar.size());
    // Rule 1 of any kind keeps exactly one point of this calendar: the newest.
    EXPECT_EQ(KeptNames(d), std::vector<std::string>{P21});
    EXPECT_EQ(d[0].reasons, std::vector<std::string>{reasons[i]});
  }
}

TEST(RetentionTest, WithinIsRelativeToTheNewestPointNotNow) {
  // Backups stopped in 2001; now is decades later. keep_within still keeps the
  // last stretch of them instead of wiping everything.
  std::vector<std::string> names;
  for (int day = 1; day <= 10; day++) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "2001-01-%02dT120000Z", day);
    names.push_back(buf);
  }
  std::vector<RetentionDecision> d =
      ApplyRetention(Points(names), RetentionPolicy{.keep_within_ns = 3 * kDay});
  // 2001-01-07T12:00 is exactly 3d before the newest: inclusive.
  EXPECT_EQ(KeptNames(d), (std::vector<std::string>{"2001-01-10T120000Z", "2001-01-09T120000Z",
                                                    "2001-01-08T120000Z", "2001-01-07T120000Z"}));
  EXPECT_EQ(d[0].reasons, std::vector<std::string>{"within 3d"});
  EXPECT_EQ(d.size(), 10u);
}

TEST(RetentionTest, UnsortedInput) {
  std::vector<PointInfo> shuffled = Points(kCalendar);
  std::mt19937 rng(12345);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  std::reverse(shuffled.begin(), shuffled.end());
  // The permutation must really be out of order, in both directions.
  bool ascending = true, descending = true;
  for (size_t i = 1; i < shuffled.size(); i++) {
    if (shuffled[i - 1].time_ns > shuffled[i].time_ns) ascending = false;
    if (shuffled[i - 1].time_ns < shuffled[i].time_ns) descending = false;
  }
  ASSERT_FALSE(ascending);
  ASSERT_FALSE(descending);

  ExpectCalendarDecisions(
      ApplyRetention(shuffled, RetentionPolicy{.keep_last = 2, .daily = 3, .yearly = 2}),
      {{P21, {"last 1", "daily 1", "yearly 1"}},
       {P20, {"last 2", "daily 2"}},
       {P19, {"daily 3"}},
       {P12, {"yearly 2"}}});
  // Newest-first input too.
  std::vector<PointInfo> reversed = Points(kCalendar);
  std::reverse(reversed.begin(), reversed.end());
  ExpectCalendarDecisions(ApplyRetention(reversed, RetentionPolicy{.weekly = 4}),
                          Ranked("weekly", {P21, P15, P10, P8}));
}

TEST(RetentionTest, TiesOnTimeGoToTheLaterInput) {
  const int64_t t = TimeOf("2025-06-01T120000Z");
  std::vector<PointInfo> points = {{"a", t}, {"b", t}, {"c", t - kHour}, {"d", t}};
  std::vector<RetentionDecision> d = ApplyRetention(points, RetentionPolicy{.keep_last = 1});
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].name, "d");
  EXPECT_EQ(d[1].name, "b");
  EXPECT_EQ(d[2].name, "a");
  EXPECT_EQ(d[3].name, "c");
  EXPECT_EQ(KeptNames(d), std::vector<std::string>{"d"});

  d = ApplyRetention(points, RetentionPolicy{.daily = 1, .monthly = 1});
  EXPECT_EQ(KeptNames(d), std::vector<std::string>{"d"});
  EXPECT_EQ(d[0].reasons, (std::vector<std::string>{"daily 1", "monthly 1"}));

  // Points at the newest time are 0 ns before it: all within any duration.
  d = ApplyRetention(points, RetentionPolicy{.keep_within_ns = kSec});
  EXPECT_EQ(KeptNames(d), (std::vector<std::string>{"d", "b", "a"}));

  // Swapping the input order swaps which one counts as newer.
  d = ApplyRetention({{"b", t}, {"a", t}}, RetentionPolicy{.keep_last = 1});
  EXPECT_EQ(KeptNames(d), std::vector<std::string>{"a"});
}

TEST(RetentionTest, TimesBeforeTheEpoch) {
  // -1 ns is 1969-12-31T23:59:59.999999999: another hour, day, month and
  // year than 0 ns, but the same ISO week (Mon 1969-12-29 .. Sun 1970-01-04).
  std::vector<PointInfo> points = {{"before", -1}, {"epoch", 0}};
  EXPECT_EQ(KeptNames(ApplyRetention(points, RetentionPolicy{.hourly = 2})),
            (std::vector<std::string>{"epoch", "before"}));
  EXPECT_EQ(KeptNames(ApplyRetention(points, RetentionPolicy{.daily = 2})),
            (std::vector<std::string>{"epoch", "before"}));
  EXPECT_EQ(KeptNames(ApplyRetention(points, RetentionPolicy{.yearly = 2})),
            (std::vector<std::string>{"epoch", "before"}));
  EXPECT_EQ(KeptNames(ApplyRetention(points, RetentionPolicy{.weekly = 2})),
            (std::vector<std::string>{"epoch"}));

  // Monday 1969-12-29 00:00:00 and Sunday 1970-01-04 23:59:59 share a week;
  // Monday 1970-01-05 00:00:00 starts the next one.
  points = {{"mon-1969", -3 * kDay}, {"sun-1970", 4 * kDay - kSec}, {"mon-1970", 4 * kDay}};
  std::vector<RetentionDecision> d = ApplyRetention(points, RetentionPolicy{.weekly = 3});
  EXPECT_EQ(KeptNames(d), (std::vector<std::string>{"mon-1970", "sun-1970"}));
  EXPECT_EQ(d[1].reasons, std::vector<std::string>{"weekly 2"});
}

TEST(RetentionTest, NegativeRulesAreRejected) {
  const std::vector<std::pair<RetentionPolicy, std::string>> bad = {
      {{.keep_last = -1}, "last"}, {{.keep_within_ns = -kSec}, "within"},
      {{.hourly = -1}, "hourly"},  {{.daily = -2}, "daily"},
      {{.weekly = -1}, "weekly"},  {{.monthly = -1}, "monthly"},
      {{.yearly = -1}, "yearly"},
  };
  for (const auto& [policy, rule] : bad) {
    std::string msg = ConfigError([&, &policy = policy] { ApplyRetention(Points(kCalendar), policy); });
    EXPECT_NE(msg.find(rule), std::string::npos) << msg;
    EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
  }
}

// ------------------------------------------------------------ durations

TEST(DurationTest, ParseGood) {
  EXPECT_EQ(ParseDuration("90s"), 90 * kSec);
  EXPECT_EQ(ParseDuration("30m"), 30 * kMin);
  EXPECT_EQ(ParseDuration("12h"), 12 * kHour);
  EXPECT_EQ(ParseDuration("7d"), 7 * kDay);
  EXPECT_EQ(ParseDuration("2w"), 14 * kDay);
  EXPECT_EQ(ParseDuration("1d12h"), 36 * kHour);
  EXPECT_EQ(ParseDuration("1w2d3h4m5s"), 9 * kDay + 3 * kHour + 4 * kMin + 5 * kSec);
  EXPECT_EQ(ParseDuration("1h30s"), kHour + 30 * kSec);
  EXPECT_EQ(ParseDuration("0s"), 0);
  EXPECT_EQ(ParseDuration("007d"), 7 * kDay);
  EXPECT_EQ(ParseDuration("36h"), 36 * kHour);  // parts need not be normalized
  // 106751 days is the largest whole number of days in int64 ns.
  EXPECT_EQ(ParseDuration("106751d"), 106751 * kDay);
}

TEST(DurationTest, ParseBad) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {"7", "missing unit"},
      {"d", "expected a number"},
      {"1x", "unknown unit \"x\""},
      {"100ms", "unknown unit \"ms\""},
      {"6M", "months are not a fixed duration"},
      {"1mo", "months are not a fixed duration"},
      {"2months", "months are not a fixed duration"},
      {"1y", "years are not a fixed duration"},
      {"1Y", "years are not a fixed duration"},
      {"2years", "years are not a fixed duration"},
      {"-1d", "expected a number"},
      {"+1d", "expected a number"},
      {" 1d", "expected a number"},
      {"1d ", "expected a number at \" \""},
      {"1 d", "unexpected \" \""},
      {"1.5h", "unexpected \".\""},
      {"1h1d", "largest to smallest"},
      {"30s1m", "largest to smallest"},
      {"1d1d", "given twice"},
      {"1d12", "missing unit"},
      {"106752d", "too large"},
      {"99999999999999999999s", "too large"},
      {"106751d23h47m17s", "too large"},
  };
  for (const auto& [text, why] : bad) {
    SCOPED_TRACE(text);
    std::string msg = ConfigError([&, &text = text] { ParseDuration(text); });
    EXPECT_NE(msg.find("\"" + text + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
  }
}

TEST(DurationTest, Format) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(30 * kDay), "30d");
  EXPECT_EQ(FormatDuration(36 * kHour), "1d12h");
  EXPECT_EQ(FormatDuration(90 * kSec), "1m30s");
  EXPECT_EQ(FormatDuration(14 * kDay), "14d");
  EXPECT_EQ(FormatDuration(kDay + kSec), "1d1s");
  EXPECT_EQ(FormatDuration(1500 * 1000000LL), "1.5s");
  EXPECT_EQ(FormatDuration(1), "0.000000001s");
  EXPECT_EQ(FormatDuration(-kHour), "-1h");
  EXPECT_EQ(FormatDuration(INT64_MIN), "-106751d23h47m16.854775808s");
  EXPECT_EQ(FormatDuration(INT64_MAX), "106751d23h47m16.854775807s");
}

TEST(DurationTest, RoundTrip) {
  for (const char* text : {"1s", "59s", "1m", "1h1s", "1d12h", "30d", "1d23h59m59s"}) {
    EXPECT_EQ(FormatDuration(ParseDuration(text)), text);
  }
  for (int64_t ns :
       {kSec, 90 * kSec, 7 * kDay, 9 * kDay + 3 * kHour + 4 * kMin + 5 * kSec, 106751 * kDay}) {
    EXPECT_EQ(ParseDuration(FormatDuration(ns)), ns);
  }
}

// ------------------------------------------------------------ dry-run output

TEST(FormatDecisionsTest, Lines) {
  const std::vector<RetentionDecision> d = {
      {"2026-11-26T180102Z", 0, true, {"last 1", "daily 1"}},
      {"2026-11-25T180102Z", 0, false, {}},
      {"2026-11-24T180102Z.2", 0, true, {"within 30d"}},
  };
  EXPECT_EQ(FormatDecisions(d),
            "KEEP   2026-11-26T180102Z  last 1, daily 1\n"
            "DELETE 2026-11-25T180102Z\n"
            "KEEP   2026-11-24T180102Z.2  within 30d\n");
  EXPECT_EQ(FormatDecisions({}), "");
}

TEST(FormatDecisionsTest, FromApplyRetention) {
  std::vector<PointInfo> points = Points(
      {"2026-11-24T180102Z", "2026-11-25T180102Z", "2026-11-26T080000Z", "2026-11-26T180102Z"});
  EXPECT_EQ(FormatDecisions(ApplyRetention(points, RetentionPolicy{.keep_last = 1, .daily = 2})),
            "KEEP   2026-11-26T180102Z  last 1, daily 1\n"
            "DELETE 2026-11-26T080000Z\n"
            "KEEP   2026-11-25T180102Z  daily 2\n"
            "DELETE 2026-11-24T180102Z\n");
  EXPECT_EQ(FormatDecisions(ApplyRetention(points, RetentionPolicy{})),
            "KEEP   2026-11-26T180102Z  no retention rules\n"
            "KEEP   2026-11-26T080000Z  no retention rules\n"
            "KEEP   2026-11-25T180102Z  no retention rules\n"
            "KEEP   2026-11-24T180102Z  no retention rules\n");
}


// ------------------------------------------------------------ groups

// A one-off point of another group between nightly points: each group keeps
// its own newest points; the one-off never takes a nightly point's place.
TEST(RetentionGroupsTest, EachGroupDecidedOnItsOwn) {
  std::vector<PointInfo> points = Points(
      {"2026-11-24T020000Z", "2026-11-25T020000Z", "2026-11-25T150000Z", "2026-11-26T020000Z",
       "2026-11-26T160000Z"});
  const std::string nightly = R"({"host":"kvm1","volumes":["etc","images"]})";
  const std::string oneoff = R"({"host":"kvm1","volumes":["etc"]})";
  for (auto& p : points) p.group = nightly;
  points[2].group = oneoff;  // 2026-11-25T150000Z
  points[4].group = oneoff;  // 2026-11-26T160000Z, the newest of all
  auto d = ApplyRetention(points, RetentionPolicy{.keep_last = 1, .daily = 2});
  ASSERT_EQ(d.size(), 5u);
  // Still newest first over all groups, each with its group.
  std::vector<std::string> order, kept;
  for (const auto& x : d) {
    order.push_back(x.name);
    if (x.keep) kept.push_back(x.name);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"2026-11-26T160000Z", "2026-11-26T020000Z", "2026-11-25T150000Z",
                                             "2026-11-25T020000Z", "2026-11-24T020000Z"}));
  EXPECT_EQ(kept, (std::vector<std::string>{"2026-11-26T160000Z", "2026-11-26T020000Z", "2026-11-25T150000Z",
                                            "2026-11-25T020000Z"}));
  EXPECT_EQ(d[0].group, oneoff);
  EXPECT_EQ(d[1].group, nightly);
  // Ranks count within the group: the nightly point is "last 1" of its own.
  EXPECT_EQ(d[1].reasons, (std::vector<std::string>{"last 1", "daily 1"}));
  EXPECT_EQ(d[3].reasons, (std::vector<std::string>{"daily 2"}));
  EXPECT_FALSE(d[4].keep);
  // Without groups the one-off would have been "last 1" and the newest
  // nightly point only "daily 1".
  for (auto& p : points) p.group.clear();
  auto flat = ApplyRetention(points, RetentionPolicy{.keep_last = 1});
  EXPECT_TRUE(flat[0].keep);
  EXPECT_FALSE(flat[1].keep);
}

TEST(RetentionGroupsTest, DryRunNamesGroupsOnlyWhenThereAreSeveral) {
  std::vector<PointInfo> points = Points({"2026-11-25T020000Z", "2026-11-26T020000Z"});
  points[0].group = "a\x1b[2J";
  points[1].group = "b";
  EXPECT_EQ(FormatDecisions(ApplyRetention(points, RetentionPolicy{.keep_last = 1})),
            "KEEP   2026-11-26T020000Z  last 1  [b]\n"
            "KEEP   2026-11-25T020000Z  last 1  [a\\x1b[2J]\n");
  points[0].group = "b";
  EXPECT_EQ(FormatDecisions(ApplyRetention(points, RetentionPolicy{.keep_last = 1})),
            "KEEP   2026-11-26T020000Z  last 1\n"
            "DELETE 2026-11-25T020000Z\n");
}

}  // namespace
}  // namespace vmback
