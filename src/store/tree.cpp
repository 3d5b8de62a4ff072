#include "store/tree.h"

#include <cstring>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

const char* kTypeNames[] = {"file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"};

Hash GetHash(const nlohmann::json& j, const std::string& where) {
  Hash h;
  if (!j.is_string() || !Hash::FromHex(j.get<std::string>(), &h)) ThrowCorrupt(where + ": bad blob id");
  return h;
}

// Integer fields: a fraction, a string or a value out of range is corrupt
// (nlohmann's get<> would cast it: wrapped, truncated or undefined).
uint64_t GetUint(const nlohmann::json& j, const char* key, uint64_t max, const std::string& where) {
  const nlohmann::json& v = j.at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() <= max) return v.get<uint64_t>();
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= 0 &&
      static_cast<uint64_t>(v.get<int64_t>()) <= max)
    return static_cast<uint64_t>(v.get<int64_t>());
  ThrowCorrupt(where + ": bad " + key);
}

int64_t GetInt64(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = j.at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t{INT64_MAX}) return v.get<int64_t>();
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  ThrowCorrupt(where + ": bad " + key);
}

}  // namespace

const char* EntryTypeName(EntryType t) { return kTypeNames[static_cast<int>(t)]; }

void PutBytesField(nlohmann::json* j, const char* key, const std::string& v) {
  if (IsValidUtf8(v)) (*j)[key] = v;
  else (*j)[std::string(key) + "_hex"] = HexEncode(v);
}

std::string GetBytesField(const nlohmann::json& j, const char* key, const std::string& where) {
  if (auto it = j.find(key); it != j.end()) return it->get<std::string>();
  if (auto it = j.find(std::string(key) + "_hex"); it != j.end()) {
    std::string out;
    if (!HexDecode(it->get<std::string>(), &out)) ThrowCorrupt(where + ": bad hex in " + key);
    return out;
  }
  return "";
}

nlohmann::json EntryToJson(const Entry& e) {
  nlohmann::json j;
  PutBytesField(&j, "name", e.name);
  j["type"] = EntryTypeName(e.type);
  j["mode"] = e.mode;
  j["uid"] = e.uid;
  j["gid"] = e.gid;
  j["mtime_ns"] = e.mtime_ns;
  switch (e.type) {
    case EntryType::kFile: {
      j["size"] = e.size;
      if (e.ino != 0) {
        j["ctime_ns"] = e.ctime_ns;
        j["ino"] = e.ino;
      }
      nlohmann::json c = nlohmann::json::array();
      for (const auto& h : e.content) c.push_back(h.Hex());
      j["content"] = std::move(c);
      if (!e.hardlink.empty()) PutBytesField(&j, "hardlink", e.hardlink);
      break;
    }
    case EntryType::kDir:
      j["subtree"] = e.subtree.Hex();
      break;
    case EntryType::kSymlink:
      PutBytesField(&j, "target", e.target);
      break;
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
      j["rdev"] = e.rdev;
      break;
    default:
      break;
  }
  if (!e.xattrs.empty()) {
    nlohmann::json x = nlohmann::json::array();
    for (const auto& [k, v] : e.xattrs) x.push_back({HexEncode(k), HexEncode(v)});
    j["xattrs"] = std::move(x);
  }
  return j;
}

