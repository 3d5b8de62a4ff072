#include "report/report.h"

#include "util/encoding.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <tuple>

#include "util/error.h"

namespace vmback {

namespace {

constexpr std::string_view kPrefix = "vmback-";
constexpr std::string_view kSuffix = ".json";
constexpr size_t kTimeLength = 18;  // "2026-11-26T180102Z"
constexpr size_t kMaxKindLength = 32;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "YYYY-MM-DDTHHMMSSZ", digits where digits belong.
bool IsReportTime(std::string_view t) {
  if (t.size() != kTimeLength) return false;
  for (size_t i = 0; i < t.size(); i++) {
    char want = i == 4 || i == 7 ? '-' : i == 10 ? 'T' : i == 17 ? 'Z' : '0';
    if (want == '0' ? !IsDigit(t[i]) : t[i] != want) return false;
  }
  return true;
}

}  // namespace

void ReplaceFileAtomic(Env* env, const std::string& path, const std::string& data, mode_t perm) {
  WriteFileAtomic(env, path, data, perm);
}

bool IsValidReportKind(std::string_view kind) {
  if (kind.empty() || kind.size() > kMaxKindLength) return false;
  for (size_t i = 0; i < kind.size(); i++) {
    char c = kind[i];
    bool ok = (c >= 'a' && c <= 'z') || IsDigit(c) || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

std::string ReportFileName(int64_t time_ns, std::string_view kind, int seq) {
  std::string name = std::string(kPrefix) + FormatPointStamp(time_ns);
  if (seq > 1) name += "." + std::to_string(seq);
  return name + "-" + std::string(kind) + std::string(kSuffix);
}

bool ParseReportFileName(std::string_view name, ReportFile* out) {
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = name.substr(kPrefix.size());
  if (rest.size() < kSuffix.size() || rest.substr(rest.size() - kSuffix.size()) != kSuffix) return false;
  rest.remove_suffix(kSuffix.size());
  std::string_view time = rest.substr(0, kTimeLength);
  if (!IsReportTime(time)) return false;
  rest.remove_prefix(kTimeLength);
  int seq = 1;
  if (!rest.empty() && rest[0] == '.') {
    size_t n = 1;
    while (n < rest.size() && IsDigit(rest[n])) n++;
    std::string_view digits = rest.substr(1, n - 1);
    // As ReportFileName writes it: 2 or more, no leading zero, not absurd.
    if (digits.empty() || digits.size() > 6 || digits[0] == '0') return false;
    seq = std::stoi(std::string(digits));
    if (seq < 2) return false;
    rest.remove_prefix(n);
  }
  if (rest.empty() || rest[0] != '-') return false;
  std::string_view kind = rest.substr(1);
  if (!IsValidReportKind(kind)) return false;
  *out = {std::string(name), std::string(time), seq, std::string(kind)};
  return true;
}

std::vector<ReportFile> ListReports(Env* env, const std::string& dir, std::string_view kind) {
  std::vector<ReportFile> reports;
  for (const auto& name : env->ListDir(dir)) {
    ReportFile r;
    if (ParseReportFileName(name, &r) && (kind.empty() || r.kind == kind)) reports.push_back(std::move(r));
  }
  std::sort(reports.begin(), reports.end(), [](const ReportFile& a, const ReportFile& b) {
    return std::tie(a.time, a.seq, a.kind) < std::tie(b.time, b.seq, b.kind);
  });
  return reports;
}

std::string WriteReport(Env* env, const std::string& given_dir, std::string_view kind, int64_t time_ns,
                        const nlohmann::json& report, size_t keep) {
  if (!IsValidReportKind(kind))
    ThrowConfig("report kind '" + std::string(kind) + "' is not 1 to 32 of a-z, 0-9, '_' and '-'");
  // The configured directory may be a symlink the admin made: resolved once.
  const std::string dir = CanonicalPath(given_dir);
  env->MakeDir(dir);
  // Two processes writing a report of one kind in the same second could
  // still pick the same name; the run and store locks make that moot.
  std::string name;
  for (int seq = 1;; seq++) {
    name = ReportFileName(time_ns, kind, seq);
    if (!env->Exists(JoinPath(dir, name))) break;
  }
  std::string path = JoinPath(dir, name);
  // Invalid UTF-8 (a file name from a guest) becomes U+FFFD rather than
  // costing the whole report.
  std::string text = report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  ReplaceFileAtomic(env, path, text);

  if (keep == 0) return path;
  std::vector<ReportFile> older;
  for (auto& r : ListReports(env, dir, kind))
    if (r.name != name) older.push_back(std::move(r));
  // The new report counts as one of the `keep`.
  size_t excess = older.size() + 1 > keep ? older.size() + 1 - keep : 0;
  for (size_t i = 0; i < excess; i++) env->Remove(JoinPath(dir, older[i].name));
  return path;
}

}  // namespace vmback
