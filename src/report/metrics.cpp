#include "report/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

#include "report/report.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

[[noreturn]] void Invalid(const std::string& message) { throw Error(ErrorKind::kOther, "metrics: " + message); }

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty() || s.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const char* TypeName(MetricType t) { return t == MetricType::kCounter ? "counter" : "gauge"; }

// Label sets compare without regard to order.
Labels Sorted(Labels l) {
  std::sort(l.begin(), l.end());
  return l;
}

void CheckLabels(const Labels& labels) {
  for (size_t i = 0; i < labels.size(); i++) {
    const auto& [name, value] = labels[i];
    if (!IsLabelName(name)) Invalid("invalid label name '" + name + "'");
    if (!IsValidUtf8(value)) Invalid("label " + name + " has a value that is not valid UTF-8");
    for (size_t j = 0; j < i; j++)
      if (labels[j].first == name) Invalid("label " + name + " given twice");
  }
}

std::string EscapeHelp(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeLabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// Text that reads back as exactly v (Go's ParseFloat, which Prometheus uses,
// reads every form to_chars writes): whole numbers below 2^53 (byte counts,
// exit codes) in plain digits, anything else in the shortest form.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) < kExactIntegers && !(v == 0 && std::signbit(v))) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    return std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) Invalid("cannot format a value");  // cannot happen with 64 bytes
  return std::string(buf, end);
}

// ---- parsing ---------------------------------------------------------------

class LineParser {
 public:
  LineParser(std::string_view line, int number) : s_(line), number_(number) {}

  [[noreturn]] void Fail(const std::string& what) const {
    ThrowCorrupt("metrics line " + std::to_string(number_) + ": " + what);
  }
  bool AtEnd() const { return pos_ == s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  void Expect(char c) {
    if (Peek() != c) Fail(std::string("expected '") + c + "' at column " + std::to_string(pos_ + 1));
    pos_++;
  }
  bool Consume(std::string_view prefix) {
    if (s_.substr(pos_, prefix.size()) != prefix) return false;
    pos_ += prefix.size();
    return true;
  }
  // Up to the next space (or the end).
  std::string_view Word() {
    size_t start = pos_;
    while (!AtEnd() && s_[pos_] != ' ') pos_++;
    return s_.substr(start, pos_ - start);
  }
  std::string_view Rest() {
    std::string_view r = s_.substr(pos_);
    pos_ = s_.size();
    return r;
  }
  std::string_view Name() {
    size_t start = pos_;
    while (!AtEnd() && s_[pos_] != ' ' && s_[pos_] != '{' && s_[pos_] != '=') pos_++;
    return s_.substr(start, pos_ - start);
  }
  // The body of a quoted label value, unescaped; pos_ on the closing quote.
  std::string QuotedValue() {
    std::string out;
    for (;;) {
      if (AtEnd()) Fail("unterminated label value");
      char c = s_[pos_];
      if (c == '"') return out;
      pos_++;
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = Peek();
      if (e == '\\') out += '\\';
      else if (e == '"') out += '"';
      else if (e == 'n') out += '\n';
      else Fail("invalid escape in a label value");
      pos_++;
    }
  }

 private:
  std::string_view s_;
  int number_;
  size_t pos_ = 0;
};

double ParseValue(const LineParser& p, std::string_view text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  // from_chars alone would also take "inf", "nan" and hex digits.
  bool plain = !text.empty();
  for (char c : text) plain = plain && ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+');
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (!plain || text[0] == '+' || ec != std::errc() || end != text.data() + text.size())
    p.Fail("'" + std::string(text) + "' is not a value");
  return v;
}

}  // namespace

// ---- MetricSet ---------------------------------------------------------------

MetricSet::MetricSet(Labels common) : common_(std::move(common)) { CheckLabels(common_); }

void MetricSet::Gauge(const std::string& name, const std::string& help, double value, const Labels& labels) {
  Add(MetricType::kGauge, name, help, value, labels);
}

void MetricSet::Counter(const std::string& name, const std::string& help, double value, const Labels& labels) {
  Add(MetricType::kCounter, name, help, value, labels);
}

