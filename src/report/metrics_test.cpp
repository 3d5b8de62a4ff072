// The Prometheus text format writer (MetricSet, WriteTextfile), its strict
// parser, and vmback's own metric set: exact output, round trips through the
// parser, promtool's verdict on the output (when promtool is installed), and
// the atomic replace of the textfile under injected faults.
#include "report/metrics.h"

#include <gtest/gtest.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <functional>
#include <random>
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

// Families compare equal when names, types, help, labels (in order) and
// values (NaN equal to NaN) are the same.
void ExpectSameFamilies(const std::vector<MetricFamily>& a, const std::vector<MetricFamily>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    SCOPED_TRACE(a[i].name);
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].help, b[i].help);
    ASSERT_EQ(a[i].samples.size(), b[i].samples.size());
    for (size_t j = 0; j < a[i].samples.size(); j++) {
      EXPECT_EQ(a[i].samples[j].labels, b[i].samples[j].labels);
      double x = a[i].samples[j].value, y = b[i].samples[j].value;
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(y));
      } else {
        EXPECT_EQ(x, y);  // exact: the text must read back bit for bit
      }
    }
  }
}

// Names of the entries of dir other than those listed.
std::vector<std::string> Others(const std::string& dir, const std::vector<std::string>& expected) {
  std::vector<std::string> out;
  for (const auto& n : Env::Default()->ListDir(dir)) {
    bool known = false;
    for (const auto& e : expected) known = known || n == e;
    if (!known) out.push_back(n);
  }
  return out;
}

bool HavePromtool() { return test::Exec({"sh", "-c", "command -v promtool"}).exit_code == 0; }

// promtool check metrics on text (from stdin, as it reads it): its exit
// status and everything it said.
RunResult Promtool(const TempDir& tmp, const std::string& text) {
  std::string file = tmp / "promtool-input.prom";
  WriteFile(file, text);
  return test::Exec({"sh", "-c", "promtool check metrics < \"$1\"", "sh", file});
}

MetricSet Example() {
  MetricSet m(Labels{{"command", "run"}});
  m.Gauge("vmback_points", "Points in each target.", 14, {{"target", "/mnt/usb1/vmback"}});
  m.Counter("vmback_bytes_read_total", "Bytes read.", 8200000000, {{"volume", "images"}});
  m.Counter("vmback_bytes_read_total", "Bytes read.", 0, {{"volume", "root"}});
  m.Gauge("vmback_points", "Points in each target.", 3, {{"target", "/srv/b"}});
  return m;
}

TEST(MetricSetTest, RendersExactText) {
  EXPECT_EQ(Example().Render(),
            "# HELP vmback_points Points in each target.\n"
            "# TYPE vmback_points gauge\n"
            "vmback_points{command=\"run\",target=\"/mnt/usb1/vmback\"} 14\n"
            "vmback_points{command=\"run\",target=\"/srv/b\"} 3\n"
            "# HELP vmback_bytes_read_total Bytes read.\n"
            "# TYPE vmback_bytes_read_total counter\n"
            "vmback_bytes_read_total{command=\"run\",volume=\"images\"} 8200000000\n"
            "vmback_bytes_read_total{command=\"run\",volume=\"root\"} 0\n");
  EXPECT_EQ(MetricSet().Render(), "");
  MetricSet plain;
  plain.Gauge("up", "Whether it is up.", 1);
  EXPECT_EQ(plain.Render(), "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n");
}

TEST(MetricSetTest, EscapesLabelValuesAndHelp) {
  MetricSet m;
  m.Gauge("vmback_freeze_seconds", "Help with a \\ backslash\nand a \"newline\".", 1.5,
          {{"vm", "a\\b\"c\nd"}});
  EXPECT_EQ(m.Render(),
            "# HELP vmback_freeze_seconds Help with a \\\\ backslash\\nand a \"newline\".\n"
            "# TYPE vmback_freeze_seconds gauge\n"
            "vmback_freeze_seconds{vm=\"a\\\\b\\\"c\\nd\"} 1.5\n");
}

