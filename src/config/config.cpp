#include "config/config.h"

#include "util/encoding.h"


#include <cerrno>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <toml++/toml.h>

#include "os/env.h"
#include "util/error.h"
#include "util/exclude.h"
#include "util/tunables.h"

namespace vmback {

namespace {

// Longest name one directory entry may have on Linux file systems.
constexpr size_t kMaxVolumeNameLength = 255;
// Seconds settings are kept in an int: a larger value must not wrap around.
constexpr int64_t kMaxSeconds = std::numeric_limits<int>::max();

// s3://BUCKET/PREFIX with both parts (the s3 module checks the names
// themselves when it opens the copy).
bool HasBucketAndPrefix(const std::string& url) {
  std::string_view rest = std::string_view(url).substr(5);
  size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return false;
  return rest.find_first_not_of('/', slash) != std::string_view::npos;
}

const char* TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

// Validates one table of the file; every error names file and line.
class TableReader {
 public:
  TableReader(const std::string& file, const toml::table& table, std::string where, int line)
      : file_(file), table_(table), where_(std::move(where)), line_(line) {}

  [[noreturn]] void Fail(int line, const std::string& message) const {
    ThrowConfig(file_ + ":" + std::to_string(line) + ": " + message);
  }

  // Rejects any key not in `allowed`, reporting the first one in the file.
  void CheckKeys(std::initializer_list<std::string_view> allowed) const {
    const toml::key* first = nullptr;
    for (auto&& [key, value] : table_) {
      bool known = false;
      for (std::string_view a : allowed) known = known || key.str() == a;
      if (!known && (first == nullptr || Line(key) < Line(*first))) first = &key;
    }
    if (first != nullptr) {
      Fail(Line(*first), "unknown key '" + std::string(first->str()) + "' in " + where_);
    }
  }

  // Returns the string value of `key`, or nothing if it is absent.
  std::optional<std::string> String(std::string_view key, int* line = nullptr) const {
    const toml::node* node = Get(key, toml::node_type::string, "a string", line);
    if (node == nullptr) return std::nullopt;
    return node->as_string()->get();
  }

  std::optional<int64_t> Int(std::string_view key, int* line = nullptr) const {
    const toml::node* node = Get(key, toml::node_type::integer, "an integer", line);
    if (node == nullptr) return std::nullopt;
    return node->as_integer()->get();
  }

  // An array of strings, or nothing if absent.
  std::optional<std::vector<std::string>> StringArray(std::string_view key, int* line = nullptr) const {
    int key_line = 0;
    const toml::node* node = Get(key, toml::node_type::array, "an array of strings", &key_line);
    if (line != nullptr) *line = key_line;
    if (node == nullptr) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& item : *node->as_array()) {
      if (!item.is_string())
        Fail(key_line, "'" + std::string(key) + "' in " + where_ + " must hold only strings");
      out.push_back(item.as_string()->get());
    }
    return out;
  }

  std::optional<bool> Bool(std::string_view key, int* line = nullptr) const {
    const toml::node* node = Get(key, toml::node_type::boolean, "a boolean", line);
    if (node == nullptr) return std::nullopt;
    return node->as_boolean()->get();
  }

  // Like String(), but the key must be present and non-empty.
  std::string RequiredString(std::string_view key, int* line = nullptr) const {
    int key_line = 0;
    std::optional<std::string> value = String(key, &key_line);
    if (!value) Fail(line_, where_ + " has no '" + std::string(key) + "'");
    if (value->empty()) Fail(key_line, "'" + std::string(key) + "' in " + where_ + " is empty");
    if (line != nullptr) *line = key_line;
    return *value;
  }

  static int Line(const toml::key& key) { return static_cast<int>(key.source().begin.line); }

 private:
  const toml::node* Get(std::string_view key, toml::node_type type, const char* type_desc,
                        int* line) const {
    auto it = table_.find(key);
    if (it == table_.end()) return nullptr;
    int key_line = Line(it->first);
    if (line != nullptr) *line = key_line;
    if (it->second.type() != type) {
      Fail(key_line, "'" + std::string(key) + "' in " + where_ + " must be " + type_desc +
                         ", not " + TypeName(it->second));
    }
    return &it->second;
  }

