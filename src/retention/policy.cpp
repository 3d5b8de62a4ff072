#include "retention/policy.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <map>
#include <numeric>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr int64_t kSecond = 1000000000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kWeek = 7 * kDay;

// Floor division and modulo (round toward -infinity), for times before 1970.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}
int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// The UTC calendar periods a time falls in, each as a key that is equal for
// two times exactly when they share the period, and that never decreases as
// time increases.
struct Periods {
  int64_t hour;   // hours since the epoch
  int64_t day;    // days since the epoch
  int64_t week;   // day number of the ISO week's Monday
  int64_t month;  // year * 12 + month (0-based)
  int64_t year;
};

Periods PeriodsOf(int64_t time_ns) {
  Periods p;
  int64_t secs = FloorDiv(time_ns, kSecond);
  p.hour = FloorDiv(secs, 3600);
  p.day = FloorDiv(secs, 86400);
  // 1970-01-01 (day 0) was a Thursday, three days after a Monday. An ISO week
  // is the run Monday..Sunday, so its Monday identifies it uniquely, including
  // across New Year (the ISO week-year then follows from the Thursday).
  p.week = p.day - FloorMod(p.day + 3, 7);
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  if (gmtime_r(&t, &tm) == nullptr) {
    // Unreachable for 64-bit time_t: int64 ns spans only years 1677..2262.
    throw Error(ErrorKind::kOther, "internal: gmtime_r failed for " + std::to_string(secs));
  }
  p.year = static_cast<int64_t>(tm.tm_year) + 1900;
  p.month = p.year * 12 + tm.tm_mon;
  return p;
}

void CheckNotNegative(const char* rule, int64_t value) {
  if (value < 0) {
    ThrowConfig("retention rule " + std::string(rule) + " must not be negative (" +
                std::to_string(value) + ")");
  }
}

[[noreturn]] void BadDuration(std::string_view text, const std::string& why) {
  ThrowConfig("bad duration \"" + std::string(text) + "\": " + why);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The decisions for one group: `order` holds its points, newest first.
std::vector<RetentionDecision> DecideGroup(std::vector<PointInfo>& points, const std::vector<size_t>& order,
                                           const RetentionPolicy& policy) {
  std::vector<RetentionDecision> out;
  out.reserve(order.size());
  for (size_t i : order) {
    out.push_back(RetentionDecision{std::move(points[i].name), points[i].time_ns, false, {}, points[i].group});
  }
  if (out.empty()) return out;

  if (policy.empty()) {
    for (RetentionDecision& d : out) {
      d.keep = true;
      d.reasons.push_back("no retention rules");
    }
    return out;
  }

  // Each rule appends its reason to the points it keeps, in rule order.
  for (size_t i = 0; i < out.size() && i < static_cast<size_t>(policy.keep_last); i++) {
    out[i].reasons.push_back("last " + std::to_string(i + 1));
  }

  if (policy.keep_within_ns > 0) {
    const int64_t newest = out.front().time_ns;
    int64_t cutoff;
    if (__builtin_sub_overflow(newest, policy.keep_within_ns, &cutoff)) cutoff = INT64_MIN;
    const std::string reason = "within " + FormatDuration(policy.keep_within_ns);
    for (RetentionDecision& d : out) {
      if (d.time_ns < cutoff) break;  // sorted: all later ones are older still
      d.reasons.push_back(reason);
    }
  }

  std::vector<Periods> periods;
  periods.reserve(out.size());
  for (const RetentionDecision& d : out) periods.push_back(PeriodsOf(d.time_ns));

  struct PeriodRule {
    const char* name;
    int count;
    int64_t Periods::*key;
  };
  const PeriodRule rules[] = {
      {"hourly", policy.hourly, &Periods::hour}, {"daily", policy.daily, &Periods::day},
      {"weekly", policy.weekly, &Periods::week}, {"monthly", policy.monthly, &Periods::month},
      {"yearly", policy.yearly, &Periods::year},
  };
  for (const PeriodRule& rule : rules) {
    // Keys never increase along the newest-first order, so a period's points
    // are contiguous and its first one is its newest.
    int seen = 0;
    for (size_t i = 0; i < out.size() && seen <= rule.count; i++) {
      if (i > 0 && periods[i].*rule.key == periods[i - 1].*rule.key) continue;
      if (++seen <= rule.count) {
        out[i].reasons.push_back(std::string(rule.name) + " " + std::to_string(seen));
      }
    }
  }

  for (RetentionDecision& d : out) d.keep = !d.reasons.empty();
  return out;
}

}  // namespace