TEST(MetricSetTest, RoundTripsThroughTheStrictParser) {
  MetricSet m(Labels{{"command", "verify"}, {"host", "h\u00e9te"}});
  m.Gauge("g", "Values.", 0, {{"k", "zero"}});
  m.Gauge("g", "Values.", -0.0, {{"k", "minus zero"}});
  m.Gauge("g", "Values.", 1.0 / 3, {{"k", "third"}});
  m.Gauge("g", "Values.", 1e300, {{"k", "big"}});
  m.Gauge("g", "Values.", -2.5e-300, {{"k", "tiny"}});
  m.Gauge("g", "Values.", 1764180062.123456, {{"k", "time"}});
  m.Gauge("g", "Values.", 18446744073709551615.0, {{"k", "u64"}});
  m.Gauge("g", "Values.", HUGE_VAL, {{"k", "inf"}});
  m.Gauge("g", "Values.", -HUGE_VAL, {{"k", "-inf"}});
  m.Gauge("g", "Values.", std::nan(""), {{"k", "nan"}});
  m.Counter("c_total", "A \\ and\n\"quotes\"", 7, {{"v", "\\\"\n,}{= \u2603"}, {"w", ""}});
  m.Gauge("no_labels:sub", "Colons are allowed in names.", 42);
  std::vector<MetricFamily> back = ParseMetrics(m.Render());
  ExpectSameFamilies(back, m.families());
  // And rendering what was parsed gives the same bytes.
  MetricSet again;
  for (const auto& f : back)
    for (const auto& s : f.samples) {
      if (f.type == MetricType::kCounter) again.Counter(f.name, f.help, s.value, s.labels);
      else again.Gauge(f.name, f.help, s.value, s.labels);
    }
  EXPECT_EQ(again.Render(), m.Render());
  EXPECT_EQ(FindSample(back, "g", {{"k", "third"}, {"host", "h\u00e9te"}, {"command", "verify"}}), 1.0 / 3);
  EXPECT_EQ(FindSample(back, "g", {{"k", "third"}}), std::nullopt);
  EXPECT_EQ(FindSample(back, "missing"), std::nullopt);
}

// Many random sets (seeded): label values and help built from the
// characters that need escaping, UTF-8 and plain text; values of every
// magnitude. Each reads back exactly.
TEST(MetricSetTest, RandomSetsRoundTrip) {
  std::mt19937_64 rng(20261126);
  const std::vector<std::string> pieces = {"\\", "\"", "\n", "{", "}", ",", "=", " ", "a", "Z", "0",
                                           "\u00e9", "\u2603", "\U0001F600", "#", "\\n", "\t"};
  auto text = [&](size_t max_pieces) {
    std::string s;
    for (size_t n = rng() % (max_pieces + 1); n > 0; n--) s += pieces[rng() % pieces.size()];
    return s;
  };
  auto value = [&]() {
    switch (rng() % 4) {
      case 0: return static_cast<double>(rng() % 1000000);
      case 1: return std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(rng() % 200) - 100);
      case 2: return static_cast<double>(rng());  // above 2^53
      default: return std::bit_cast<double>(rng() & 0x7fefffffffffffffULL);  // any finite, non-negative
    }
  };
  for (int round = 0; round < 300; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    MetricSet m(Labels{{"command", text(3)}});
    int families = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < families; f++) {
      std::string name = "m" + std::to_string(f) + (f % 2 ? "_total" : "");
      std::string help = "h" + text(6);
      for (int s = 0; s < 5; s++) {
        Labels labels = {{"k", std::to_string(s) + text(8)}};
        if (rng() % 2) labels.emplace_back("other_" + std::to_string(s), text(4));
        if (f % 2) m.Counter(name, help, value(), labels);
        else m.Gauge(name, help, (rng() % 2 ? -1 : 1) * value(), labels);
      }
    }
    std::string rendered = m.Render();
    std::vector<MetricFamily> back;
    try {
      back = ParseMetrics(rendered);
    } catch (const Error& e) {
      FAIL() << e.what() << "\n" << rendered;
    }
    ExpectSameFamilies(back, m.families());
  }
}

