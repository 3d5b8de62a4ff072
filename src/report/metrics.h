// Metrics for Prometheus: the text exposition format (version 0.0.4), written
// as a file for node_exporter's textfile collector
// (--collector.textfile.directory, on Debian /var/lib/prometheus/node-exporter).
//
// What a file looks like:
//
//   # HELP vmback_last_run_exit_code Exit status of the last vmback run.
//   # TYPE vmback_last_run_exit_code gauge
//   vmback_last_run_exit_code{command="run"} 0
//   # HELP vmback_last_run_bytes_read Bytes read from each volume by the last run.
//   # TYPE vmback_last_run_bytes_read gauge
//   vmback_last_run_bytes_read{command="run",volume="images"} 8200000000
//
// Every family has one HELP and one TYPE line, then its samples, one per line;
// families and samples appear in the order they were added. Label values are
// escaped (\\, \" and \n), HELP text too (\\ and \n). Samples carry no
// timestamps: the textfile collector rejects them.
//
// Values: whole numbers below 2^53 in plain digits, others in the shortest
// form that reads back exactly, +Inf, -Inf, NaN.
//
// Where files go: a file is replaced whole, so it holds what one command
// wrote last; node_exporter reads every *.prom in its directory and fails the
// scrape when two files give the same series. So either one command (vmback
// run) writes the file, or each command writes its own (vmback-run.prom,
// vmback-verify.prom) with a common label that tells them apart, e.g.
// MetricSet(Labels{{"command", "run"}}).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "os/env.h"

namespace vmback {

enum class MetricType { kGauge, kCounter };

// Label name and value pairs, in the order they are written.
using Labels = std::vector<std::pair<std::string, std::string>>;

struct MetricSample {
  Labels labels;  // the set's common labels first, then the sample's own
  double value = 0;
};

struct MetricFamily {
  std::string name;
  MetricType type = MetricType::kGauge;
  std::string help;
  std::vector<MetricSample> samples;
};

// A set of metric families being built for one file. Not thread-safe.
class MetricSet {
 public:
  // common: labels put on every sample (first, in this order).
  // Throws Error(kOther) if a label name is invalid or repeated, or a value is
  // not valid UTF-8.
  explicit MetricSet(Labels common = {});

  // Adds one sample to the family `name`, declaring the family (with this
  // type and help) on its first use. Throws Error(kOther), adding nothing,
  // for: a name that is not [a-zA-Z_:][a-zA-Z0-9_:]*; a label name that is
  // not [a-zA-Z_][a-zA-Z0-9_]*, starts with "__" or is repeated (also
  // against the common labels); a label value that is not valid UTF-8; a type
  // or help that differs from the family's first declaration; a negative or
  // NaN counter; a label set the family already has.
  void Gauge(const std::string& name, const std::string& help, double value, const Labels& labels = {});
  void Counter(const std::string& name, const std::string& help, double value, const Labels& labels = {});

  const std::vector<MetricFamily>& families() const { return families_; }
  bool empty() const { return families_.empty(); }

  // The text format; "" for an empty set, else ends with a newline.
  std::string Render() const;

 private:
  void Add(MetricType type, const std::string& name, const std::string& help, double value,
           const Labels& labels);

  Labels common_;
  std::vector<MetricFamily> families_;
};

// Writes metrics.Render() to path so that a reader sees the old file or the
// new one, never part of one, mode 0644 (node_exporter runs as another user
// and must read it): through WriteFileAtomic (a new temporary
// "path.tmp-<random>", O_EXCL|O_NOFOLLOW, in the same directory, fsync, rename, fsync of the
// directory). The temporary name does not end in ".prom", so node_exporter
// never reads it; on failure it is removed (best effort) and the error
// (naming the file) is thrown; the old file is then intact unless the
// failure came after the rename (the directory fsync), when the new one is
// in place.
// REQUIRES: path ends in ".prom" (Error(kConfig) otherwise), its directory exists.
void WriteTextfile(Env* env, const std::string& path, const MetricSet& metrics);

// A strict parser of the text format as Render() writes it: every family
// must have exactly one "# HELP" and one "# TYPE" line (gauge or counter)
// before its samples, the samples of a family must be together, and names,
// label names, escapes (only \\, \" and \n in label values; \\ and \n in
// HELP), UTF-8, values (decimal or exponent notation, +Inf, -Inf, NaN) and
// the final newline must be exact. Rejects timestamps, duplicate series and
// any other line ("# " comments other than HELP and TYPE included).
// Throws Error(kCorrupt) "metrics line N: what is wrong".
std::vector<MetricFamily> ParseMetrics(std::string_view text);

// The value of the sample of `name` whose label set is exactly `labels`
// (order-insensitive), if there is one.
std::optional<double> FindSample(const std::vector<MetricFamily>& families, std::string_view name,
                                 const Labels& labels = {});

// ---- vmback's own metrics ------------------------------------------------
//
// The names are fixed here, with their type, help and labels, so that every
// command writes them the same way:
//
//   vmback_last_run_timestamp_seconds      gauge   when the last run finished
//   vmback_last_success_timestamp_seconds  gauge   when the last run with exit 0 or 5 finished
//   vmback_last_run_duration_seconds       gauge
//   vmback_last_run_exit_code              gauge
//   vmback_last_run_bytes_read{volume}     gauge   bytes read from each volume by the last run
//   vmback_last_run_bytes_written{volume}  gauge   bytes written for each volume by the last run
//   vmback_freeze_seconds{vm}              gauge   how long each VM was kept quiet
//   vmback_verify_errors                   gauge   problems the last verify found
//   vmback_points{target}                  gauge   points in each target after the run

struct VolumeBytes {
  std::string volume;
  uint64_t read = 0;
  uint64_t written = 0;
};

// What a finished command reports. Empty vectors and absent optionals leave
// their metric out of the file.
struct RunMetrics {
  int64_t started_ns = 0;
  int64_t finished_ns = 0;
  int exit_code = 0;
  // The last success before this run, e.g. from PreviousLastSuccess(); kept
  // in the file when this run failed, so that an alert on "no success for
  // 2 days" survives failed runs.
  std::optional<double> previous_success_seconds;
  std::vector<VolumeBytes> volumes;
  std::vector<std::pair<std::string, double>> freeze_seconds;  // VM name, seconds
  std::optional<uint64_t> verify_errors;
  std::vector<std::pair<std::string, uint64_t>> points;  // target, number of points
};

// Exit 0 (success) and 5 (success with warnings) count as a success.
bool IsSuccessExitCode(int exit_code);

// The MetricSet for r, with `common` on every sample (see the file comment).
// Throws Error(kOther) for a volume or VM named twice.
MetricSet BuildRunMetrics(const RunMetrics& r, const Labels& common = {});

// vmback_last_success_timestamp_seconds{common} from the file an earlier run
// wrote at path: nothing when the file or the sample does not exist. Throws
// Error (kCorrupt naming path) when the file cannot be parsed, Error(kIo)
// when it cannot be read: a caller may warn and go on without it.
std::optional<double> PreviousLastSuccess(Env* env, const std::string& path, const Labels& common = {});

}  // namespace vmback