  const std::string& file_;
  const toml::table& table_;
  std::string where_;
  int line_;
};

std::string ResolvePath(const std::filesystem::path& base_dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = base_dir / p;
  return p.lexically_normal().string();
}

bool vm_lines_contains(const std::vector<VmConfig>& vms, const std::string& name) {
  for (const auto& v : vms)
    if (v.name == name) return true;
  return false;
}

// The keys of a retention table ([retention], [replicate.retention]).
void ReadRetention(const TableReader& rr, RetentionPolicy* p) {
  rr.CheckKeys({"keep_last", "keep_within", "hourly", "daily", "weekly", "monthly", "yearly"});
  auto count = [&](const char* key, int* out) {
    int l = 0;
    if (auto v = rr.Int(key, &l)) {
      if (*v < 0 || *v > 1000000) rr.Fail(l, std::string("'") + key + "' must be between 0 and 1000000");
      *out = static_cast<int>(*v);
    }
  };
  count("keep_last", &p->keep_last);
  count("hourly", &p->hourly);
  count("daily", &p->daily);
  count("weekly", &p->weekly);
  count("monthly", &p->monthly);
  count("yearly", &p->yearly);
  int within_line = 0;
  if (auto within = rr.String("keep_within", &within_line)) {
    try {
      p->keep_within_ns = ParseDuration(*within);
    } catch (const Error& e) {
      rr.Fail(within_line, e.what());
    }
  }
}

// [[replicate]]: each a table with a dataset, maybe a host and a
// [replicate.retention]; only for a zfs target.
void ReadReplicas(const std::string& file_name, const toml::table& root, const TableReader& top, Config* config) {
  auto it = root.find("replicate");
  if (it == root.end()) return;
  const int line = TableReader::Line(it->first);
  const toml::array* replicas = it->second.as_array();
  if (replicas == nullptr)
    top.Fail(line, std::string("'replicate' must be an array of tables ([[replicate]]), not ") + TypeName(it->second));
  if (config->target.type != TargetType::kZfs)
    top.Fail(line, std::string("[[replicate]] sends ZFS snapshots: it needs a zfs target, not a ") +
                       TargetTypeName(config->target.type) + " target");
  for (const toml::node& element : *replicas) {
    const int at = static_cast<int>(element.source().begin.line);
    const toml::table* table = element.as_table();
    if (table == nullptr) top.Fail(at, std::string("each [[replicate]] must be a table, not ") + TypeName(element));
    TableReader rep(file_name, *table, "[[replicate]]", at);
    rep.CheckKeys({"dataset", "host", "retention"});
    ReplicaConfig replica;
    replica.line = at;
    int l = 0;
    replica.dataset = rep.RequiredString("dataset", &l);
    if (!IsPlainZfsDatasetName(replica.dataset))
      rep.Fail(l, "'dataset' in [[replicate]] must name a ZFS dataset such as \"offsite/vmback\" (letters, digits, "
                "_ - : . and '/'), not \"" + EscapeForTerminal(replica.dataset) + "\"");
    if (auto host = rep.String("host", &l)) {
      if (!IsPlainSshHost(*host))
        rep.Fail(l, "'host' in [[replicate]] must be an ssh destination such as \"backup@site\" (letters, digits, "
                  ". _ - @; set a port or key in ~/.ssh/config), not \"" + EscapeForTerminal(*host) + "\"");
      replica.host = *host;
    }
    if (replica.host.empty() && replica.dataset == config->target.dataset)
      rep.Fail(at, "[[replicate]] dataset \"" + replica.dataset + "\" is the target's own dataset");
    if (auto rt = table->find("retention"); rt != table->end()) {
      const toml::table* t = rt->second.as_table();
      if (t == nullptr) rep.Fail(TableReader::Line(rt->first), "'retention' in [[replicate]] must be a table");
      TableReader rr(file_name, *t, "[replicate.retention]", TableReader::Line(rt->first));
      ReadRetention(rr, &replica.retention);
      replica.retention_given = true;
    }
    for (const auto& other : config->replicas)
      if (other.where() == replica.where())
        rep.Fail(at, "[[replicate]] " + replica.where() + " is given twice (first at line " + std::to_string(other.line) +
                       ")");
    config->replicas.push_back(std::move(replica));
  }
}

}  // namespace