TEST(MetricSetTest, RefusesWhatPrometheusWouldNotRead) {
  auto refused = [](const std::function<void(MetricSet&)>& f) {
    MetricSet m(Labels{{"command", "run"}});
    m.Gauge("ok", "Fine.", 1, {{"a", "1"}});
    std::string before = m.Render();
    try {
      f(m);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kOther);
      EXPECT_EQ(m.Render(), before) << "a refused sample must add nothing";
      return true;
    }
    return false;
  };
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("", "h", 1); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("1abc", "h", 1); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("a-b", "h", 1); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "", 1); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "h", 1, {{"__name__", "y"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "h", 1, {{"a:b", "y"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "h", 1, {{"v", "bad \xff utf8"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "h", 1, {{"v", "1"}, {"v", "2"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("x", "h", 1, {{"command", "again"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("ok", "Fine.", 2, {{"a", "1"}}); }));  // same series
  EXPECT_TRUE(refused([](MetricSet& m) { m.Counter("ok", "Fine.", 2, {{"a", "2"}}); }));  // other type
  EXPECT_TRUE(refused([](MetricSet& m) { m.Gauge("ok", "Other help.", 2, {{"a", "2"}}); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Counter("c_total", "h", -1); }));
  EXPECT_TRUE(refused([](MetricSet& m) { m.Counter("c_total", "h", std::nan("")); }));
  EXPECT_FALSE(refused([](MetricSet& m) { m.Gauge("ok", "Fine.", 2, {{"a", "2"}}); }));
  EXPECT_THROW(MetricSet(Labels{{"bad-name", "x"}}), Error);
}

TEST(ParseMetricsTest, RejectsEverythingButTheExactFormat) {
  const std::string head = "# HELP m Help.\n# TYPE m gauge\n";
  struct Case {
    const char* why;
    std::string text;
    const char* message;  // part of the error
  };
  const std::vector<Case> cases = {
      {"no final newline", head + "m 1", "newline"},
      {"blank line", head + "m 1\n\n", "line 4"},
      {"timestamp", head + "m 1 1764180062000\n", "timestamps"},
      {"no TYPE", "# HELP m Help.\nm 1\n", "line 2"},
      {"TYPE first", "# TYPE m gauge\n# HELP m Help.\nm 1\n", "line 1"},
      {"no HELP", "m 1\n", "line 1"},
      {"untyped", "# HELP m Help.\n# TYPE m untyped\nm 1\n", "untyped"},
      {"histogram", "# HELP m Help.\n# TYPE m histogram\nm 1\n", "histogram"},
      {"TYPE of another", "# HELP m Help.\n# TYPE n gauge\nm 1\n", "line 2"},
      {"family without samples", head + "# HELP n Help.\n# TYPE n gauge\nn 1\n", "no samples"},
      {"last family without samples", head + "m 1\n# HELP n Help.\n# TYPE n gauge\n", "no samples"},
      {"family twice", head + "m 1\n" + head + "m 2\n", "twice"},
      {"foreign sample", head + "n 1\n", "line 3"},
      {"other comment", head + "# just a comment\nm 1\n", "comment"},
      {"duplicate series", head + "m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\n", "twice"},
      {"duplicate label", head + "m{a=\"1\",a=\"2\"} 1\n", "twice"},
      {"reserved label", head + "m{__a=\"1\"} 1\n", "label name"},
      {"unquoted value", head + "m{a=1} 1\n", "line 3"},
      {"bad escape", head + "m{a=\"\\t\"} 1\n", "escape"},
      {"bad help escape", "# HELP m A \\t tab.\n# TYPE m gauge\nm 1\n", "escape"},
      {"unterminated", head + "m{a=\"1} 1\n", "unterminated"},
      {"trailing comma", head + "m{a=\"1\",} 1\n", "line 3"},
      {"empty braces", head + "m{} 1\n", "line 3"},
      {"space in braces", head + "m{a=\"1\", b=\"2\"} 1\n", "line 3"},
      {"two spaces", head + "m  1\n", "line 3"},
      {"lower-case inf", head + "m inf\n", "not a value"},
      {"nan", head + "m nan\n", "not a value"},
      {"hex", head + "m 0x10\n", "not a value"},
      {"plus sign", head + "m +1\n", "not a value"},
      {"no value", head + "m\n", "line 3"},
      {"text value", head + "m one\n", "not a value"},
      {"negative counter", "# HELP c Help.\n# TYPE c counter\nc -1\n", "negative"},
      {"invalid UTF-8", head + "m{a=\"\xc3\"} 1\n", "UTF-8"},
      {"CR line end", head + "m 1\r\n", "line 3"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.why);
    try {
      ParseMetrics(c.text);
      ADD_FAILURE() << "accepted:\n" << c.text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(ParseMetrics("").empty());
  EXPECT_EQ(ParseMetrics(head + "m 1\n").size(), 1u);
  EXPECT_EQ(ParseMetrics(head + "m 1e3\n")[0].samples[0].value, 1000);
  EXPECT_EQ(ParseMetrics("# HELP m \n# TYPE m gauge\nm .5\n")[0].samples[0].value, 0.5);
}

RunMetrics FullRun() {
  RunMetrics r;
  r.started_ns = 1764180000'000000000;
  r.finished_ns = 1764180062'500000000;
  r.exit_code = 0;
  r.volumes = {{"images", 8200000000, 123456789}, {"root", 42, 0}};
  r.freeze_seconds = {{"MySQL", 1.25}, {"web \"frontend\"", 0.5}};
  r.verify_errors = 0;
  r.points = {{"/mnt/usb1/vmback", 14}};
  return r;
}

TEST(RunMetricsTest, HasEveryMetricWithItsLabels) {
  std::vector<MetricFamily> f = ParseMetrics(BuildRunMetrics(FullRun(), {{"command", "run"}}).Render());
  const Labels run = {{"command", "run"}};
  auto with = [&](const char* k, const char* v) {
    Labels l = run;
    l.emplace_back(k, v);
    return l;
  };
  EXPECT_EQ(FindSample(f, "vmback_last_run_timestamp_seconds", run), 1764180062.5);
  EXPECT_EQ(FindSample(f, "vmback_last_success_timestamp_seconds", run), 1764180062.5);
  EXPECT_EQ(FindSample(f, "vmback_last_run_duration_seconds", run), 62.5);
  EXPECT_EQ(FindSample(f, "vmback_last_run_exit_code", run), 0);
  EXPECT_EQ(FindSample(f, "vmback_last_run_bytes_read", with("volume", "images")), 8200000000);
  EXPECT_EQ(FindSample(f, "vmback_last_run_bytes_read", with("volume", "root")), 42);
  EXPECT_EQ(FindSample(f, "vmback_last_run_bytes_written", with("volume", "images")), 123456789);
  EXPECT_EQ(FindSample(f, "vmback_freeze_seconds", with("vm", "MySQL")), 1.25);
  EXPECT_EQ(FindSample(f, "vmback_freeze_seconds", with("vm", "web \"frontend\"")), 0.5);
  EXPECT_EQ(FindSample(f, "vmback_verify_errors", run), 0);
  EXPECT_EQ(FindSample(f, "vmback_points", with("target", "/mnt/usb1/vmback")), 14);
  // Each is the last run's value, so a gauge: a counter must only grow
  // (rate() over two runs would be wrong).
  for (const auto& family : f) EXPECT_EQ(family.type, MetricType::kGauge) << family.name;
}

TEST(RunMetricsTest, LastSuccessSurvivesFailedRuns) {
  RunMetrics r = FullRun();
  r.exit_code = 5;  // success with warnings is a success
  r.previous_success_seconds = 100;
  EXPECT_EQ(FindSample(ParseMetrics(BuildRunMetrics(r).Render()), "vmback_last_success_timestamp_seconds"),
            1764180062.5);
  r.exit_code = 1;
  EXPECT_EQ(FindSample(ParseMetrics(BuildRunMetrics(r).Render()), "vmback_last_success_timestamp_seconds"), 100);
  r.previous_success_seconds.reset();
  auto f = ParseMetrics(BuildRunMetrics(r).Render());
  EXPECT_EQ(FindSample(f, "vmback_last_success_timestamp_seconds"), std::nullopt);
  EXPECT_EQ(FindSample(f, "vmback_last_run_exit_code"), 1);

  RunMetrics dup = FullRun();
  dup.volumes.push_back({"images", 1, 1});
  EXPECT_THROW(BuildRunMetrics(dup), Error);
}

TEST(RunMetricsTest, PreviousLastSuccessReadsTheEarlierFile) {
  TempDir tmp;
  Env* env = Env::Default();
  std::string path = tmp / "vmback-run.prom";
  EXPECT_EQ(PreviousLastSuccess(env, path), std::nullopt);  // no file yet
  const Labels run = {{"command", "run"}};
  WriteTextfile(env, path, BuildRunMetrics(FullRun(), run));
  EXPECT_EQ(PreviousLastSuccess(env, path, run), 1764180062.5);
  EXPECT_EQ(PreviousLastSuccess(env, path), std::nullopt);  // other labels
  WriteFile(path, "garbage\n");
  try {
    PreviousLastSuccess(env, path, run);
    ADD_FAILURE() << "a damaged file was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(PromtoolTest, AcceptsWhatVmbackWrites) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed (Debian: apt install prometheus)";
  TempDir tmp;
  for (const std::string& text : {BuildRunMetrics(FullRun(), {{"command", "run"}}).Render(),
                                  BuildRunMetrics(FullRun()).Render()}) {
    RunResult r = Promtool(tmp, text);
    EXPECT_EQ(r.exit_code, 0) << "promtool check metrics:\n" << r.out << r.err << "on:\n" << text;
    EXPECT_EQ(r.out + r.err, "") << text;  // not even a lint hint
  }
  // The escapes, as promtool reads them.
  MetricSet m;
  m.Gauge("vmback_freeze_seconds", "Odd \\ help\nover two lines.", 2, {{"vm", "a\\b\"c\nd \u2603"}});
  RunResult r = Promtool(tmp, m.Render());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << m.Render();
}

TEST(PromtoolTest, RejectsBrokenText) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed (Debian: apt install prometheus)";
  TempDir tmp;
  // The check above means something only if promtool can say no.
  RunResult r = Promtool(tmp, "# HELP m Help.\n# TYPE m gauge\nm{a=\"1} 1\n");
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
}

TEST(WriteTextfileTest, ReplacesTheFileAndLeavesNothingElse) {
  TempDir tmp;
  Env* env = Env::Default();
  std::string path = tmp / "vmback-run.prom";
  WriteTextfile(env, path, Example());
  EXPECT_EQ(ReadFile(path), Example().Render());
  MetricSet next;
  next.Gauge("vmback_last_run_exit_code", "Exit status.", 3);
  WriteTextfile(env, path, next);
  EXPECT_EQ(ReadFile(path), next.Render());
  EXPECT_EQ(Others(tmp.path(), {"vmback-run.prom"}), std::vector<std::string>{});
  try {
    WriteTextfile(env, tmp / "vmback.txt", next);
    ADD_FAILURE() << "wrote a metrics file node_exporter would ignore";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
  }
  EXPECT_FALSE(env->Exists(tmp / "vmback.txt"));
  EXPECT_THROW(WriteTextfile(env, tmp / "no-such-dir/vmback.prom", next), Error);
  EXPECT_EQ(Others(tmp.path(), {"vmback-run.prom"}), std::vector<std::string>{});
}

// An error at each write step in turn: the old file stays whole (or, when
// only the final directory fsync failed, the new one is in place), and no
// temporary is left where node_exporter's directory is.
TEST(WriteTextfileTest, AFailureAtAnyStepKeepsTheOldFile) {
  const std::string old_text = Example().Render();
  MetricSet next;
  next.Gauge("vmback_last_run_exit_code", "Exit status.", 1);
  int64_t steps = 0;
  {
    TempDir tmp;
    FaultEnv count(Env::Default(), FaultPlan{});
    WriteTextfile(&count, tmp / "m.prom", next);
    steps = count.write_steps();
  }
  ASSERT_GE(steps, 5);
  for (int err : {EIO, ENOSPC}) {
    for (int64_t n = 1; n <= steps; n++) {
      SCOPED_TRACE("errno " + std::to_string(err) + " at write step " + std::to_string(n));
      TempDir tmp;
      std::string path = tmp / "vmback-run.prom";
      WriteFile(path, old_text);
      FaultPlan plan;
      plan.fail_write_at = n;
      plan.write_errno = err;
      FaultEnv fenv(Env::Default(), plan);
      try {
        WriteTextfile(&fenv, path, next);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(tmp.path()), std::string::npos) << "names the file: " << e.what();
      }
      std::string now = ReadFile(path);
      if (n < steps) {
        EXPECT_EQ(now, old_text);
      } else {
        EXPECT_TRUE(now == old_text || now == next.Render()) << now;
      }
      EXPECT_EQ(Others(tmp.path(), {"vmback-run.prom"}), std::vector<std::string>{});
    }
  }
}

// A crash (the process gone, no clean-up) at any step: the old or the new
// file, never a mix; the temporary a crash leaves is not a *.prom file, and
// the next write succeeds and leaves nothing behind.
TEST(WriteTextfileTest, ACrashAtAnyStepLeavesOldOrNew) {
  const std::string old_text = Example().Render();
  MetricSet next;
  next.Gauge("vmback_last_run_exit_code", "Exit status.", 1);
  for (int64_t n = 1; n <= 6; n++) {
    SCOPED_TRACE("crash at write step " + std::to_string(n));
    TempDir tmp;
    std::string path = tmp / "vmback-run.prom";
    WriteFile(path, old_text);
    FaultPlan plan;
    plan.fail_write_at = n;
    FaultEnv fenv(Env::Default(), plan);
    EXPECT_THROW(WriteTextfile(&fenv, path, next), Error);
    std::string now = ReadFile(path);
    EXPECT_TRUE(now == old_text || now == next.Render()) << now;
    for (const auto& name : Others(tmp.path(), {"vmback-run.prom"}))
      EXPECT_FALSE(name.size() >= 5 && name.substr(name.size() - 5) == ".prom") << name;
    // A crash leaves its temporary (random name, never a .prom); the next
    // write leaves none of its own.
    std::vector<std::string> left = Others(tmp.path(), {"vmback-run.prom"});
    WriteTextfile(Env::Default(), path, next);
    EXPECT_EQ(ReadFile(path), next.Render());
    EXPECT_EQ(Others(tmp.path(), {"vmback-run.prom"}), left);
    for (const auto& name : left) EXPECT_EQ(name.rfind("vmback-run.prom.tmp-", 0), 0u) << name;
  }
}

}  // namespace
}  // namespace vmback
