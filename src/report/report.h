// Per-run JSON reports: one file per run of a command, in a directory kept
// for people and tools (a monitoring check that reads the newest, a script
// that plots freeze windows), e.g. /var/log/vmback:
//
//   vmback-2026-11-26T180102Z-run.json      <UTC time of the run>-<kind>
//   vmback-2026-11-26T180102Z.2-run.json    a second run of that kind in the same second
//   vmback-2026-11-27T020000Z-verify.json
//
// The time is the one point names use, so a run's report sorts beside its
// point. Each file is written atomically (a reader sees a whole report or
// none); after each write only the newest `keep` reports of that kind stay.
// Nothing but files with exactly this form of name is ever listed or
// deleted, so the directory may be shared with other files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "os/env.h"

namespace vmback {

// WriteFileAtomic (a new temporary "path.tmp-<random>" in the same
// directory, created O_EXCL and never through a symlink, fsync, rename,
// fsync of the directory), and on failure the temporary removed (best
// effort) before the error is rethrown. After a failure before the rename
// the old file at path is intact; after a failed directory fsync the new one
// is in place but perhaps not durable. The file gets exactly perm: reports
// are 0600 (they name what was backed up), metrics files 0644 (node_exporter
// runs as another user and must read them).
void ReplaceFileAtomic(Env* env, const std::string& path, const std::string& data, mode_t perm = 0600);

struct ReportFile {
  std::string name;  // the file name, without the directory
  std::string time;  // "2026-11-26T180102Z" (UTC)
  int seq = 1;       // 2, 3, ... for later reports of the same kind and second
  std::string kind;  // "run", "verify", ...
};

// A kind is 1 to 32 of [a-z0-9_-], starting with a letter or digit.
bool IsValidReportKind(std::string_view kind);

// "vmback-<time>[.<seq>]-<kind>.json" for the UTC second of time_ns.
// REQUIRES: IsValidReportKind(kind), seq >= 1.
std::string ReportFileName(int64_t time_ns, std::string_view kind, int seq = 1);

// Reads a name made by ReportFileName; false for every other name (the
// temporaries of an interrupted write included).
bool ParseReportFileName(std::string_view name, ReportFile* out);

// The reports in dir, of `kind` (of every kind if empty), oldest first (by
// time, then seq). Throws if dir cannot be listed.
std::vector<ReportFile> ListReports(Env* env, const std::string& dir, std::string_view kind = {});

// Writes report (indented JSON and a newline; invalid UTF-8 in strings
// replaced by U+FFFD) as a new report of `kind` for the time time_ns into
// dir, which is created if missing (its parent must exist), then deletes the
// oldest reports of that kind until `keep` are left (keep = 0: delete none). The report just written is never deleted, even if
// older-named ones exist (a clock set back). Returns the new file's path.
// Nothing is deleted when the write fails, so a full disk does not eat the
// history. Throws Error(kConfig) for an invalid kind; Error (naming the
// file) when a write or a deletion fails.
std::string WriteReport(Env* env, const std::string& dir, std::string_view kind, int64_t time_ns,
                        const nlohmann::json& report, size_t keep);

}  // namespace vmback