bool IsPlainZfsDatasetName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '-') return false;
  size_t component = 0;
  size_t dots = 0;  // a component of dots alone ("." or "..") is no name
  for (char c : name) {
    if (c == '/') {
      if (component == 0 || dots == component) return false;
      component = dots = 0;
      continue;
    }
    if (c == '.') dots++;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == ':' || c == '.';
    if (!ok) return false;
    component++;
  }
  return component > 0 && dots != component;
}

bool IsPlainSshHost(std::string_view host) {
  if (host.empty() || host.size() > 255 || host.front() == '-') return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.' || c == '@';
    if (!ok) return false;
  }
  return true;
}

const char* VolumeModeName(VolumeMode m) { return m == VolumeMode::kBlock ? "block" : "filesystem"; }

const char* TargetTypeName(TargetType t) {
  switch (t) {
    case TargetType::kStore:
      return "store";
    case TargetType::kZfs:
      return "zfs";
    case TargetType::kBtrfs:
      return "btrfs";
    case TargetType::kDir:
      return "dir";
  }
  return "?";
}

bool IsValidVolumeName(std::string_view name) {
  if (name.empty() || name.size() > kMaxVolumeNameLength) return false;
  if (name == "." || name == "..") return false;
  if (!IsValidUtf8(name)) return false;  // it is stored as JSON text
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == '/' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

Config ParseConfig(std::string_view text, const std::string& file_name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    ThrowConfig(file_name + ":" + std::to_string(e.source().begin.line) + ": " +
                std::string(e.description()));
  }

  // Relative paths follow the file, wherever the process runs from.
  std::error_code ec;
  std::filesystem::path file_path = std::filesystem::absolute(file_name, ec);
  if (ec) file_path = file_name;
  const std::filesystem::path base_dir = file_path.parent_path();

  Config config;
  config.file = file_name;
  TableReader top(file_name, root, "the top-level table", 1);
  top.CheckKeys({"target", "volume", "retention", "libvirt", "run", "vm", "report", "store", "replicate", "s3"});

  // [target]
  auto target_it = root.find("target");
  if (target_it == root.end()) ThrowConfig(file_name + ": missing [target] table");
  int target_line = TableReader::Line(target_it->first);
  const toml::table* target = target_it->second.as_table();
  if (target == nullptr) {
    top.Fail(target_line, std::string("'target' must be a table, not ") +
                              TypeName(target_it->second));
  }
  TableReader tr(file_name, *target, "[target]", target_line);
  tr.CheckKeys({"type", "path", "dataset", "mirrors", "lock_wait", "snapshot_prefix", "block_size", "encrypt",
                "key_file"});
  int type_line = 0;
  if (std::optional<std::string> type = tr.String("type", &type_line)) {
    if (*type != "store" && *type != "zfs" && *type != "btrfs" && *type != "dir") {
      tr.Fail(type_line, "target type '" + *type +
                             "' is unknown; use \"store\", \"zfs\", \"btrfs\" or \"dir\"");
    }
    config.target.type = *type == "zfs" ? TargetType::kZfs : *type == "btrfs" ? TargetType::kBtrfs
                       : *type == "dir" ? TargetType::kDir : TargetType::kStore;
  }
  const bool is_zfs = config.target.type == TargetType::kZfs;
  if (is_zfs) {
    int ds_line = 0;
    config.target.dataset = tr.RequiredString("dataset", &ds_line);
    if (config.target.dataset.front() == '/' || config.target.dataset.find('@') != std::string::npos)
      tr.Fail(ds_line, "'dataset' must name a ZFS dataset such as \"tank/vmback\", not a path or a snapshot");
    if (tr.String("path")) tr.Fail(target_line, "a zfs target has a 'dataset', not a 'path'");
  } else {
    if (tr.String("dataset")) tr.Fail(target_line, "'dataset' belongs to a zfs target only");
    int path_line = 0;
    std::string path = tr.RequiredString("path", &path_line);
    // A store's copies are recorded by absolute path in each copy's
    // config.json and compared with these: no reading them against
    // anything.
    if (config.target.type == TargetType::kStore && IsBucketUrl(path)) {
      if (!HasBucketAndPrefix(path)) tr.Fail(path_line, "'path': \"" + path + "\" must be s3://BUCKET/PREFIX");
      config.target.path = path;  // the store in a bucket (restore on a new host from it alone)
    } else {
      if (config.target.type == TargetType::kStore && path.front() != '/')
        tr.Fail(path_line, "'path' in [target] must be an absolute path for a store, not \"" + path + "\"");
      config.target.path = ResolvePath(base_dir, path);
    }
  }
  int mirrors_line = 0;
  if (auto mirrors = tr.StringArray("mirrors", &mirrors_line)) {
    if (config.target.type != TargetType::kStore)
      tr.Fail(target_line, "'mirrors' belongs to the built-in store; a " + std::string(TargetTypeName(config.target.type)) +
                               " target is mirrored by its file system");
    for (const auto& m : *mirrors) {
      if (IsBucketUrl(m)) {  // a copy in a bucket: s3://BUCKET/PREFIX
        if (!HasBucketAndPrefix(m))
          tr.Fail(mirrors_line, "'mirrors': \"" + m + "\" must be s3://BUCKET/PREFIX");
        config.target.mirrors.push_back(m);
        continue;
      }
      if (m.empty() || m.front() != '/')
        tr.Fail(mirrors_line, "'mirrors' in [target] must hold absolute paths, not \"" + m +
                                  "\" (a copy in a bucket is s3://BUCKET/PREFIX)");
      config.target.mirrors.push_back(ResolvePath(base_dir, m));
    }
  }
  int prefix_line = 0;
  if (auto prefix = tr.String("snapshot_prefix", &prefix_line)) {
    if (config.target.type != TargetType::kZfs && config.target.type != TargetType::kBtrfs)
      tr.Fail(prefix_line, "'snapshot_prefix' belongs to zfs and btrfs targets");
    if (prefix->empty() || prefix->find_first_of("/@ \t") != std::string::npos || !IsValidVolumeName(*prefix))
      tr.Fail(prefix_line, "'snapshot_prefix' must be a non-empty name without '/', '@' or blanks");
    config.target.snapshot_prefix = *prefix;
  }
  int bs_line = 0;
  if (auto bs = tr.String("block_size", &bs_line)) {
    uint64_t v = 0;
    if (config.target.type == TargetType::kStore)
      tr.Fail(bs_line, "the store's block size is set by 'vmback store init --block-size'");
    if (!ParseSize(*bs, &v) || !IsValidBlockSize(v, kMinInplaceBlockSize))
      tr.Fail(bs_line, "'block_size' must be a power of two from 512 to 16M, e.g. \"128K\"");
    config.target.block_size = static_cast<uint32_t>(v);
  }
  int encrypt_line = 0;
  if (std::optional<bool> encrypt = tr.Bool("encrypt", &encrypt_line)) {
    if (config.target.type != TargetType::kStore)
      tr.Fail(encrypt_line, "'encrypt' belongs to the built-in store; encrypt an in-place target's file system "
                            "(ZFS native encryption, LUKS)");
    config.target.encrypt = *encrypt;
  }
  int key_line = 0;
  if (auto key = tr.String("key_file", &key_line)) {
    if (config.target.type != TargetType::kStore) tr.Fail(key_line, "'key_file' belongs to the built-in store");
    if (key->empty() || key->front() != '/')
      tr.Fail(key_line, "'key_file' in [target] must be an absolute path, not \"" + *key + "\"");
    config.target.key_file = *key;
  }
  int wait_line = 0;
  if (auto wait = tr.Int("lock_wait", &wait_line)) {
    if (*wait < 0) tr.Fail(wait_line, "'lock_wait' must not be negative");
    if (*wait > kMaxSeconds) tr.Fail(wait_line, "'lock_wait' is too large");
    config.target.lock_wait_seconds = static_cast<int>(*wait);
  }

  // [retention]
  if (auto it = root.find("retention"); it != root.end()) {
    int line = TableReader::Line(it->first);
    const toml::table* table = it->second.as_table();
    if (table == nullptr) top.Fail(line, "'retention' must be a table");
    TableReader rr(file_name, *table, "[retention]", line);
    ReadRetention(rr, &config.retention);
  }

  // [[volume]]
  auto volume_it = root.find("volume");
  if (volume_it == root.end()) {
    ThrowConfig(file_name + ": no [[volume]] declared; at least one is required");
  }
  const toml::array* volumes = volume_it->second.as_array();
  if (volumes == nullptr) {
    top.Fail(TableReader::Line(volume_it->first),
             std::string("'volume' must be an array of tables ([[volume]]), not ") +
                 TypeName(volume_it->second));
  }
  if (volumes->empty()) {
    top.Fail(TableReader::Line(volume_it->first), "at least one [[volume]] is required");
  }
  std::map<std::string, int> first_line_of;
  for (const toml::node& element : *volumes) {
    int line = static_cast<int>(element.source().begin.line);
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      top.Fail(line, std::string("each volume must be a table, not ") + TypeName(element));
    }
    TableReader vr(file_name, *table, "[[volume]]", line);
    vr.CheckKeys({"name", "source", "one_file_system", "snapshot", "snapshot_size", "mode", "vms", "track_changes",
                  "exclude", "exclude_caches"});
    VolumeConfig volume;
    volume.line = line;
    int name_line = 0;
    volume.name = vr.RequiredString("name", &name_line);
    if (!IsValidVolumeName(volume.name)) {
      vr.Fail(name_line, "invalid volume name '" + volume.name +
                             "': must be one path component (no '/', not '.' or '..', "
                             "no control characters, valid UTF-8, at most 255 bytes)");
    }
    auto [it, inserted] = first_line_of.emplace(volume.name, line);
    if (!inserted) {
      vr.Fail(line, "duplicate volume name '" + volume.name + "' (first declared at line " +
                        std::to_string(it->second) + ")");
    }
    volume.source = ResolvePath(base_dir, vr.RequiredString("source"));
    if (std::optional<bool> one_fs = vr.Bool("one_file_system")) volume.one_file_system = *one_fs;
    int track_line = 0;
    if (std::optional<bool> track = vr.Bool("track_changes", &track_line)) volume.track_changes = *track;
    int l = 0;
    if (auto snap = vr.String("snapshot", &l)) {
      if (*snap != "none" && *snap != "lvm" && *snap != "btrfs" && *snap != "reflink" && *snap != "libvirt")
        vr.Fail(l, "snapshot '" + *snap + "' is not one of none, lvm, btrfs, reflink, libvirt");
      volume.snapshot = ParseSnapshotKind(*snap);
      volume.snapshot_given = true;
    }
    if (volume.track_changes && volume.snapshot == SnapshotKind::kLibvirt)
      vr.Fail(track_line, "track_changes is for snapshot = \"reflink\" or \"btrfs\"; volume '" + volume.name +
                              "' has snapshot = \"libvirt\", which always reads only what QEMU's dirty bitmaps mark "
                              "(libvirt checkpoints): remove track_changes");
    if (volume.track_changes && volume.snapshot != SnapshotKind::kReflink && volume.snapshot != SnapshotKind::kBtrfs)
      vr.Fail(track_line, "track_changes needs snapshot = \"reflink\" or \"btrfs\" (the snapshot kept as the next "
                          "run's base); volume '" + volume.name + "' has snapshot = \"" +
                          SnapshotKindName(volume.snapshot) + "\"");
    if (auto size = vr.String("snapshot_size", &l)) {
      uint64_t bytes;
      if (!ParseSize(*size, &bytes) || bytes == 0) vr.Fail(l, "snapshot_size '" + *size + "' is not a size like 10G");
      volume.snapshot_size = *size;
    }
    if (auto mode = vr.String("mode", &l)) {
      if (*mode != "block" && *mode != "filesystem")
        vr.Fail(l, "mode '" + *mode + "' is not 'block' or 'filesystem'");
      volume.mode = *mode == "block" ? VolumeMode::kBlock : VolumeMode::kFilesystem;
    }
    if (auto it = table->find("vms"); it != table->end()) {
      int vl = TableReader::Line(it->first);
      volume.vms_given = true;
      if (it->second.is_string() && it->second.as_string()->get() == "auto") {
        volume.vms_auto = true;
      } else if (auto names = vr.StringArray("vms")) {
        volume.vms_auto = false;
        volume.vms = *names;
      } else {
        vr.Fail(vl, "'vms' must be \"auto\" or a list of VM names");
      }
    }
    if (auto patterns = vr.StringArray("exclude", &l)) {
      if (patterns->size() > kMaxExcludePatterns)
        vr.Fail(l, "volume '" + volume.name + "' has " + std::to_string(patterns->size()) +
                       " exclude patterns, more than " + std::to_string(kMaxExcludePatterns));
      for (const auto& p : *patterns) {
        std::string why = CheckExcludePattern(p);
        if (!why.empty()) vr.Fail(l, "volume '" + volume.name + "': exclude pattern \"" + p + "\": " + why);
      }
      volume.exclude = std::move(*patterns);
    }
    if (std::optional<bool> caches = vr.Bool("exclude_caches")) volume.exclude_caches = *caches;
    config.volumes.push_back(std::move(volume));
  }

  // [libvirt], [run], [[vm]]
  if (auto it = root.find("libvirt"); it != root.end()) {
    const toml::table* t = it->second.as_table();
    if (!t) top.Fail(TableReader::Line(it->first), "'libvirt' must be a table");
    TableReader lr(file_name, *t, "[libvirt]", TableReader::Line(it->first));
    lr.CheckKeys({"uri"});
    if (auto uri = lr.String("uri")) config.libvirt_uri = *uri;
  }
  if (auto it = root.find("run"); it != root.end()) {
    const toml::table* t = it->second.as_table();
    if (!t) top.Fail(TableReader::Line(it->first), "'run' must be a table");
    TableReader rr(file_name, *t, "[run]", TableReader::Line(it->first));
    rr.CheckKeys({"state_dir", "nbd_dir", "max_freeze", "call_timeout", "read_limit", "full_read_every"});
    if (auto dir = rr.String("state_dir")) config.run.state_dir = ResolvePath(base_dir, *dir);
    if (auto dir = rr.String("nbd_dir")) config.run.nbd_dir = ResolvePath(base_dir, *dir);
    int l = 0;
    if (auto v = rr.Int("max_freeze", &l)) {
      if (*v <= 0) rr.Fail(l, "'max_freeze' (seconds) must be positive");
      if (*v > kMaxSeconds) rr.Fail(l, "'max_freeze' is too large");
      config.run.max_freeze_seconds = static_cast<int>(*v);
    }
    if (auto v = rr.Int("call_timeout", &l)) {
      if (*v <= 0) rr.Fail(l, "'call_timeout' (seconds) must be positive");
      if (*v > kMaxSeconds) rr.Fail(l, "'call_timeout' is too large");
      config.run.call_timeout_seconds = static_cast<int>(*v);
    }
    if (auto v = rr.String("read_limit", &l)) {
      uint64_t rate = 0;
      if (!ParseSize(*v, &rate) || rate == 0)
        rr.Fail(l, "'read_limit' must be a size per second such as \"50M\" (MiB/s)");
      config.run.read_limit = rate;
    }
    if (auto v = rr.String("full_read_every", &l)) {
      try {
        config.run.full_read_every_ns = ParseDuration(*v);
      } catch (const Error& e) {
        rr.Fail(l, e.what());
      }
      if (config.run.full_read_every_ns <= 0) rr.Fail(l, "'full_read_every' must be positive, e.g. \"30d\"");
    }
  }
  if (auto it = root.find("report"); it != root.end()) {
    const toml::table* t = it->second.as_table();
    if (!t) top.Fail(TableReader::Line(it->first), "'report' must be a table");
    TableReader rr(file_name, *t, "[report]", TableReader::Line(it->first));
    rr.CheckKeys({"dir", "keep", "metrics_file"});
    if (auto dir = rr.String("dir")) config.report.dir = ResolvePath(base_dir, *dir);
    if (auto f = rr.String("metrics_file")) config.report.metrics_file = ResolvePath(base_dir, *f);
    int l = 0;
    if (auto v = rr.Int("keep", &l)) {
      if (*v < 1 || *v > 100000) rr.Fail(l, "'keep' must be between 1 and 100000");
      config.report.keep = static_cast<int>(*v);
    }
  }
  if (auto it = root.find("store"); it != root.end()) {
    const toml::table* t = it->second.as_table();
    if (!t) top.Fail(TableReader::Line(it->first), "'store' must be a table");
    TableReader sr(file_name, *t, "[store]", TableReader::Line(it->first));
    sr.CheckKeys({"keep_bad"});
    int l = 0;
    if (auto v = sr.String("keep_bad", &l)) {
      try {
        config.store.keep_bad_ns = ParseDuration(*v);
      } catch (const Error& e) {
        sr.Fail(l, std::string("'keep_bad': ") + e.what());
      }
    }
  }
  if (auto it = root.find("s3"); it != root.end()) {
    const toml::table* t = it->second.as_table();
    if (!t) top.Fail(TableReader::Line(it->first), "'s3' must be a table");
    TableReader s3r(file_name, *t, "[s3]", TableReader::Line(it->first));
    s3r.CheckKeys({"endpoint", "addressing", "profile", "upload_limit"});
    config.s3.given = true;
    config.s3.line = TableReader::Line(it->first);
    int l = 0;
    if (auto v = s3r.String("endpoint", &l)) {
      if (v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0)
        s3r.Fail(l, "'endpoint' must be a URL, http://HOST[:PORT] or https://HOST[:PORT]");
      config.s3.endpoint = *v;
    }
    if (auto v = s3r.String("addressing", &l)) {
      if (*v != "path" && *v != "virtual") s3r.Fail(l, "'addressing' must be \"path\" or \"virtual\"");
      config.s3.addressing = *v;
    }
    if (auto v = s3r.String("profile")) config.s3.profile = *v;
    if (auto v = s3r.String("upload_limit", &l)) {
      if (!ParseSize(*v, &config.s3.upload_limit) || config.s3.upload_limit == 0)
        s3r.Fail(l, "'upload_limit' must be a size per second, e.g. \"10M\"");
    }
  }
  if (auto it = root.find("vm"); it != root.end()) {
    const toml::array* vms = it->second.as_array();
    if (!vms) top.Fail(TableReader::Line(it->first), "'vm' must be an array of tables ([[vm]])");
    std::map<std::string, int> vm_lines;
    for (const toml::node& element : *vms) {
      int line = static_cast<int>(element.source().begin.line);
      const toml::table* t = element.as_table();
      if (!t) top.Fail(line, "each [[vm]] must be a table");
      TableReader vmr(file_name, *t, "[[vm]]", line);
      vmr.CheckKeys({"name", "quiesce"});
      VmConfig vm;
      vm.line = line;
      vm.name = vmr.RequiredString("name");
      int ql = 0;
      if (auto q = vmr.String("quiesce", &ql)) {
        if (*q != "auto" && *q != "agent" && *q != "sysrq" && *q != "suspend" && *q != "none")
          vmr.Fail(ql, "quiesce '" + *q + "' is not one of auto, agent, sysrq, suspend, none");
        vm.quiesce = ParseQuiesceMethod(*q);
      }
      auto [vit, inserted] = vm_lines.emplace(vm.name, line);
      if (!inserted)
        vmr.Fail(line, "duplicate VM '" + vm.name + "' (first at line " + std::to_string(vit->second) + ")");
      config.vms.push_back(std::move(vm));
    }
  }
  for (const auto& v : config.volumes)
    for (const auto& name : v.vms)
      if (!vm_lines_contains(config.vms, name))
        ThrowConfig(file_name + ":" + std::to_string(v.line) + ": volume '" + v.name + "' names VM '" +
                    name + "', which has no [[vm]] table");
  ReadReplicas(file_name, root, top, &config);
  return config;
}

Config LoadConfig(const std::string& path) {
  return ParseConfig(ReadUserFile(path, "cannot read config file " + path), path);
}

}  // namespace vmback