Entry EntryFromJson(const nlohmann::json& j, const std::string& where) {
  try {
    Entry e;
    e.name = GetBytesField(j, "name", where);
    std::string type = j.at("type").get<std::string>();
    bool known = false;
    for (int i = 0; i < 7; i++)
      if (type == kTypeNames[i]) {
        e.type = static_cast<EntryType>(i);
        known = true;
      }
    if (!known) ThrowCorrupt(where + ": unknown entry type '" + type + "'");
    // A volume root has no name; every other entry's name is joined to a
    // destination path by restore, so it must be one safe component.
    if (!e.name.empty() && !IsSafeName(e.name))
      ThrowCorrupt(where + ": invalid entry name '" + EscapeForTerminal(e.name) + "'");
    e.mode = static_cast<uint32_t>(GetUint(j, "mode", UINT32_MAX, where)) & 07777;
    e.uid = static_cast<uint32_t>(GetUint(j, "uid", UINT32_MAX, where));
    e.gid = static_cast<uint32_t>(GetUint(j, "gid", UINT32_MAX, where));
    e.mtime_ns = GetInt64(j, "mtime_ns", where);
    switch (e.type) {
      case EntryType::kFile:
        e.size = GetUint(j, "size", UINT64_MAX, where);
        if (!j.at("content").is_array()) ThrowCorrupt(where + ": content is not a list of ids");
        for (const auto& h : j.at("content")) e.content.push_back(GetHash(h, where));
        e.hardlink = GetBytesField(j, "hardlink", where);
        // Optional: both or neither (see Entry::ino).
        if (j.contains("ctime_ns") || j.contains("ino")) {
          e.ctime_ns = GetInt64(j, "ctime_ns", where);
          e.ino = GetUint(j, "ino", UINT64_MAX, where);
          if (e.ino == 0) e.ctime_ns = 0;  // not recorded, as written
        }
        break;
      case EntryType::kDir:
        e.subtree = GetHash(j.at("subtree"), where);
        break;
      case EntryType::kSymlink:
        e.target = GetBytesField(j, "target", where);
        break;
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
        e.rdev = GetUint(j, "rdev", UINT64_MAX, where);
        break;
      default:
        break;
    }
    if (auto it = j.find("xattrs"); it != j.end()) {
      if (!it->is_array()) ThrowCorrupt(where + ": bad xattrs");
      for (const auto& pair : *it) {
        std::string k, v;
        if (!pair.is_array() || pair.size() != 2 || !HexDecode(pair[0].get<std::string>(), &k) ||
            !HexDecode(pair[1].get<std::string>(), &v))
          ThrowCorrupt(where + ": bad xattr");
        e.xattrs.emplace_back(std::move(k), std::move(v));
      }
    }
    return e;
  } catch (const nlohmann::json::exception& ex) {
    ThrowCorrupt(where + ": malformed entry (" + ex.what() + ")");
  }
}

std::string EncodeTree(const std::vector<Entry>& entries) {
  nlohmann::json j = {{"entries", nlohmann::json::array()}};
  for (const auto& e : entries) j["entries"].push_back(EntryToJson(e));
  return j.dump();
}

std::vector<Entry> DecodeTree(std::string_view data, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data);
  } catch (const nlohmann::json::exception& ex) {
    ThrowCorrupt(where + ": tree is not valid JSON (" + ex.what() + ")");
  }
  std::vector<Entry> out;
  if (!j.is_object() || !j.contains("entries") || !j["entries"].is_array())
    ThrowCorrupt(where + ": tree has no entries");
  for (const auto& e : j["entries"]) {
    out.push_back(EntryFromJson(e, where));
    // Readers join these names to the directory's path: an empty name would
    // be the directory itself, a repeated one two entries in one place.
    if (out.back().name.empty() || (out.size() > 1 && !(out[out.size() - 2].name < out.back().name)))
      ThrowCorrupt(where + ": tree entries are not unique names in sorted order");
  }
  return out;
}

std::string EncodeIdList(const std::vector<Hash>& ids) {
  std::string out;
  out.reserve(ids.size() * 32);
  for (const auto& h : ids) out.append(reinterpret_cast<const char*>(h.bytes.data()), 32);
  return out;
}

std::vector<Hash> DecodeIdList(std::string_view data, const std::string& where) {
  if (data.size() % 32 || data.size() / 32 > kIdsPerList) ThrowCorrupt(where + ": bad block list");
  std::vector<Hash> ids(data.size() / 32);
  for (size_t i = 0; i < ids.size(); i++) std::memcpy(ids[i].bytes.data(), data.data() + 32 * i, 32);
  return ids;
}

}  // namespace vmback