void MetricSet::Add(MetricType type, const std::string& name, const std::string& help, double value,
                    const Labels& labels) {
  if (!IsMetricName(name)) Invalid("invalid metric name '" + name + "'");
  if (help.empty() || !IsValidUtf8(help)) Invalid(name + ": the help text must be non-empty UTF-8");
  if (type == MetricType::kCounter && !(value >= 0)) Invalid(name + ": a counter cannot be " + FormatValue(value));
  Labels all = common_;
  all.insert(all.end(), labels.begin(), labels.end());
  CheckLabels(all);

  auto family = std::find_if(families_.begin(), families_.end(), [&](const MetricFamily& f) { return f.name == name; });
  if (family == families_.end()) {
    families_.push_back({name, type, help, {}});
    family = families_.end() - 1;
  } else if (family->type != type || family->help != help) {
    Invalid(name + ": declared before as a " + TypeName(family->type) + " with other help text");
  }
  Labels key = Sorted(all);
  for (const auto& s : family->samples)
    if (Sorted(s.labels) == key) Invalid(name + ": the same labels twice");
  family->samples.push_back({std::move(all), value});
}

std::string MetricSet::Render() const {
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + TypeName(f.type) + "\n";
    for (const auto& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += '{';
        for (size_t i = 0; i < s.labels.size(); i++) {
          if (i) out += ',';
          out += s.labels[i].first + "=\"" + EscapeLabelValue(s.labels[i].second) + '"';
        }
        out += '}';
      }
      out += ' ' + FormatValue(s.value) + '\n';
    }
  }
  return out;
}

void WriteTextfile(Env* env, const std::string& path, const MetricSet& metrics) {
  if (!EndsWith(path, ".prom"))
    ThrowConfig("metrics file " + path + ": the name must end in .prom (node_exporter reads only those)");
  // 0644 whatever the umask: node_exporter, another user, reads it.
  ReplaceFileAtomic(env, path, metrics.Render(), 0644);
}

// ---- parser --------------------------------------------------------------------

std::vector<MetricFamily> ParseMetrics(std::string_view text) {
  std::vector<MetricFamily> families;
  if (text.empty()) return families;
  if (text.back() != '\n') ThrowCorrupt("metrics: the last line does not end with a newline");
  if (!IsValidUtf8(text)) ThrowCorrupt("metrics: not valid UTF-8");

  // What the next line may be: a HELP, the TYPE of the family just named, or
  // (after the TYPE) a sample of it.
  enum class Expecting { kHelp, kType, kSampleOrHelp } state = Expecting::kHelp;
  std::vector<std::string_view> lines;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  for (size_t i = 0; i < lines.size(); i++) {
    LineParser p(lines[i], static_cast<int>(i + 1));
    if (p.Consume("# HELP ")) {
      if (state == Expecting::kType) p.Fail("HELP where the TYPE of " + families.back().name + " belongs");
      if (!families.empty() && families.back().samples.empty()) p.Fail(families.back().name + " has no samples");
      std::string_view name = p.Word();
      if (!IsMetricName(name)) p.Fail("invalid metric name '" + std::string(name) + "'");
      for (const auto& f : families)
        if (f.name == name) p.Fail(f.name + " described twice");
      p.Expect(' ');
      std::string help;
      std::string_view raw = p.Rest();
      for (size_t k = 0; k < raw.size(); k++) {
        if (raw[k] != '\\') {
          help += raw[k];
        } else if (k + 1 < raw.size() && raw[k + 1] == '\\') {
          help += '\\';
          k++;
        } else if (k + 1 < raw.size() && raw[k + 1] == 'n') {
          help += '\n';
          k++;
        } else {
          p.Fail("invalid escape in the help text");
        }
      }
      families.push_back({std::string(name), MetricType::kGauge, help, {}});
      state = Expecting::kType;
    } else if (p.Consume("# TYPE ")) {
      if (state != Expecting::kType) p.Fail("TYPE without the HELP line before it");
      MetricFamily& f = families.back();
      if (p.Word() != f.name) p.Fail("TYPE of another family than " + f.name);
      p.Expect(' ');
      std::string_view type = p.Rest();
      if (type == "gauge") f.type = MetricType::kGauge;
      else if (type == "counter") f.type = MetricType::kCounter;
      else p.Fail("type '" + std::string(type) + "' is not gauge or counter");
      state = Expecting::kSampleOrHelp;
    } else if (p.Peek() == '#') {
      p.Fail("a comment other than HELP and TYPE");
    } else {
      if (state != Expecting::kSampleOrHelp) p.Fail("a sample before its family's HELP and TYPE");
      MetricFamily& f = families.back();
      std::string_view name = p.Name();
      if (name != f.name) p.Fail("sample of '" + std::string(name) + "' among those of " + f.name);
      MetricSample s;
      if (p.Peek() == '{') {
        p.Expect('{');
        for (;;) {
          std::string_view label = p.Name();
          if (!IsLabelName(label)) p.Fail("invalid label name '" + std::string(label) + "'");
          for (const auto& l : s.labels)
            if (l.first == label) p.Fail("label " + l.first + " given twice");
          p.Expect('=');
          p.Expect('"');
          std::string value = p.QuotedValue();
          p.Expect('"');
          s.labels.emplace_back(std::string(label), std::move(value));
          if (p.Peek() == '}') break;
          p.Expect(',');
        }
        p.Expect('}');
      }
      p.Expect(' ');
      std::string_view value = p.Word();
      if (!p.AtEnd()) p.Fail("more after the value (timestamps are not allowed)");
      s.value = ParseValue(p, value);
      if (f.type == MetricType::kCounter && !(s.value >= 0)) p.Fail("counter " + f.name + " is negative or NaN");
      Labels key = Sorted(s.labels);
      for (const auto& other : f.samples)
        if (Sorted(other.labels) == key) p.Fail("the same series twice in " + f.name);
      f.samples.push_back(std::move(s));
    }
  }
  if (state == Expecting::kType) ThrowCorrupt("metrics: " + families.back().name + " has no TYPE line");
  if (families.back().samples.empty()) ThrowCorrupt("metrics: " + families.back().name + " has no samples");
  return families;
}

