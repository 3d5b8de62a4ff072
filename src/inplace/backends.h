// What the in-place backends (zfs_target.cpp, btrfs_target.cpp,
// dir_target.cpp) share, and how OpenInplaceTarget (target.cpp) makes them.
// Internal to src/inplace.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "inplace/target.h"
#include "os/env.h"
#include "util/log.h"
#include "util/tunables.h"

namespace vmback {
namespace inplace_internal {

// Each throws kConfig/kNotFound when the target is not what it claims.
std::unique_ptr<InplaceTarget> MakeZfsTarget(Env* env, const TargetConfig& config, Logger* log);
std::unique_ptr<InplaceTarget> MakeBtrfsTarget(Env* env, const TargetConfig& config, Logger* log);
std::unique_ptr<InplaceTarget> MakeDirTarget(Env* env, const TargetConfig& config);

// Runs a file-system command; a failure to start it is kConfig naming what
// and asking whether the tool is installed. Its exit status is the caller's.
RunResult RunTool(Env* env, const std::vector<std::string>& argv, const std::string& what);
// RunTool, and a non-zero exit is an error naming the command and its stderr.
RunResult RunChecked(Env* env, const std::vector<std::string>& argv, const std::string& what);

// s without trailing newlines and blanks and leading blanks.
std::string Trim(std::string s);
std::vector<std::string> Lines(const std::string& text);
std::vector<std::string> Words(const std::string& line);

// Sorts prefixed point names by their time stamps.
void SortPoints(std::vector<std::string>* names, size_t prefix_len);
// From the output of `zfs list -H -t snapshot -o name -r DATASET`: the
// snapshot names (after the @) of DATASET itself, not of its children, in
// the order listed.
std::vector<std::string> ZfsSnapshotsOf(const std::string& listing, const std::string& dataset);
// Of snapshot names, vmback's points (PREFIX + a valid stamp), oldest first.
std::vector<std::string> OwnPoints(const std::vector<std::string>& snapshots, const std::string& prefix);
// A name for a new point that is not taken yet: PREFIX + stamp [+ ".N"].
std::string FreshPointName(const std::string& prefix, int64_t now_ns, const std::vector<std::string>& taken);
// Throws kConfig unless name is PREFIX + a point stamp (vmback's own).
void CheckOwnPoint(const std::string& prefix, const std::string& name, const std::string& where);

// A point that is a directory already (btrfs snapshot, dir): nothing to undo.
class PlainPointView : public PointView {
 public:
  explicit PlainPointView(std::string root) : root_(std::move(root)) {}
  const std::string& root() const override { return root_; }

 private:
  std::string root_;
};

}  // namespace inplace_internal
}  // namespace vmback
