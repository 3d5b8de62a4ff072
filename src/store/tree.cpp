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

// The fast reader of trees (DecodeTreeFast). Strings: the bytes between
// the quotes, no escapes, no control bytes, valid UTF-8 (as the JSON parser
// requires); numbers: integers without fraction or exponent, in range.
// Every read is bounded by the end of the data, nothing is allocated beyond
// what the data holds, and nothing recurses.
class FastTreeReader {
 public:
  explicit FastTreeReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  // The entries, or false (out then holds any of them) for anything this
  // reader leaves to the full parser.
  bool Read(std::vector<Entry>* out) {
    std::string_view key;
    if (!Skip('{') || !String(&key) || key != "entries" || !Skip(':') || !Skip('[')) return false;
    if (!Peek(']')) {
      do {
        out->emplace_back();
        if (!ReadEntry(&out->back())) return false;
        // As DecodeTree: names unique, in sorted order (else its error).
        if (out->back().name.empty() || (out->size() > 1 && !((*out)[out->size() - 2].name < out->back().name)))
          return false;
      } while (Skip(','));
    }
    if (!Skip(']') || !Skip('}')) return false;
    SkipSpace();
    return p_ == end_;
  }

 private:
  // The keys an entry may hold (EntryToJson writes them), in the order
  // nlohmann writes them (sorted); kCount: any other.
  enum Key {
    kContent, kCtime, kGid, kHardlink, kHardlinkHex, kIno, kMode, kMtime, kName, kNameHex, kRdev, kSize,
    kSubtree, kTarget, kTargetHex, kType, kUid, kXattrs, kCount
  };
  // The key named k, looked for from the one after `after`: in a tree as
  // written, the next key is found at the first try.
  static Key KeyOf(std::string_view k, int after) {
    static constexpr std::string_view kKeys[kCount] = {
        "content", "ctime_ns", "gid", "hardlink", "hardlink_hex", "ino", "mode", "mtime_ns", "name",
        "name_hex", "rdev", "size", "subtree", "target", "target_hex", "type", "uid", "xattrs"};
    for (int n = 0, i = after + 1; n < kCount; n++, i++) {
      if (i == kCount) i = 0;
      if (k == kKeys[i]) return static_cast<Key>(i);
    }
    return kCount;
  }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) p_++;
  }
  bool Peek(char c) {
    SkipSpace();
    return p_ < end_ && *p_ == c;
  }
  bool Skip(char c) {
    if (!Peek(c)) return false;
    p_++;
    return true;
  }

  bool String(std::string_view* out) {
    if (!Skip('"')) return false;
    const char* begin = p_;
    bool ascii = true;
    for (; p_ < end_ && *p_ != '"'; p_++) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c == '\\') return false;
      if (c >= 0x80) ascii = false;
    }
    if (p_ == end_) return false;
    *out = std::string_view(begin, p_ - begin);
    p_++;
    return ascii || IsValidUtf8(*out);
  }

  // An integer of at most max (negative ones down to -INT64_MAX when
  // negative is allowed).
  bool Integer(bool negative_ok, uint64_t max, uint64_t* magnitude, bool* negative) {
    SkipSpace();
    *negative = p_ < end_ && *p_ == '-';
    if (*negative) {
      if (!negative_ok) return false;
      p_++;
    }
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    uint64_t v = 0;
    const char* begin = p_;
    for (; p_ < end_ && *p_ >= '0' && *p_ <= '9'; p_++) {
      const uint64_t d = static_cast<uint64_t>(*p_ - '0');
      if (v > (max - d) / 10) return false;
      v = v * 10 + d;
    }
    // "01", "1.5", "1e3": not an integer this reader takes.
    if ((*begin == '0' && p_ - begin > 1) || (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))) return false;
    *magnitude = v;
    return true;
  }
  bool Uint(uint64_t max, uint64_t* out) {
    bool negative;
    return Integer(false, max, out, &negative);
  }
  bool Int64(int64_t* out) {
    uint64_t v;
    bool negative;
    if (!Integer(true, uint64_t{INT64_MAX}, &v, &negative)) return false;
    *out = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
    return true;
  }

  bool ReadHash(Hash* h) {
    std::string_view s;
    return String(&s) && Hash::FromHex(s, h);
  }

  // GetBytesField: the text under key, else the hex under key_hex, else "".
  static bool Bytes(const std::string_view* v, Key key, Key hex_key, std::string* out) {
    if (v[key].data()) {
      out->assign(v[key]);
      return true;
    }
    if (v[hex_key].data()) return HexDecode(v[hex_key], out);
    out->clear();
    return true;
  }

  bool ReadEntry(Entry* e) {
    // Where each key's value is: strings as read, numbers as read.
    std::string_view text[kCount] = {};
    uint64_t num[kCount] = {};
    int64_t mtime = 0, ctime = 0;
    uint32_t seen = 0;
    int last = -1;
    if (!Skip('{')) return false;
    do {
      std::string_view k;
      if (!String(&k) || !Skip(':')) return false;
      const Key key = KeyOf(k, last);
      if (key == kCount || (seen & (1u << key))) return false;  // unknown, or twice
      last = key;
      seen |= 1u << key;
      switch (key) {
        case kName: case kNameHex: case kType: case kHardlink: case kHardlinkHex: case kTarget: case kTargetHex:
          if (!String(&text[key])) return false;
          break;
        case kMode: case kUid: case kGid:
          if (!Uint(UINT32_MAX, &num[key])) return false;
          break;
        case kSize: case kIno: case kRdev:
          if (!Uint(UINT64_MAX, &num[key])) return false;
          break;
        case kMtime:
          if (!Int64(&mtime)) return false;
          break;
        case kCtime:
          if (!Int64(&ctime)) return false;
          break;
        case kSubtree:
          if (!ReadHash(&e->subtree)) return false;
          break;
        case kContent:
          if (!Skip('[')) return false;
          if (!Peek(']')) {
            do {
              e->content.emplace_back();
              if (!ReadHash(&e->content.back())) return false;
            } while (Skip(','));
          }
          if (!Skip(']')) return false;
          break;
        case kXattrs:
          if (!Skip('[')) return false;
          if (!Peek(']')) {
            do {
              std::string_view a, b;
              std::string ka, vb;
              if (!Skip('[') || !String(&a) || !Skip(',') || !String(&b) || !Skip(']') || !HexDecode(a, &ka) ||
                  !HexDecode(b, &vb))
                return false;
              e->xattrs.emplace_back(std::move(ka), std::move(vb));
            } while (Skip(','));
          }
          if (!Skip(']')) return false;
          break;
        case kCount:
          return false;
      }
    } while (Skip(','));
    if (!Skip('}')) return false;

    // What EntryFromJson takes of them, in the same way.
    auto has = [&](Key k) { return (seen & (1u << k)) != 0; };
    if (!Bytes(text, kName, kNameHex, &e->name)) return false;
    bool known = false;
    for (int i = 0; i < 7; i++)
      if (text[kType] == kTypeNames[i]) {
        e->type = static_cast<EntryType>(i);
        known = true;
      }
    if (!known || !IsSafeName(e->name)) return false;
    if (!has(kMode) || !has(kUid) || !has(kGid) || !has(kMtime)) return false;
    e->mode = static_cast<uint32_t>(num[kMode]) & 07777;
    e->uid = static_cast<uint32_t>(num[kUid]);
    e->gid = static_cast<uint32_t>(num[kGid]);
    e->mtime_ns = mtime;
    // Keys of other types were read (and had to be well-formed) but are
    // left out, as EntryFromJson leaves them.
    switch (e->type) {
      case EntryType::kFile:
        if (!has(kSize) || !has(kContent)) return false;
        e->size = num[kSize];
        if (!Bytes(text, kHardlink, kHardlinkHex, &e->hardlink)) return false;
        if (has(kCtime) != has(kIno)) return false;
        e->ino = num[kIno];
        e->ctime_ns = e->ino == 0 ? 0 : ctime;
        break;
      case EntryType::kDir:
        if (!has(kSubtree)) return false;
        break;
      case EntryType::kSymlink:
        if (!Bytes(text, kTarget, kTargetHex, &e->target)) return false;
        break;
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
        if (!has(kRdev)) return false;
        e->rdev = num[kRdev];
        break;
      default:
        break;
    }
    if (e->type != EntryType::kFile) e->content.clear();
    if (e->type != EntryType::kDir) e->subtree = Hash{};
    return true;
  }

  const char* p_;
  const char* const end_;
};

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

bool DecodeTreeFast(std::string_view data, std::vector<Entry>* out) {
  out->clear();
  if (FastTreeReader(data).Read(out)) return true;
  out->clear();
  return false;
}

std::vector<Entry> DecodeTree(std::string_view data, const std::string& where) {
  std::vector<Entry> out;
  if (DecodeTreeFast(data, &out)) return out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data);
  } catch (const nlohmann::json::exception& ex) {
    ThrowCorrupt(where + ": tree is not valid JSON (" + ex.what() + ")");
  }
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