std::optional<double> FindSample(const std::vector<MetricFamily>& families, std::string_view name,
                                 const Labels& labels) {
  Labels key = Sorted(labels);
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& s : f.samples)
      if (Sorted(s.labels) == key) return s.value;
  }
  return std::nullopt;
}

// ---- vmback's metrics --------------------------------------------------------

bool IsSuccessExitCode(int exit_code) { return exit_code == 0 || exit_code == 5; }

MetricSet BuildRunMetrics(const RunMetrics& r, const Labels& common) {
  MetricSet m(common);
  double finished = static_cast<double>(r.finished_ns) / 1e9;
  m.Gauge("vmback_last_run_timestamp_seconds", "When the last vmback run finished (Unix time).", finished);
  std::optional<double> success =
      IsSuccessExitCode(r.exit_code) ? std::optional<double>(finished) : r.previous_success_seconds;
  if (success)
    m.Gauge("vmback_last_success_timestamp_seconds",
            "When the last vmback run that succeeded (exit status 0 or 5) finished (Unix time).", *success);
  m.Gauge("vmback_last_run_duration_seconds", "How long the last vmback run took.",
          static_cast<double>(r.finished_ns - r.started_ns) / 1e9);
  m.Gauge("vmback_last_run_exit_code", "Exit status of the last vmback run (see vmback(8)).", r.exit_code);
  for (const auto& v : r.volumes)
    m.Gauge("vmback_last_run_bytes_read", "Bytes read from each volume by the last run.",
              static_cast<double>(v.read), {{"volume", v.volume}});
  for (const auto& v : r.volumes)
    m.Gauge("vmback_last_run_bytes_written", "Bytes written to the target for each volume by the last run.",
            static_cast<double>(v.written), {{"volume", v.volume}});
  for (const auto& [vm, seconds] : r.freeze_seconds)
    m.Gauge("vmback_freeze_seconds", "How long the last run kept each VM quiesced (frozen or suspended).", seconds,
            {{"vm", vm}});
  if (r.verify_errors)
    m.Gauge("vmback_verify_errors", "Problems the last verify found (0: all good).",
            static_cast<double>(*r.verify_errors));
  for (const auto& [target, n] : r.points)
    m.Gauge("vmback_points", "Points in each target after the last run.", static_cast<double>(n),
            {{"target", target}});
  return m;
}

std::optional<double> PreviousLastSuccess(Env* env, const std::string& path, const Labels& common) {
  if (!env->Exists(path)) return std::nullopt;
  std::string text = ReadFileToString(env, path);
  std::vector<MetricFamily> families;
  try {
    families = ParseMetrics(text);
  } catch (const Error& e) {
    ThrowCorrupt(path + ": " + e.what());
  }
  return FindSample(families, "vmback_last_success_timestamp_seconds", common);
}

}  // namespace vmback
