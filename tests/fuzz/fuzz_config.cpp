// Fuzzes the config loader (config/config.h): ParseConfig, the whole of
// LoadConfig but the read of the file. Input: the text of a vmback.toml.
//
// An accepted config must obey every rule config.h promises, and each
// integer it took from the file must be the file's value (not a truncated
// one); the file is parsed a second time with toml++ to compare.

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "config/config.h"
#include "fuzz_util.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

// Not a path of any machine: relative paths in the input resolve below it.
constexpr char kConfigFile[] = "/etc/vmback/vmback.toml";

bool IsAbsolute(const std::string& path) { return !path.empty() && path[0] == '/'; }

// A store and its copies may also be in a bucket: s3://BUCKET/PREFIX.
bool IsStoreLocation(const std::string& path) {
  if (IsAbsolute(path)) return true;
  if (path.compare(0, 5, "s3://") != 0) return false;
  size_t slash = path.find('/', 5);
  return slash != std::string::npos && slash > 5 && path.find_first_not_of('/', slash) != std::string::npos;
}

bool OneOf(const std::string& s, std::initializer_list<std::string_view> set) {
  for (std::string_view v : set)
    if (s == v) return true;
  return false;
}

// The integer at table.key in the file, if there is one.
std::optional<int64_t> FileInt(const toml::table& root, std::string_view table, std::string_view key) {
  const toml::node* t = root.get(table);
  if (t == nullptr || !t->is_table()) return std::nullopt;
  const toml::node* v = t->as_table()->get(key);
  if (v == nullptr || !v->is_integer()) return std::nullopt;
  return v->as_integer()->get();
}

void CheckSameInt(const toml::table& root, std::string_view table, std::string_view key, int64_t have) {
  if (auto want = FileInt(root, table, key))
    Check(*want == have, "an integer setting keeps the file's value");
}

void CheckConfig(std::string_view text) {
  Config c;
  if (!Accepts(ErrorKind::kConfig, [&] { c = ParseConfig(text, kConfigFile); })) return;

  Check(c.file == kConfigFile, "config names its file");
  const TargetConfig& t = c.target;
  Check(OneOf(TargetTypeName(t.type), {"store", "zfs", "btrfs", "dir"}), "target type is a known kind");
  if (t.type == TargetType::kZfs) {
    Check(!t.dataset.empty() && t.dataset[0] != '/' && t.dataset.find('@') == std::string::npos,
          "a zfs target names a dataset");
    Check(t.path.empty(), "a zfs target has no path");
  } else {
    Check(t.type == TargetType::kStore ? IsStoreLocation(t.path) : IsAbsolute(t.path),
          "target path is absolute (or a store's s3://BUCKET/PREFIX)");
    Check(t.dataset.empty(), "only a zfs target has a dataset");
  }
  Check(t.type == TargetType::kStore || t.mirrors.empty(), "only the store has mirrors");
  for (const auto& m : t.mirrors) Check(IsStoreLocation(m), "mirror paths are absolute (or s3://BUCKET/PREFIX)");
  Check(!t.snapshot_prefix.empty() && t.snapshot_prefix.find_first_of("/@ \t") == std::string::npos,
        "snapshot_prefix is a plain name");
  Check(t.block_size == 0 || (t.type != TargetType::kStore && t.block_size >= 512 && t.block_size <= (16u << 20) &&
                              (t.block_size & (t.block_size - 1)) == 0),
        "target block_size is unset or a power of two from 512 to 16M");
  Check(t.lock_wait_seconds >= 0, "lock_wait is not negative");

  Check(!c.volumes.empty(), "at least one volume");
  std::set<std::string> volume_names;
  for (const auto& v : c.volumes) {
    Check(IsValidVolumeName(v.name), "volume name is valid");
    Check(volume_names.insert(v.name).second, "volume names are unique");
    Check(IsAbsolute(v.source), "volume source is absolute");
    Check(OneOf(SnapshotKindName(v.snapshot), {"none", "lvm", "btrfs", "reflink"}), "snapshot is a known kind");
    Check(OneOf(VolumeModeName(v.mode), {"filesystem", "block"}), "mode is a known kind");
    uint64_t bytes = 0;
    Check(ParseSize(v.snapshot_size, &bytes) && bytes > 0, "snapshot_size is a size");
    Check(!(v.vms_auto && !v.vms.empty()), "vms is either auto or a list");
  }

  std::set<std::string> vm_names;
  for (const auto& vm : c.vms) {
    Check(!vm.name.empty(), "vm name is not empty");
    Check(vm_names.insert(vm.name).second, "vm names are unique");
    Check(OneOf(QuiesceMethodName(vm.quiesce), {"auto", "agent", "sysrq", "suspend", "none"}), "quiesce is a known method");
  }
  for (const auto& v : c.volumes)
    for (const auto& name : v.vms) Check(vm_names.count(name) > 0, "every VM a volume names has a [[vm]]");

  Check(c.run.max_freeze_seconds > 0, "max_freeze is positive");
  Check(c.run.call_timeout_seconds > 0, "call_timeout is positive");
  Check(IsAbsolute(c.run.state_dir), "state_dir is absolute");
  Check(c.report.keep >= 1 && c.report.keep <= 100000, "report keep within 1..100000");
  Check(c.report.dir.empty() || IsAbsolute(c.report.dir), "report dir is absolute");
  Check(c.report.metrics_file.empty() || IsAbsolute(c.report.metrics_file), "metrics_file is absolute");

  const RetentionPolicy& p = c.retention;
  for (int n : {p.keep_last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly})
    Check(n >= 0 && n <= 1000000, "retention counts within 0..1000000");
  Check(p.keep_within_ns >= 0, "keep_within is not negative");

  // The integers are the file's own values.
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(kConfigFile));
  } catch (const toml::parse_error& e) {
    Fail(std::string("ParseConfig accepted what toml++ refuses: ") + std::string(e.description()));
  }
  CheckSameInt(root, "target", "lock_wait", c.target.lock_wait_seconds);
  CheckSameInt(root, "run", "max_freeze", c.run.max_freeze_seconds);
  CheckSameInt(root, "run", "call_timeout", c.run.call_timeout_seconds);
  CheckSameInt(root, "report", "keep", c.report.keep);
  CheckSameInt(root, "retention", "keep_last", p.keep_last);
  CheckSameInt(root, "retention", "hourly", p.hourly);
  CheckSameInt(root, "retention", "daily", p.daily);
  CheckSameInt(root, "retention", "weekly", p.weekly);
  CheckSameInt(root, "retention", "monthly", p.monthly);
  CheckSameInt(root, "retention", "yearly", p.yearly);
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmback::fuzz::CheckConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