std::vector<RetentionDecision> ApplyRetention(std::vector<PointInfo> points,
                                              const RetentionPolicy& policy) {
  CheckNotNegative("last", policy.keep_last);
  CheckNotNegative("within", policy.keep_within_ns);
  CheckNotNegative("hourly", policy.hourly);
  CheckNotNegative("daily", policy.daily);
  CheckNotNegative("weekly", policy.weekly);
  CheckNotNegative("monthly", policy.monthly);
  CheckNotNegative("yearly", policy.yearly);

  // Newest first; on equal times the later input index is newer.
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (points[a].time_ns != points[b].time_ns) return points[a].time_ns > points[b].time_ns;
    return a > b;
  });
  // Each group in that order, decided on its own; then all merged back into
  // that order (a group's decisions come out in the order they went in).
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i : order) groups[points[i].group].push_back(i);
  std::vector<std::vector<RetentionDecision>> decided;
  std::vector<std::pair<size_t, size_t>> where(points.size());  // input index -> (group, position)
  for (const auto& [group, members] : groups) {
    for (size_t k = 0; k < members.size(); k++) where[members[k]] = {decided.size(), k};
    decided.push_back(DecideGroup(points, members, policy));
  }
  std::vector<RetentionDecision> out;
  out.reserve(points.size());
  for (size_t i : order) {
    auto [g, k] = where[i];
    out.push_back(std::move(decided[g][k]));
  }
  return out;
}

int64_t ParseDuration(std::string_view text) {
  static const char kUsage[] =
      "use <number><unit> parts with units w, d, h, m, s (e.g. 30d, 1d12h)";
  if (text.empty()) BadDuration(text, std::string("empty; ") + kUsage);

  int64_t total = 0;
  int previous_rank = INT_MAX;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      BadDuration(text, "expected a number at \"" + std::string(text.substr(i)) + "\"; " + kUsage);
    }
    int64_t value = 0;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); i++) {
      if (__builtin_mul_overflow(value, int64_t{10}, &value) ||
          __builtin_add_overflow(value, int64_t{text[i] - '0'}, &value)) {
        BadDuration(text, "too large");
      }
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) i++;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) {
      if (i == text.size()) BadDuration(text, std::string("missing unit at the end; ") + kUsage);
      BadDuration(text, "unexpected \"" + std::string(text.substr(i, 1)) + "\"; " + kUsage);
    }

    int64_t unit_ns;
    int rank;
    std::string lower = Lower(unit);
    if (unit == "w") {
      unit_ns = kWeek;
      rank = 4;
    } else if (unit == "d") {
      unit_ns = kDay;
      rank = 3;
    } else if (unit == "h") {
      unit_ns = kHour;
      rank = 2;
    } else if (unit == "m") {
      unit_ns = kMinute;
      rank = 1;
    } else if (unit == "s") {
      unit_ns = kSecond;
      rank = 0;
    } else if (unit == "M" || lower == "mo" || lower == "mon" || lower == "mons" ||
               lower == "month" || lower == "months") {
      BadDuration(text, "months are not a fixed duration; use days (e.g. 30d) or the monthly rule");
    } else if (lower == "y" || lower == "yr" || lower == "yrs" || lower == "year" ||
               lower == "years") {
      BadDuration(text, "years are not a fixed duration; use days (e.g. 365d) or the yearly rule");
    } else {
      BadDuration(text, "unknown unit \"" + std::string(unit) + "\"; " + kUsage);
    }
    if (rank == previous_rank) {
      BadDuration(text, "unit \"" + std::string(unit) + "\" given twice");
    }
    if (rank > previous_rank) {
      BadDuration(text, "units must go from largest to smallest (w, d, h, m, s)");
    }
    previous_rank = rank;

    int64_t part;
    if (__builtin_mul_overflow(value, unit_ns, &part) ||
        __builtin_add_overflow(total, part, &total)) {
      BadDuration(text, "too large");
    }
  }
  return total;
}

std::string FormatDuration(int64_t ns) {
  std::string out;
  uint64_t rest = static_cast<uint64_t>(ns);
  if (ns < 0) {
    out = "-";
    rest = uint64_t{0} - rest;  // well defined also for INT64_MIN
  }
  const uint64_t days = rest / kDay;
  rest %= kDay;
  const uint64_t hours = rest / kHour;
  rest %= kHour;
  const uint64_t minutes = rest / kMinute;
  rest %= kMinute;
  const uint64_t seconds = rest / kSecond;
  const uint64_t fraction = rest % kSecond;

  if (days > 0) out += std::to_string(days) + "d";
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (seconds > 0 || fraction > 0) {
    out += std::to_string(seconds);
    if (fraction > 0) {
      std::string digits = std::to_string(fraction);
      digits.insert(0, 9 - digits.size(), '0');
      digits.erase(digits.find_last_not_of('0') + 1);
      out += "." + digits;
    }
    out += "s";
  }
  if (out.empty() || out == "-") out = "0s";
  return out;
}

std::string FormatDecisions(const std::vector<RetentionDecision>& decisions) {
  bool groups = std::any_of(decisions.begin(), decisions.end(),
                            [&](const RetentionDecision& d) { return d.group != decisions.front().group; });
  std::string out;
  for (const RetentionDecision& d : decisions) {
    out += d.keep ? "KEEP   " : "DELETE ";
    out += d.name;
    for (size_t i = 0; i < d.reasons.size(); i++) out += (i == 0 ? "  " : ", ") + d.reasons[i];
    if (groups) out += "  [" + EscapeForTerminal(d.group) + "]";
    out += "\n";
  }
  return out;
}

}  // namespace vmback
