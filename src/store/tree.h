// Trees: the entries of one directory, stored as a blob (JSON text) in the
// store, so that unchanged directories are shared between points. A file's
// content is a list of "list" blobs, each holding up to kIdsPerList block
// ids (32 bytes each); the all-zero id stands for an all-zero block.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/sha256.h"

namespace vmback {

inline constexpr size_t kIdsPerList = 2048;

enum class EntryType { kFile, kDir, kSymlink, kCharDevice, kBlockDevice, kFifo, kSocket };

struct Entry {
  std::string name;  // raw bytes of the file name; empty for a volume root
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;  // permission bits, with setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;            // files
  // Files: the inode's change time and number when it was read, for the
  // unchanged-file check; ino == 0 means not recorded (points written
  // before these keys existed), and such an entry never counts as unchanged.
  int64_t ctime_ns = 0;
  uint64_t ino = 0;
  std::vector<Hash> content{};  // files: list blob ids
  std::string target{};         // symlinks
  uint64_t rdev = 0;            // devices
  std::vector<std::pair<std::string, std::string>> xattrs{};  // name, value
  std::string hardlink{};       // path within the volume of the first link
  Hash subtree{};               // directories
};

const char* EntryTypeName(EntryType t);

// Byte strings in JSON: valid UTF-8 as text under `key`, anything else as hex
// under `key`_hex. GetBytesField returns "" when neither is present.
void PutBytesField(nlohmann::json* j, const char* key, const std::string& value);
std::string GetBytesField(const nlohmann::json& j, const char* key, const std::string& where);

nlohmann::json EntryToJson(const Entry& e);
// Throws kCorrupt naming `where` for a malformed entry.
Entry EntryFromJson(const nlohmann::json& j, const std::string& where);

std::string EncodeTree(const std::vector<Entry>& entries);
// Throws kCorrupt naming `where` for a tree that is not JSON, an entry that
// is malformed (EntryFromJson), or names that are not unique and sorted.
std::vector<Entry> DecodeTree(std::string_view data, const std::string& where);
// DecodeTree's first try, a reader of the JSON EncodeTree writes (no
// escapes in strings, integers as written, known keys once each) that
// builds no JSON document: several times faster on a big directory. It
// accepts a subset of what DecodeTree does, and for what it accepts gives
// the same entries; it never decides that a tree is corrupt. false (*out
// cleared): it leaves data to the full parser, which reads it or gives the
// error.
bool DecodeTreeFast(std::string_view data, std::vector<Entry>* out);

std::string EncodeIdList(const std::vector<Hash>& ids);
std::vector<Hash> DecodeIdList(std::string_view data, const std::string& where);

}  // namespace vmback
