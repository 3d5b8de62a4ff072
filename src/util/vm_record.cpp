#include "util/vm_record.h"

#include <algorithm>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr size_t kMaxVmPathBytes = 4096;

[[noreturn]] void Bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::kCorrupt, where + ": its VM records " + what);
}

bool IsTarget(const std::string& t) {
  if (t.empty() || t.size() > 32) return false;
  return std::all_of(t.begin(), t.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool IsFormat(const std::string& f) { return f.empty() || IsTarget(f); }

// Plain components, each IsSafeName, below the volume.
bool IsInsidePath(const std::string& p) {
  if (p.size() > kMaxVmPathBytes) return false;
  if (p.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t slash = p.find('/', start);
    std::string_view part(p.data() + start, (slash == std::string::npos ? p.size() : slash) - start);
    if (!IsSafeName(part)) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

const std::string& Str(const nlohmann::json& o, const char* key, size_t max, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_string()) Bad(where, std::string("lack a string \"") + key + "\"");
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() > max || !IsValidUtf8(s) || s.find('\0') != std::string::npos)
    Bad(where, std::string("have a bad \"") + key + "\"");
  return s;
}

VmDisk DecodeDisk(const nlohmann::json& d, const std::vector<std::string>& volumes, const std::string& where) {
  if (!d.is_object()) Bad(where, "hold a disk that is not an object");
  VmDisk disk;
  disk.target = Str(d, "target", 32, where);
  if (!IsTarget(disk.target)) Bad(where, "hold a disk with a bad target");
  disk.source = Str(d, "source", kMaxVmPathBytes, where);
  disk.format = Str(d, "format", 32, where);
  if (!IsFormat(disk.format)) Bad(where, "hold disk " + disk.target + " with a bad format");
  auto loc = d.find("volume");
  if (loc == d.end() || loc->is_null()) return disk;
  disk.volume = Str(d, "volume", kMaxVmPathBytes, where);
  if (std::find(volumes.begin(), volumes.end(), disk.volume) == volumes.end())
    Bad(where, "put disk " + disk.target + " in a volume the point does not hold");
  disk.path = Str(d, "path", kMaxVmPathBytes, where);
  if (!IsInsidePath(disk.path)) Bad(where, "put disk " + disk.target + " at a path outside its volume");
  disk.located = true;
  return disk;
}

}  // namespace

bool IsValidVmName(const std::string& name) {
  if (name.empty() || name.size() > 200 || !IsValidUtf8(name)) return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

nlohmann::json VmRecordsToJson(const std::vector<VmRecord>& vms) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& vm : vms) {
    nlohmann::json disks = nlohmann::json::array();
    for (const auto& d : vm.disks) {
      nlohmann::json j = {{"target", d.target}, {"source", d.source}, {"format", d.format}};
      if (d.located) {
        j["volume"] = d.volume;
        j["path"] = d.path;
      }
      disks.push_back(std::move(j));
    }
    out.push_back({{"name", vm.name}, {"domain_xml", vm.domain_xml}, {"disks", std::move(disks)}});
  }
  return out;
}

std::vector<VmRecord> VmRecordsFromJson(const nlohmann::json& j, const std::vector<std::string>& volumes,
                                        const std::string& where) {
  if (!j.is_array() || j.size() > kMaxVmRecords) Bad(where, "are not a list of at most " + std::to_string(kMaxVmRecords));
  std::vector<VmRecord> out;
  for (const auto& v : j) {
    if (!v.is_object()) Bad(where, "hold an entry that is not an object");
    VmRecord vm;
    vm.name = Str(v, "name", 200, where);
    if (!IsValidVmName(vm.name)) Bad(where, "hold a bad VM name");
    for (const auto& other : out)
      if (other.name == vm.name) Bad(where, "name VM " + EscapeForTerminal(vm.name) + " twice");
    vm.domain_xml = Str(v, "domain_xml", kMaxVmXmlBytes, where);
    auto disks = v.find("disks");
    if (disks == v.end() || !disks->is_array() || disks->size() > kMaxVmDisks)
      Bad(where, "give VM " + EscapeForTerminal(vm.name) + " no list of at most " + std::to_string(kMaxVmDisks) + " disks");
    for (const auto& d : *disks) {
      vm.disks.push_back(DecodeDisk(d, volumes, where));
      for (size_t i = 0; i + 1 < vm.disks.size(); ++i)
        if (vm.disks[i].target == vm.disks.back().target)
          Bad(where, "give VM " + EscapeForTerminal(vm.name) + " disk " + vm.disks.back().target + " twice");
    }
    out.push_back(std::move(vm));
  }
  return out;
}

const VmRecord& FindVmRecord(const std::vector<VmRecord>& vms, const std::string& name, const std::string& point) {
  for (const auto& vm : vms)
    if (vm.name == name) return vm;
  std::string held;
  for (const auto& vm : vms) held += (held.empty() ? "" : ", ") + EscapeForTerminal(vm.name);
  ThrowNotFound("point " + point + " holds no VM named " + EscapeForTerminal(name) +
                (held.empty() ? " (it records no VMs: made by 'vmback backup', or before vmback recorded them)"
                              : " (it holds " + held + ")"));
}

}  // namespace vmback
