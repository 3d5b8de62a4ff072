// Retention: which backup points to keep and which to delete. Independent of
// any storage target; the store, ZFS and btrfs targets all decide with
// ApplyRetention and then delete the points it marks.
//
// All calendar math is UTC (no dependence on the local time zone or TZ).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmback {

// What to keep. A point is kept when at least one rule keeps it; each rule is
// evaluated on its own over all points (rules are a union, not a sequence of
// filters). Every field must be >= 0 (ApplyRetention throws kConfig otherwise);
// 0 turns a rule off.
struct RetentionPolicy {
  int keep_last = 0;           // the N newest points
  int64_t keep_within_ns = 0;  // every point at most this long before the NEWEST point
                               // (not before now: a set of old backups is never wiped
                               // because backups stopped). The bound is inclusive.
  // The newest point of each of the N most recent periods that have points.
  // Periods are UTC calendar hours, days, ISO 8601 weeks (Monday to Sunday;
  // a week that spans New Year is one week, e.g. 2024-12-30 .. 2025-01-05),
  // months and years. Periods without points are skipped, not counted.
  int hourly = 0;
  int daily = 0;
  int weekly = 0;
  int monthly = 0;
  int yearly = 0;

  // True when no rule is set (all fields are 0): such a policy keeps everything.
  bool empty() const {
    return keep_last == 0 && keep_within_ns == 0 && hourly == 0 && daily == 0 && weekly == 0 &&
           monthly == 0 && yearly == 0;
  }
};

struct PointInfo {
  std::string name;  // passed through to the decision; not interpreted
  int64_t time_ns;   // nanoseconds since the Unix epoch (UTC); may be negative
  // The retention group: the rules apply to each group on its own, as if the
  // other groups' points did not exist. A store groups its points by host,
  // volume set and tags (PointGroup in run/prune.h), so a one-off backup of
  // one path never takes the place of a nightly point. "" for all others.
  std::string group = {};
};

struct RetentionDecision {
  std::string name;
  int64_t time_ns;
  bool keep;
  // Why the point is kept, in rule order: "last 1", "within 2d10h", "hourly 2",
  // "daily 1", "weekly 3", "monthly 1", "yearly 1" (the number is the point's
  // rank within that rule and its group, 1 = newest). Empty exactly when keep
  // is false.
  std::vector<std::string> reasons;
  std::string group = {};  // PointInfo::group
};

// Decides every point; returns one decision per input point, newest first.
// Each group (PointInfo::group) is decided on its own: "last 3" keeps the
// three newest points of every group. Order: by time_ns descending; among
// equal times the point given later in the input counts as newer (so it comes
// first and is the one a period rule keeps). An empty policy keeps every point with the reason
// "no retention rules". Throws Error(kConfig) if a policy field is negative.
//
// The newest point of each group is always kept by a non-empty policy: every rule that is
// > 0 keeps it (it is "last 1"; it is 0 ns before itself, so within any
// duration; and it is the newest point of the most recent hour, day, week,
// month and year that has points, so it is rank 1 of every period rule).
// Hence a non-empty policy never deletes all points of a group.
std::vector<RetentionDecision> ApplyRetention(std::vector<PointInfo> points,
                                              const RetentionPolicy& policy);

// Parses a fixed duration: one or more <digits><unit> parts with units
// w (7 days), d (24 hours), h, m (minutes), s, largest unit first and each at
// most once: "90s", "30m", "12h", "7d", "2w", "1d12h", "1w2d3h4m5s". Months and
// years are not fixed durations and are rejected ("6M", "1y"; use the monthly
// or yearly rule, or days). No signs, spaces or fractions. Throws
// Error(kConfig) naming the text on bad input or if the result exceeds int64 ns.
int64_t ParseDuration(std::string_view text);

// Formats a duration with d, h, m and s, omitting zero parts: "30d", "1d12h",
// "1m30s", "0s". A sub-second remainder is shown as a decimal fraction of the
// seconds ("1.5s"); negative durations get a leading '-'. For whole, positive
// seconds, ParseDuration(FormatDuration(ns)) == ns.
std::string FormatDuration(int64_t ns);

// One line per decision, in the given order, for `prune --dry-run`:
//   "KEEP   2026-11-26T180102Z  last 1, daily 1\n"
//   "DELETE 2026-11-25T180102Z\n"
// When the decisions span more than one group, each line ends with its group
// in brackets ("  [host kvm1, volumes etc]"), escaped for a terminal.
std::string FormatDecisions(const std::vector<RetentionDecision>& decisions);

}  // namespace vmback
